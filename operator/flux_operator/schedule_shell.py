"""The Schedule machine's shell: what the watch delivered (ScheduleStore) and one reconcile of a Schedule.

Like the execution side, the state comes from the watches (the Schedule here, its runs from the
World) and the decision is pure (schedule_machine.decide_schedule); this only carries out the actions.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any

import pydantic
from flux_api import nesting
from flux_api.errors import FORBIDDEN_KINDS, REFUSED, Failure, is_refusal
from flux_api.events import EventReason
from flux_api.names import (
    REPLACED_BY_ANNOTATION,
    RUN_TOKEN_ANNOTATION,
    SCHEDULE_LABEL,
    SCHEDULED_AT_ANNOTATION,
    UNSCHEDULE_REASON_ANNOTATION,
)
from flux_api.schedule import Schedule
from flux_api.timefmt import format_time, parse_time, utcnow
from flux_api.types import MAX_REASON

from flux_operator import payloads
from flux_operator import schedule_machine as plan
from flux_operator.eventnames import event_name
from flux_operator.kube import ApiFailure, KubeApi
from flux_operator.metrics import Metrics
from flux_operator.workqueue import Result
from flux_operator.world import Key, World

log = logging.getLogger("flux_operator")

# A create answered with one of these stored nothing: the run's token is still secret, and a retry may reuse it.
NOTHING_STORED = frozenset({*REFUSED, *FORBIDDEN_KINDS, Failure.QUOTA, Failure.THROTTLED})


class ScheduleStore:
    """Thread-safe: kopf's watch handler writes, the schedule worker reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._raw: dict[Key, dict[str, Any]] = {}

    def seen(self, raw: dict[str, Any]) -> Key:
        return self.changed(raw)[0]

    def changed(self, raw: dict[str, Any]) -> tuple[Key, bool]:
        """Stores the Schedule; whether it is news: a version not held yet. The echo of the operator's own status
        write is not (the shell stored the write's answer): it must not start another pass at once, which would
        write again and be echoed again, past every backoff."""
        meta = raw.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        with self._lock:
            old = self._raw.get(key)
            news = old is None or (old["metadata"].get("uid"), old["metadata"].get("resourceVersion")) != (
                meta.get("uid"), meta.get("resourceVersion"))
            if old is None or _not_older(raw, old):
                self._raw[key] = trim_schedule(raw)
        return key, news

    def gone(self, raw: dict[str, Any]) -> Key:
        meta = raw.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        with self._lock:
            if (self._raw.get(key) or {}).get("metadata", {}).get("uid") == meta.get("uid"):
                self._raw.pop(key, None)
        return key

    def get(self, key: Key) -> dict[str, Any] | None:
        with self._lock:
            return self._raw.get(key)

    def keys(self) -> list[Key]:
        with self._lock:
            return list(self._raw)

    def held(self, namespace: str | None) -> list[dict[str, Any]]:
        """The Schedules held in `namespace` (all for None): listings.py forgets those a listing lacks."""
        with self._lock:
            return [dict(raw) for key, raw in self._raw.items() if namespace in (None, key[0])]


TEMPLATE = "spec.executionTemplate"


def trim_schedule(raw: dict[str, Any]) -> dict[str, Any]:
    """What decisions read of a Schedule: its template only when small (payloads.py); else just the workflow
    (the model needs one), the rest read from the server when a run is started."""
    meta = payloads.metadata(raw.get("metadata") or {})
    spec = dict(raw.get("spec") or {})
    template = spec.get("executionTemplate")
    if isinstance(template, dict) and (kept := payloads.shrink(template)) is not template:
        meta.setdefault(payloads.KEPT_OUT, {})[TEMPLATE] = nesting.elided(kept)
        spec["executionTemplate"] = {"spec": {"workflow": (template.get("spec") or {}).get("workflow")}}
    trimmed = {"apiVersion": raw.get("apiVersion"), "kind": raw.get("kind"), "metadata": meta, "spec": spec}
    if raw.get("status") is not None:
        trimmed["status"] = raw["status"]
    return trimmed


def _not_older(new: dict[str, Any], old: dict[str, Any]) -> bool:
    if new["metadata"].get("uid") != old["metadata"].get("uid"):
        return True
    try:
        return int(new["metadata"]["resourceVersion"]) >= int(old["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return True


def schedule_of(raw_execution: dict[str, Any]) -> Key | None:
    """The Schedule that started this execution, from its label."""
    meta = raw_execution.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SCHEDULE_LABEL)
    return (meta.get("namespace", ""), name) if name else None


def refused_for_good(err: ApiFailure) -> bool:
    """The create can only be refused again: the schema, a size, or admission said no (flux_api.errors). A 403 of
    RBAC (the operator's role being upgraded) or of a policy whose TenancyPolicy is missing for a moment is
    retried with backoff, and so is a terminating namespace's (the Schedule goes with it)."""
    return is_refusal(err.kind) and err.kind is not Failure.TERMINATING


def _scheduled_at(body: dict[str, Any]) -> str:
    """The cron time a run's body carries in its annotation (schedule_machine.run_body writes it)."""
    return body["metadata"]["annotations"][SCHEDULED_AT_ANNOTATION]


def _due_of(decision: plan.Decision) -> str | None:
    """The cron time of the run the decision creates, if it creates one."""
    create = next((a for a in decision.actions if isinstance(a, plan.CreateRun)), None)
    return _scheduled_at(create.body) if create is not None else None


class ScheduleReconciler:
    def __init__(self, store: ScheduleStore, world: World, api: KubeApi, clock=utcnow,
                 new_token=lambda: secrets.token_hex(16), metrics: Metrics | None = None) -> None:
        self.store, self.world, self.api, self.clock, self.new_token = store, world, api, clock, new_token
        self.metrics = metrics
        # Per Schedule: the (uid, generation) last told InvalidTemplate. One entry per Schedule, gone with it: a
        # tenant touching labels in a loop makes no new versions of the spec, and no log line or Event.
        self._said: dict[Key, tuple[str | None, int | None]] = {}
        # Per Schedule: (uid, cron time, the token of that run's create answered "no": nothing was stored and the
        # token is still secret). A retry of that run reuses it: the intent already written stands, and no status
        # is written. Another cron time's run gets a new token: each token proves one name.
        self._tokens: dict[Key, tuple[str | None, str, str]] = {}

    def reconcile(self, key: Key) -> Result:
        raw = self.store.get(key)
        if raw is None or raw["metadata"].get("deletionTimestamp"):
            self._said.pop(key, None)
            self._tokens.pop(key, None)
            return Result()
        try:
            schedule = Schedule.model_validate(raw)
        except pydantic.ValidationError as err:
            log.error("schedule %s/%s does not parse, left alone: %s", *key, err.errors()[0]["msg"])
            return Result()
        ns, name = key
        if (problem := payloads.depth_problem(schedule.metadata, TEMPLATE)) is not None:
            self._invalid_template(raw, problem)
            return Result()
        candidates, present = self.world.labelled_runs(key)
        uid = raw["metadata"].get("uid")
        kept = self._tokens.pop(key, None)
        token = kept[2] if kept is not None and kept[0] == uid else self.new_token()
        decision = plan.decide_schedule(schedule, candidates, self.clock(), token=token,
                                        taken=self.world.names_in(ns), present=present)
        if kept is not None and token == kept[2] and _due_of(decision) not in (None, kept[1]):
            token = self.new_token()  # another cron time's run: never under the token of an earlier one
            decision = plan.decide_schedule(schedule, candidates, self.clock(), token=token,
                                            taken=self.world.names_in(ns), present=present)
        for action in decision.actions:
            if isinstance(action, plan.CreateRun) and payloads.kept_out(schedule.metadata, TEMPLATE):
                action = self._with_stored_template(raw, action)
                if action is None:
                    return Result()
            match action:
                case plan.ReplaceRun(name=run, reason=reason, uid=run_uid):
                    # The UID as a precondition: a namesake made since the decision answers Conflict.
                    answer = self.api.patch_execution(ns, run, {
                        "metadata": {"annotations": {REPLACED_BY_ANNOTATION: name}, **({"uid": run_uid} if run_uid
                                                                                         else {})},
                        "spec": {"cancel": {"reason": reason}}})
                    if answer is not None:  # told: the next pass (more of them, or the new run) skips it
                        self.world.execution_seen(answer)
                case plan.CreateRun(name=run, body=body):
                    try:
                        created = self.api.create_run(ns, body)
                    except ApiFailure as err:
                        if err.kind in NOTHING_STORED:  # else it may have been stored, token and all
                            self._tokens[key] = (uid, _scheduled_at(body), token)
                        if refused_for_good(err):
                            return self._refused(raw, key, body, err)
                        raise
                    if created is None:  # the name was taken meanwhile: learn by whom, and decide again
                        log.info("schedule %s/%s: %s already exists", ns, name, run)
                        found = self.api.get_execution(ns, run)
                        if found is not None:
                            self.world.execution_seen(found)
                    else:
                        log.info("schedule %s/%s: started %s", ns, name, run)
                        self.world.execution_seen(created)  # so the next decision records it at once
                        self._created_late(body)
                    return Result(requeue_after=0)
                case plan.DeleteRun(name=run, uid=uid):
                    self.api.delete_execution(ns, run, uid)
                case plan.Suspend(reason=reason):
                    self.api.patch_schedule(ns, name, {"metadata": {"annotations": {UNSCHEDULE_REASON_ANNOTATION:
                                                                                     reason[:MAX_REASON]}},
                                                       "spec": {"suspend": True}})
                case plan.ScheduleEvent(reason=reason, message=message, type=type_, key=event_key):
                    self._event(raw, key, reason, message, type_, event_key)
                case plan.PatchScheduleStatus(patch=patch):
                    try:
                        written = self.api.patch_schedule_status(ns, name, patch, raw["metadata"].get("resourceVersion"))
                    except ApiFailure as err:
                        if err.kind is not Failure.CONFLICT:
                            raise
                        fresh = self.api.get_schedule(ns, name)
                        if fresh is not None:
                            self.store.seen(fresh)
                        return Result(requeue_after=0)
                    self.store.seen(written)
                    raw = written
        return Result(requeue_after=decision.requeue_after)

    def _refused(self, raw: dict[str, Any], key: Key, body: dict[str, Any], err: ApiFailure) -> Result:
        """The run's create was refused for good: its cron time is skipped and the Schedule says why."""
        due = parse_time(_scheduled_at(body))
        log.warning("schedule %s/%s: the run of %s was refused: %s", *key, format_time(due), err)
        decision = plan.decide_refused(Schedule.model_validate(raw), due, err.detail or str(err), self.clock())
        for action in decision.actions:
            match action:
                case plan.ScheduleEvent(reason=reason, message=message, type=type_, key=event_key):
                    self._event(raw, key, reason, message, type_, event_key)
                case plan.PatchScheduleStatus(patch=patch):
                    written = self.api.patch_schedule_status(*key, patch, raw["metadata"].get("resourceVersion"))
                    self.store.seen(written)
        return Result(requeue_after=decision.requeue_after)

    def report_failure(self, key: Key, message: str) -> None:
        """A Warning Event on the Schedule: a failure that keeps coming back (a quota that stays full) is seen
        where users look, not only in the operator's log."""
        raw = self.store.get(key)
        if raw is not None:
            self._event(raw, key, EventReason.RECONCILE_FAILED, f"{message}; retrying with backoff", "Warning", "")

    def _event(self, raw: dict[str, Any], key: Key, reason: EventReason, message: str, type_: str,
               event_key: str) -> None:
        ns, name = key
        meta = raw["metadata"]
        involved = {"apiVersion": raw.get("apiVersion") or "", "kind": raw.get("kind") or "Schedule",
                    "name": name, "namespace": ns, "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", "")}
        posted = self.api.emit_event(involved, event_name(meta, reason, event_key), type_, reason, message)
        if posted and reason == EventReason.MISSED_SCHEDULE and self.metrics is not None:
            self.metrics.schedule_missed.inc()  # once: the Event's name is the missed minute's

    def _created_late(self, body: dict[str, Any]) -> None:
        due = parse_time(((body.get("metadata") or {}).get("annotations") or {}).get(SCHEDULED_AT_ANNOTATION))
        if due is not None and self.metrics is not None:
            self.metrics.schedule_lateness.observe(max((self.clock() - due).total_seconds(), 0.0))

    def _invalid_template(self, raw: dict[str, Any], problem: str) -> None:
        meta = raw["metadata"]
        key, said = (meta.get("namespace", ""), meta.get("name", "")), (meta.get("uid"), meta.get("generation"))
        if self._said.get(key) == said:
            return  # once per version of the Schedule's spec, not at every safety pass or label change
        self._said[key] = said
        log.error("schedule %s/%s starts no run: %s", raw["metadata"].get("namespace"), raw["metadata"].get("name"),
                  problem)
        self._event(raw, key, EventReason.INVALID_TEMPLATE,
                    f"no run is started: {problem}", "Warning", "")

    def _with_stored_template(self, raw: dict[str, Any], action: plan.CreateRun) -> plan.CreateRun | None:
        """The run's body from the template as stored (the store keeps a large one only as a stub)."""
        meta = raw["metadata"]
        stored = self.api.get_schedule(meta.get("namespace", ""), meta.get("name", ""))
        if stored is None or (stored.get("metadata") or {}).get("uid") != meta.get("uid"):
            return None  # gone meanwhile: its DELETED event follows
        kept = payloads.shrink((stored.get("spec") or {}).get("executionTemplate"))
        if payloads.is_deep_stub(kept):
            self._invalid_template(raw, f"{TEMPLATE} nests deeper than {nesting.PAYLOAD_DEPTH} levels")
            return None
        schedule = Schedule.model_validate(stored)
        moment = parse_time(_scheduled_at(action.body))
        token = action.body["metadata"]["annotations"].get(RUN_TOKEN_ANNOTATION, "")
        return plan.CreateRun(action.name, plan.run_body(schedule, action.name, moment, token))
