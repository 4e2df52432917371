"""One reconcile: the watched state of an execution in, `decide()`, its actions out to the API.

No reads here: the state comes from the World. The one exception is a Conflict on the status
write, which means our copy is stale; the fresh object goes into the World and the key is
retried. Failures are classified once (kube.ApiFailure) and answered by the work queue.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from flux_api import EXECUTION_LABEL, Phase
from flux_api.errors import Failure
from flux_api.timefmt import utcnow

from flux_operator import builders, guard, timing
from flux_operator import decide as machine
from flux_operator.cancelling import escalation_due
from flux_operator.kube import ApiFailure, KubeApi
from flux_operator.metrics import Metrics
from flux_operator.world import Key, Snapshot, World

log = logging.getLogger("flux_operator")


@dataclass(frozen=True)
class Result:
    """What the worker does next with the key: nothing, or look again after `requeue_after` seconds."""

    requeue_after: float | None = None


def event_name(snapshot: Snapshot, reason: str, key: str = "") -> str:
    """One Event per execution, reason (and key): a second post after a crash is a harmless Conflict."""
    meta = snapshot.raw["metadata"]
    return f"{meta['name']}.{meta['uid'][:8]}.{reason.lower()}" + (f".{key}" if key else "")


# After a Conflict the watch normally delivers the newer object within milliseconds: wait this long
# for it before reading the object ourselves.
CONFLICT_SETTLE_SECONDS = 0.1
# Events this replica already posted, so a decision repeated after a Conflict does not post them again.
# Bounded: after a restart (or when full) a repeat is only a harmless 409 on the Event's fixed name.
POSTED_EVENTS_KEPT = 50_000


class Reconciler:
    def __init__(self, world: World, api: KubeApi, runner: builders.RunnerSettings, metrics: Metrics,
                 clock=utcnow) -> None:
        self.world, self.api, self.runner, self.metrics, self.clock = world, api, runner, metrics, clock
        self._posted: OrderedDict[str, None] = OrderedDict()
        self._conflicted: dict[Key, str] = {}  # key -> the resourceVersion a status write met a Conflict on
        self._lock = threading.Lock()

    def reconcile(self, key: Key) -> Result:
        snapshot = self.world.snapshot(key)
        if snapshot is None:
            broken = self.world.unparseable(key)
            if broken:
                # The CRD schema admits nothing this rejects, so this comes from a newer version: left alone.
                log.error("execution %s/%s does not parse, left alone: %s", *key, broken)
                self.metrics.reconcile_errors.labels("Unparseable").inc()
            return Result()
        if snapshot.raw["metadata"].get("deletionTimestamp"):
            return Result()  # being deleted: the garbage collector takes the pod and children with it
        snapshot = self._after_conflict(key, snapshot)
        ex = builders.with_defaults(snapshot.execution, self.runner)
        now = self.clock()
        actions = machine.decide(ex, snapshot.pod, snapshot.children, now)
        if any(isinstance(a, machine.EnsureRunner) for a in actions):
            # The backstop: what passes the platform's limits gets no pod, whoever admitted it.
            problems = guard.limit_problems(ex, self.runner.limits)
            if problems:
                actions = guard.refusal(ex, problems, now)
        failed_signal: ApiFailure | None = None
        for action in actions:
            if isinstance(action, machine.EmitEvent) and action.reason == "Signalled" and failed_signal:
                continue  # it was not delivered: say that instead
            try:
                if not self._apply(snapshot, ex, action):
                    # The status moved on: decide again once the watch has brought the newer copy.
                    return Result(requeue_after=CONFLICT_SETTLE_SECONDS)
            except ApiFailure as err:
                if not isinstance(action, (machine.DeletePod, machine.CancelChild)):
                    raise
                # The cancel is still recorded (Cancelling) so users see it; the signal is retried.
                failed_signal = failed_signal or err
                self.api.emit_event(_involved(snapshot), event_name(snapshot, "SignalFailed"), "Warning",
                                    "SignalFailed", f"could not signal: {err}; retrying")
        if failed_signal is not None:
            raise failed_signal
        if any(isinstance(a, machine.DeleteExecution) for a in actions):
            return Result()  # gone: its DELETED event takes it out of the World
        return Result(requeue_after=_next_wakeup(ex, snapshot.pod, now))

    def _apply(self, snapshot: Snapshot, ex, action: machine.Action) -> bool:
        """False when the status write met a newer object (a Conflict): nothing after it may run."""
        ns, name = ex.namespace, ex.name
        match action:
            case machine.PatchStatus(patch=patch):
                rv = snapshot.raw["metadata"].get("resourceVersion")
                try:
                    written = self.api.patch_status(ns, name, patch, rv)
                except ApiFailure as err:
                    if err.kind is not Failure.CONFLICT:
                        raise
                    with self._lock:
                        self._conflicted[(ns, name)] = rv or ""
                    return False
                self.world.execution_seen(written)
                if "phase" in patch:
                    log.info("execution %s/%s: %s -> %s", ns, name, ex.phase.value, patch["phase"])
            case machine.EnsureRunner():
                self._ensure_runner(ex)
            case machine.DeletePod(name=pod, grace_seconds=grace, uid=uid):
                if not self.api.delete_pod(ns, pod, grace, uid or None):
                    # Already gone: a watch that broke (an API server restart) can miss a deletion,
                    # and a re-list never reports one. The delete's answer is news: take it.
                    self.world.pod_gone({"metadata": {"name": pod, "namespace": ns,
                                                      "labels": {EXECUTION_LABEL: name}}})
            case machine.CancelChild(name=child, reason=reason, force=force):
                self.api.patch_execution(ns, child, builders.child_cancel_patch(name, reason, force))
            case machine.CreateChild(name=child, workflow=workflow, input=input_):
                self.api.create_execution(ns, builders.child_execution(ex, child, workflow, input_))
            case machine.DeleteExecution(name=name_, uid=uid):
                self.api.delete_execution(ns, name_, uid)
                log.info("execution %s/%s: ttlSecondsAfterFinished passed, deleted", ns, name_)
            case machine.EmitEvent(reason=reason, message=message, type=type_, key=event_key):
                self._emit_once(snapshot, event_name(snapshot, reason, event_key), type_, reason, message)
            case machine.Observe():
                self.metrics.observe(action)
        return True


    def _after_conflict(self, key: Key, snapshot: Snapshot) -> Snapshot:
        """If the watch has not brought anything newer since a Conflict, read the object once ourselves."""
        with self._lock:
            stale = self._conflicted.pop(key, None)
        if stale is None or snapshot.raw["metadata"].get("resourceVersion") != stale:
            return snapshot
        fresh = self.api.get_execution(*key)
        if fresh is not None:
            self.world.execution_seen(fresh)
        return self.world.snapshot(key) or snapshot

    def _emit_once(self, snapshot: Snapshot, name: str, type_: str, reason: str, message: str) -> None:
        with self._lock:
            if name in self._posted:
                return
        self.api.emit_event(_involved(snapshot), name, type_, reason, message)
        with self._lock:
            self._posted[name] = None
            while len(self._posted) > POSTED_EVENTS_KEPT:
                self._posted.popitem(last=False)

    def report_failure(self, key: Key, message: str) -> None:
        """A Warning Event on the execution: a failure that keeps coming back is seen where users look."""
        snapshot = self.world.snapshot(key)
        if snapshot is not None:
            self.api.emit_event(_involved(snapshot), event_name(snapshot, "ReconcileFailed"), "Warning",
                                "ReconcileFailed", f"{message}; retrying with backoff")

    def _ensure_runner(self, ex) -> None:
        """Creates what the runner needs, each only if it is ours: ownership goes by UID, never by name."""
        for body in (builders.service_account(ex, self.runner), builders.role(ex), builders.role_binding(ex),
                     builders.runner_pod(ex, self.runner)):
            created = self.api.create(body)
            kind, name = body["kind"], body["metadata"]["name"]
            if created is None:
                owner = self.api.controller_uid(kind, ex.namespace, name)
                if owner not in (None, ex.metadata.get("uid")):
                    # A deleted predecessor of the same name still owns it: wait for the garbage collector.
                    raise ApiFailure(f"create {kind} {ex.namespace}/{name}", Failure.CONFLICT,
                                     "still owned by a deleted execution of the same name")
            elif kind == "Pod":
                self.world.pod_seen(created)  # what the write returned: no second create while the watch lags


def _involved(snapshot: Snapshot) -> dict[str, str]:
    raw = snapshot.raw
    meta = raw["metadata"]
    return {"apiVersion": raw.get("apiVersion") or "", "kind": raw.get("kind") or "", "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta["uid"], "resourceVersion": meta.get("resourceVersion", "")}


def _next_wakeup(ex, pod, now: datetime) -> float | None:
    """Seconds until something changes with no event to announce it: a deadline, a start time, the end of a
    backoff or of the TTL (timing.py), or a terminating pod becoming overdue."""
    due = timing.next_wakeup(ex, now, machine.deadline_at(ex))
    if ex.phase == Phase.CANCELLING and (overdue := escalation_due(pod)) is not None:
        # Already overdue (the force delete went out): look again in a moment, not in a tight loop.
        escalate = (overdue - now).total_seconds() if overdue > now else 2.0
        due = escalate if due is None else min(due, escalate)
    return due
