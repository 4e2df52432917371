"""The execution machine's shell: the watched state of an execution in, `execution.machine.decide()`, its
actions out to the API.

The state comes from the World. Reads are the exceptions: a Conflict on the status write means our
copy is stale, so the fresh object goes into the World and the key is retried; and an action that needs
a value the World keeps only as a stub (a pod template, a spawn input, a child's result: payloads.py)
reads it once. Failures are classified once (kube.ApiFailure) and answered by the work queue.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

from flux_api import EXECUTION_LABEL, TERMINAL_PHASES, Execution, Phase, logfields, nesting
from flux_api.errors import Failure
from flux_api.events import EventReason
from flux_api.tenancy import DEFAULT_MAX_TREE
from flux_api.timefmt import utcnow

from flux_operator import budget, builders, guard, payloads
from flux_operator.execution import machine
from flux_operator.execution.queueing import SLOT_FREED, could_start_now
from flux_operator.execution.wakeup import next_wakeup
from flux_operator.execution.children import newly_admitted
from flux_operator.kube import ApiFailure, KubeApi
from flux_operator.making import Maker
from flux_operator.metric_values import transition
from flux_operator.metrics import Metrics
from flux_operator.ownership import Memories, Memory
from flux_operator.queues import Queues
from flux_operator.tracing import Tracing
from flux_operator.workqueue import Result
from flux_operator.world import Key, Snapshot, World

log = logging.getLogger("flux_operator")


# After a Conflict the watch normally delivers the newer object within milliseconds: wait this long
# for it before reading the object ourselves.
CONFLICT_SETTLE_SECONDS = 0.1
# Events this replica already posted, so a decision repeated after a Conflict does not post them again.
# Bounded: after a restart (or when full) a repeat is only a harmless 409 on the Event's fixed name.
POSTED_EVENTS_KEPT = 50_000
# Child results the World holds as stubs, once read: a finished child's result never changes, but its parent
# writes its whole children list at each child's change, and would read every large one again each time.
RESULTS_KEPT_BYTES = 16 * 2**20


# The phases in which a runner may be about to start, so a concurrency limit may hold it back.
QUEUEABLE = (Phase.PENDING, Phase.SUSPENDED, Phase.WAITING)
PASSED_ON = ("spec.podTemplate", "spec.image")  # what a runner pod and a child take from the execution
# Children's cancels in flight at once, per reconcile: a cascade's signals go out together, not one round trip
# after another, and a tenant's big tree never queues more than this ahead of other namespaces' in the pool.
CANCEL_SENDERS = 8
# Children's cancels sent in one reconcile; the rest in the next, queued again at once behind other namespaces'
# work: a tree of thousands must not hold a worker for minutes. Above MAX_CHILDREN, so every direct child is
# reached in the first pass (and cascades to its own), whatever becomes of this execution.
CANCELS_PER_PASS = 64


class Reconciler:
    def __init__(self, world: World, api: KubeApi, runner: builders.RunnerSettings, metrics: Metrics,
                 clock=utcnow) -> None:
        self.world, self.api, self.runner, self.metrics, self.clock = world, api, runner, metrics, clock
        self._posted: OrderedDict[str, None] = OrderedDict()
        self._conflicted: dict[Key, str] = {}  # key -> the resourceVersion a status write met a Conflict on
        self._results: OrderedDict[tuple[str, str, str], tuple[dict[str, Any], int]] = OrderedDict()
        self._results_bytes = 0
        self._lock = threading.Lock()
        self.memories = Memories()  # per execution: creation tokens, what was made, refused creates
        self.maker = Maker(api, world, runner,
                           lambda failure: metrics.reconcile_errors.labels(failure).inc())
        self._senders = ThreadPoolExecutor(CANCEL_SENDERS, thread_name_prefix="cancel-child")
        self._sending: set[Key] = set()  # children whose cancel a pass is sending now: no other sends it too
        self.tracing: Tracing | None = None  # runtime.py sets it with --tracing-endpoint
        self.queues: Queues | None = None  # runtime.py sets it: the concurrency limits' verdicts
        self.on_wake: Callable[[list[Key]], None] | None = None  # and this: the controller's enqueue

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
        if self.tracing is not None:  # its log lines name its trace and span too
            with logfields.about(**self.tracing.log_ids(snapshot.raw)):
                return self._reconcile(key, snapshot)
        return self._reconcile(key, snapshot)

    def _reconcile(self, key: Key, snapshot: Snapshot) -> Result:
        snapshot = self._after_conflict(key, snapshot)
        ex = builders.with_defaults(snapshot.execution, self.runner)
        now = self.clock()
        memory = self.memories.of(ex)
        intent = machine.cancel_intent(ex, now)
        cascades = intent is not None and intent.cascade and snapshot.children and ex.phase not in TERMINAL_PHASES
        family = self.world.family(key) if cascades else None
        queueable = (self.queues is not None and ex.phase in QUEUEABLE and snapshot.pod is None  # about to start
                     and could_start_now(ex, intent is not None, now))
        queued = self.queues.verdict(key, now) if queueable else None
        most = self.runner.limits.maxExecutionsPerTree if self.runner.limits else DEFAULT_MAX_TREE
        tree = machine.TreeRoom(snapshot.tree_size, most)
        actions = machine.decide(ex, snapshot.pod, snapshot.children, now, memory, snapshot.cancel_requested_at,
                                 family, queued, tree)
        with self.world.tree_claim(key, snapshot.tree_size, newly_admitted(ex, actions)) as claimed:
            if not claimed:  # another parent in its tree admitted children meanwhile: decide again, counting them
                return Result(requeue_after=0.0)
            return self._carry_out(snapshot, ex, actions, memory, now)

    def _carry_out(self, snapshot: Snapshot, ex, actions: list[machine.Action], memory: Memory,
                   now: datetime) -> Result:
        stored = ex
        if any(isinstance(a, machine.EnsureRunner) for a in actions):
            stored = self._stored(ex, *PASSED_ON)  # the pod template itself, when the World keeps a stub
            # The backstop: what passes the platform's limits gets no pod, whoever admitted it.
            problems = guard.limit_problems(stored, self.runner.limits)
            if problems:
                actions = guard.refusal(ex, problems, now)
        cancels = [a for a in actions if isinstance(a, machine.CancelChild)]
        more_cancels = len(cancels) > CANCELS_PER_PASS
        failed_signal = self._cancel_children(snapshot, ex, cancels[:CANCELS_PER_PASS])
        refused = False
        for action in actions:
            if isinstance(action, machine.CancelChild):
                continue  # sent above, all at once
            if isinstance(action, machine.EmitEvent) and failed_signal:
                if action.reason == EventReason.SIGNALLED:
                    continue  # it was not delivered: say that instead
                action = dataclasses.replace(action, signalled="")
            if isinstance(action, machine.EnsureRunner):
                refused |= not self.maker.runner(stored, action, memory, now)
                continue
            if isinstance(action, machine.CreateChild):
                refused |= not self.maker.child(*self._with_input(ex, action), memory, now)
                continue
            if isinstance(action, machine.MakeProgress):
                self.maker.progress(ex, memory)
                continue
            try:
                if not self._apply(snapshot, ex, action):
                    # The status moved on: decide again once the watch has brought the newer copy.
                    return Result(requeue_after=CONFLICT_SETTLE_SECONDS)
            except ApiFailure as err:
                if not isinstance(action, machine.DeletePod):
                    raise
                # The cancel is still recorded (Cancelling) so users see it; the signal is retried.
                if failed_signal is None:
                    self._signal_failed(snapshot, err)
                    failed_signal = err
        if failed_signal is not None:
            raise failed_signal
        if any(isinstance(a, machine.DeleteExecution) for a in actions):
            self.memories.forget(ex)
            return Result()  # gone: its DELETED event takes it out of the World
        if refused:
            return Result(requeue_after=0.0)  # decide at once what the refusal means (fail, or wait and retry)
        written = next((a.patch for a in actions if isinstance(a, machine.PatchStatus)), {})
        if written.get("phase") in TERMINAL_PHASES:
            self.memories.forget(ex)
        if written.get("phase") in SLOT_FREED and self.queues is not None and self.on_wake is not None:
            # A slot of a concurrency limit may have freed: the next in line starts now, not after the echo.
            self.on_wake(self.queues.to_wake(ex.namespace, now))
        if more_cancels:
            return Result(requeue_after=0.0)  # the rest of the cascade, after other namespaces' turn
        return Result(requeue_after=next_wakeup(ex, snapshot.pod, now, memory))

    def _cancel_children(self, snapshot: Snapshot, ex, cancels: list[machine.CancelChild]) -> ApiFailure | None:
        """Every child's cancel sent, CANCEL_SENDERS at a time (independent merge patches); the first failure, after
        saying so in an Event: the cancel is still recorded, and the reconcile retries the signals."""
        with self._lock:
            # A child woken by an ancestor's pass decides while that pass goes on: what it would send to its
            # own descendants is already on the way.
            cancels = [c for c in cancels if (ex.namespace, c.name) not in self._sending]
            self._sending.update((ex.namespace, c.name) for c in cancels)
        in_flight: set[Future] = set()
        errors: list[BaseException] = []
        for cancel in cancels:
            if len(in_flight) >= CANCEL_SENDERS:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                errors += _errors(done)
            in_flight.add(self._senders.submit(budget.carried(self._send_cancel, snapshot, ex, cancel)))
        errors += _errors(wait(in_flight).done)
        if unexpected := [e for e in errors if not isinstance(e, ApiFailure)]:
            raise unexpected[0]
        failed = errors[0] if errors else None
        if failed is not None:
            self._signal_failed(snapshot, failed)
        return failed

    def _send_cancel(self, snapshot: Snapshot, ex, cancel: machine.CancelChild) -> None:
        try:
            self._apply(snapshot, ex, cancel)
        finally:
            with self._lock:
                self._sending.discard((ex.namespace, cancel.name))

    def _signal_failed(self, snapshot: Snapshot, err: ApiFailure) -> None:
        self.api.emit_event(_involved(snapshot), snapshot.event_name(EventReason.SIGNAL_FAILED),
                            "Warning", EventReason.SIGNAL_FAILED, f"could not signal: {err}; retrying")

    def _apply(self, snapshot: Snapshot, ex, action: machine.Action) -> bool:
        """False when the status write met a newer object (a Conflict): nothing after it may run."""
        ns, name = ex.namespace, ex.name
        match action:
            case machine.PatchStatus(patch=patch, fenced=fenced):
                patch = self._stored_values(ns, patch)
                rv = snapshot.raw["metadata"].get("resourceVersion") if fenced else None
                try:
                    written = self.api.patch_status(ns, name, patch, rv)
                except ApiFailure as err:
                    if err.kind is not Failure.CONFLICT:
                        raise
                    with self._lock:
                        self._conflicted[(ns, name)] = rv or ""
                    return False
                self.world.execution_seen(written)
                if "phase" in patch or "startedAt" in patch:
                    self.metrics.transition(transition(ex.phase, ex.status.startedAt, written))
                if self.tracing is not None and patch.get("phase") in TERMINAL_PHASES \
                        and ex.phase not in TERMINAL_PHASES:
                    self.tracing.concluded(written)
                if "phase" in patch:
                    log.info("execution %s/%s: %s -> %s", ns, name, ex.phase, patch["phase"], extra=_about(snapshot))
            case machine.DeletePod(name=pod, grace_seconds=grace, uid=uid):
                answer = self.api.delete_pod(ns, pod, grace, uid or None)
                if answer is None:
                    # Already gone: a watch that broke (an API server restart) can miss a deletion, which
                    # only its next listing proves (listings.py). The delete's answer is news: take it now.
                    self.world.pod_gone({"metadata": {"name": pod, "namespace": ns, "uid": uid or None,
                                                      "labels": {EXECUTION_LABEL: name}}})
                elif answer.get("kind") == "Pod":
                    # Terminating now: a decision made before the watch says so must not signal it again.
                    self.world.pod_seen(answer, held_only=True)
            case machine.CancelChild(name=child, reason=reason, force=force, parent=parent):
                answer = self.api.patch_execution(ns, child, builders.child_cancel_patch(parent or name, reason, force),
                                                  urgent=True)
                if answer is not None:
                    # News now, not after the watch's echo: the child signals its runner at once, and its own
                    # parent, deciding meanwhile, finds it cancelled and does not send the cancel again.
                    woken = self.world.execution_seen(answer)
                    if woken and self.on_wake is not None:
                        self.on_wake(woken[:1])
            case machine.SuspendChild(name=child, suspend=suspend, reason=reason, parent=parent):
                self.api.patch_execution(ns, child, builders.child_suspend_patch(parent, reason, suspend), urgent=True)
            case machine.DeleteExecution(name=name_, uid=uid):
                self.api.delete_execution(ns, name_, uid)
                log.info("execution %s/%s: ttlSecondsAfterFinished passed, deleted", ns, name_, extra=_about(snapshot))
            case machine.EmitEvent(reason=reason, message=message, type=type_, key=event_key, signalled=signalled):
                message = f"{message}; {signalled}" if signalled else message
                self._emit_once(snapshot, snapshot.event_name(reason, event_key), type_, reason, message)
            case machine.Observe():
                self.metrics.observe(action, self.tracing.trace_id(snapshot.raw) if self.tracing else None)
            case machine.ObserveRefusal(reason=reason, count=count):
                self.metrics.spawns_refused.labels(reason).inc(count)
        return True

    # --- values the World keeps only as stubs (payloads.py): read once when an action needs them ---

    def _stored(self, ex, *fields: str, stub=None):
        """`ex` itself, or as stored on the server when the World's copy lacks one of `fields` or `stub` is a
        size stub: the one read an action needs to pass a large value on."""
        if not payloads.kept_out(ex.metadata, *fields) and not payloads.is_size_stub(stub):
            return ex
        raw = self.api.get_execution(ex.namespace, ex.name)
        if raw is None or (raw.get("metadata") or {}).get("uid") != ex.metadata.get("uid"):
            raise ApiFailure(f"read execution {ex.namespace}/{ex.name}", Failure.NOT_FOUND, "gone meanwhile")
        stored = builders.with_defaults(Execution.model_validate(raw), self.runner)
        for field in fields:  # what the World found too deep was refused; a value grown deep since is too
            if (problem := payloads.value_problem(payloads.shrink(_field(raw, field)), field)) is not None:
                raise ApiFailure(f"read execution {ex.namespace}/{ex.name}", Failure.INVALID, problem)
        return stored

    def _with_input(self, ex, action: machine.CreateChild):
        """The parent as stored and the create with the spawn request's input itself, if the World has stubs."""
        parent = self._stored(ex, *PASSED_ON, stub=action.input)
        if parent is ex:
            return ex, action
        input_ = next((r.input for r in parent.status.spawnRequests if r.name == action.name), action.input)
        if (problem := payloads.value_problem(payloads.shrink(input_), f"the input of {action.name}")):
            raise ApiFailure(f"create execution {ex.namespace}/{action.name}", Failure.INVALID, problem)
        return parent, dataclasses.replace(action, input=input_)

    def _stored_values(self, ns: str, patch: dict) -> dict:
        """The status patch with each mirrored child result that the World holds as a stub read from the child,
        once per child and result (RESULTS_KEPT_BYTES)."""
        children = patch.get("children")
        if not children or not any(payloads.is_size_stub(c.get("result")) for c in children):
            return patch
        resolved = []
        for entry in children:
            stub = entry.get("result")
            if payloads.is_size_stub(stub):
                kept = {k: v for k, v in entry.items() if k != "result"}
                entry = {**kept, **self._child_result(ns, entry["name"], stub)}
            resolved.append(entry)
        return {**patch, "children": resolved}

    def _child_result(self, ns: str, name: str, stub: dict) -> dict[str, Any]:
        """{"result": value}, or {"phase": Failed, "error": why} for a value grown too deep since."""
        details = nesting.elided(stub) or {}
        key = (ns, name, str(details.get("digest")))
        with self._lock:
            if (kept := self._results.get(key)) is not None:
                self._results.move_to_end(key)
                return kept[0]
        raw = self.api.get_execution(ns, name) or {}
        result = ((raw.get("status") or {}).get("checkpoint") or {}).get("result")
        problem = payloads.value_problem(payloads.shrink(result), "its result")
        fields = {"phase": "Failed", "error": problem} if problem else {"result": result}
        size = int(details.get("bytes") or 0)
        with self._lock:
            if key not in self._results:
                self._results[key] = (fields, size)
                self._results_bytes += size
            while self._results_bytes > RESULTS_KEPT_BYTES and len(self._results) > 1:
                self._results_bytes -= self._results.popitem(last=False)[1][1]
        return fields

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
        self.api.emit_event(_involved(snapshot), name, type_, reason, message, deferrable=True)
        with self._lock:
            self._posted[name] = None
            while len(self._posted) > POSTED_EVENTS_KEPT:
                self._posted.popitem(last=False)

    def report_failure(self, key: Key, message: str) -> None:
        """A Warning Event on the execution: a failure that keeps coming back is seen where users look."""
        snapshot = self.world.snapshot(key)
        if snapshot is not None:
            self.api.emit_event(_involved(snapshot), snapshot.event_name(EventReason.RECONCILE_FAILED),
                                "Warning", EventReason.RECONCILE_FAILED, f"{message}; retrying with backoff")


def _field(raw: dict, path: str):
    node = raw
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _involved(snapshot: Snapshot) -> dict[str, str]:
    raw = snapshot.raw
    meta = raw["metadata"]
    return {"apiVersion": raw.get("apiVersion") or "", "kind": raw.get("kind") or "", "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta["uid"], "resourceVersion": meta.get("resourceVersion", "")}


def _about(snapshot: Snapshot) -> dict[str, object]:
    """The object a log line is about, as kopf's JSON format shows it ("object"); kopf's own per-object lines
    ("Handler ... succeeded", every watch event) are off unless --verbose. Never posted as an Event."""
    ref = _involved(snapshot)
    return {"k8s_skip": True, "k8s_ref": {k: ref[k] for k in ("apiVersion", "kind", "name", "uid", "namespace")}}


def _errors(done: set[Future]) -> list[BaseException]:
    return [err for future in done if (err := future.exception()) is not None]
