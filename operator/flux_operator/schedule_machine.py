"""The Schedule state machine: a Schedule and the Executions that look like its runs in, actions out.
Pure: no I/O, no clock, no randomness (the shell passes `now` and a fresh secret `token`).

Runs are named `<schedule>-<minutes since 1970 of the cron time>`, and after any downtime only the
latest missed time is considered: at most one run starts, never a burst. Cron times: crontimes.py.

Only the operator's own runs count. Anyone who may create Executions can copy the schedule label and an
ownerReference to the Schedule; only the operator writes the Schedule's status. So a run counts when it
has a controller ownerReference to the Schedule and its UID is in `status.runs`, the operator's record.
Creating a run takes three steps, each safe to repeat after a crash:
1. write `status.starting`: the cron time and the sha256 of the run's name and a secret token;
2. create the run, carrying the token as an annotation;
3. seeing the run (from the create's answer, or the watch after a crash), match it to the proof and move
   its UID into `status.runs`.
Nobody else can make an object that matches: the token is secret until the run exists, and the name is
then taken by the run itself. An object squatting the run's name gets a Warning Event, and the run is
created under a name nobody can guess in advance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from collections.abc import Collection, Container
from datetime import datetime, timedelta, timezone
from typing import Any

from flux_api import API_VERSION, KIND, TERMINAL_PHASES, Execution, Phase
from flux_api.conditions import READY, ReadyReason, set_condition
from flux_api.events import EventReason
from flux_api.names import RUN_TOKEN_ANNOTATION, SCHEDULE_KIND, SCHEDULE_LABEL, SCHEDULED_AT_ANNOTATION
from flux_api.schedule import (MAX_RECORDED_RUNS, MAX_STARTING, ActiveRef, ConcurrencyPolicy, LastUnschedule,
                               Schedule, StartingRun)
from flux_api.timefmt import format_time, parse_time
from flux_api.writes import ScheduleStatusWrite

from flux_operator.crontimes import InvalidSchedule, check_cron, latest_due, next_due, zone

# A run being created is matched to its proof within this long (a watch lagging after a failover included).
STARTING_TTL = timedelta(minutes=10)
_NEVER = datetime.min.replace(tzinfo=timezone.utc)  # sorts a run that has not finished first
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"

__all__ = ["InvalidSchedule", "decide_refused", "decide_schedule", "latest_due", "next_due", "run_name", "zone"]


@dataclass(frozen=True)
class CreateRun:
    name: str
    body: dict[str, Any]


@dataclass(frozen=True)
class ReplaceRun:
    """Cancel an active run through spec.cancel; the annotation makes its source `replaced`."""

    name: str
    reason: str
    uid: str = ""  # the run's own: a namesake made meanwhile is not cancelled in its place


@dataclass(frozen=True)
class DeleteRun:
    name: str
    uid: str


@dataclass(frozen=True)
class Suspend:
    """The workflow called ctx.unschedule: set spec.suspend, as a user would."""

    reason: str


@dataclass(frozen=True)
class PatchScheduleStatus:
    patch: dict[str, Any]


@dataclass(frozen=True)
class ScheduleEvent:
    reason: EventReason
    message: str
    type: str = "Normal"
    key: str = ""  # one Event per key (a run, a cron time); without one, one per Schedule and reason


ScheduleAction = CreateRun | ReplaceRun | DeleteRun | Suspend | PatchScheduleStatus | ScheduleEvent


@dataclass
class Decision:
    actions: list[ScheduleAction] = field(default_factory=list)
    requeue_after: float | None = None


def run_name(schedule: str, moment: datetime) -> str:
    return f"{schedule}-{int(moment.timestamp()) // 60}"


def spare_name(schedule: str, token: str) -> str:
    """The name of a run whose own name was squatted: unguessable, never all digits (so never the name of
    another cron time), and at most 63 characters for a Schedule name of at most 52."""
    number = int(hashlib.sha256(f"name\n{token}".encode()).hexdigest()[:16], 16)
    suffix = ""
    for _ in range(9):
        number, digit = divmod(number, 36)
        suffix += _BASE36[digit]
    return f"{schedule}-x{suffix}"


def proof(name: str, token: str) -> str:
    return hashlib.sha256(f"{name}\n{token}".encode()).hexdigest()


def run_body(schedule: Schedule, name: str, moment: datetime, token: str = "") -> dict[str, Any]:
    template = schedule.spec.executionTemplate
    meta = template.metadata
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {
            "name": name, "namespace": schedule.namespace,
            "labels": {**(meta.labels if meta else {}), SCHEDULE_LABEL: schedule.name},
            "annotations": {**(meta.annotations if meta else {}), SCHEDULED_AT_ANNOTATION: format_time(moment),
                            RUN_TOKEN_ANNOTATION: token},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": SCHEDULE_KIND, "name": schedule.name,
                                 "uid": schedule.metadata.get("uid", ""), "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": template.spec.model_dump(mode="json", exclude_none=True),
    }


def controlled_by(run: Execution, uid: str | None) -> bool:
    return bool(uid) and any(o.get("uid") == uid and o.get("controller") is True
                             for o in run.metadata.get("ownerReferences") or [])


def _scheduled_at(run: Execution) -> datetime | None:
    return parse_time((run.metadata.get("annotations") or {}).get(SCHEDULED_AT_ANNOTATION))


@dataclass
class _Runs:
    """The Schedule's own runs, after matching new runs to their proofs and forgetting the gone ones."""

    runs: list[Execution]
    record: list[str]
    starting: list[StartingRun]
    adopted: list[tuple[Execution, datetime]]


def _sort_out(schedule: Schedule, candidates: list[Execution], present: Collection[str], now: datetime) -> _Runs:
    uid = schedule.metadata.get("uid")
    record = [u for u in schedule.status.runs if u in present]  # a run that is gone is forgotten
    if "runs" not in schedule.status.model_fields_set:
        # Written by an operator from before the record: its runs (its own naming, no token) are taken over
        # once, as that operator took them; from the first write on, only the record counts.
        record += [r.metadata["uid"] for r in candidates if controlled_by(r, uid) and _scheduled_at(r)
                   and r.name == run_name(schedule.name, _scheduled_at(r))  # type: ignore[arg-type]
                   and RUN_TOKEN_ANNOTATION not in (r.metadata.get("annotations") or {})]
    starting = [s for s in schedule.status.starting if (s.since or now) > now - STARTING_TTL]
    adopted: list[tuple[Execution, datetime]] = []
    recorded = set(record)  # looked up once per labelled Execution: a record holds thousands, anyone may label
    for run in sorted(candidates, key=lambda r: r.name):
        token = (run.metadata.get("annotations") or {}).get(RUN_TOKEN_ANNOTATION)
        if run.metadata.get("uid") in recorded or not token or not controlled_by(run, uid):
            continue
        match = next((s for s in starting if s.proof == proof(run.name, token)), None)
        if match is not None:
            starting.remove(match)
            record.append(run.metadata["uid"])
            recorded.add(run.metadata["uid"])
            adopted.append((run, match.scheduledAt or now))
    runs = [r for r in candidates if r.metadata.get("uid") in recorded and controlled_by(r, uid)]
    return _Runs(runs, record, starting, adopted)


# One pass deletes at most this many finished runs (a lowered history limit can doom thousands): the worker
# it holds serves every namespace's Schedules, and a run due elsewhere must not wait behind the rest.
MAX_DELETES_A_PASS = 20
MAX_REPLACES_A_PASS = 20  # likewise for the cancels of concurrencyPolicy Replace
MORE_SOON = 0.1
MAX_REFUSAL_SAID = 1024  # of the API server's answer, in the Schedule's status and Event


def _history(schedule: Schedule, runs: list[Execution]) -> list[DeleteRun]:
    """The oldest finished runs beyond each history limit."""
    limits = {Phase.SUCCEEDED: schedule.spec.successfulExecutionsHistoryLimit,
              Phase.FAILED: schedule.spec.failedExecutionsHistoryLimit,
              Phase.CANCELLED: schedule.spec.cancelledExecutionsHistoryLimit}
    doomed = []
    for phase, limit in limits.items():
        done = sorted((r for r in runs if r.phase == phase), key=lambda r: (r.status.finishedAt or _NEVER, r.name),
                      reverse=True)
        doomed += [DeleteRun(r.name, r.metadata.get("uid", "")) for r in done[limit:]]
    return doomed


def _unschedule_request(schedule: Schedule, runs: list[Execution], now: datetime) -> Execution | None:
    """A run whose workflow called ctx.unschedule and that this Schedule has not answered yet. A suspend answers
    every request made before it: two asking runs must not take turns undoing each resume. The runner writes
    requestedAt itself: one later than now, or than the run's end, is not believed (the run's creation stands in),
    or two runs asking "in 2099" would take turns for ever."""
    last = schedule.status.lastUnschedule

    def unanswered(run: Execution) -> bool:
        if last is None:
            return True
        if run.name == last.execution:
            return False
        request = run.status.unscheduleRequest
        said = request.requestedAt if request else None
        bound = min(now, run.status.finishedAt or now)
        asked = said if said is not None and said <= bound else parse_time(run.metadata.get("creationTimestamp"))
        return last.at is None or (asked is not None and asked > last.at)
    asking = [r for r in runs if r.status.unscheduleRequest is not None and unanswered(r)]
    return min(asking, key=lambda r: r.name) if asking else None


def decide_schedule(schedule: Schedule, candidates: list[Execution], now: datetime, token: str,
                    taken: Container[str] = frozenset(), present: Collection[str] | None = None) -> Decision:
    """`candidates`: Executions labelled as this Schedule's runs, whoever made them. `token`: a fresh secret
    for a run created now. `taken`: names of Executions in the namespace. `present`: UIDs of the labelled
    Executions that exist (parsed or not); by default those of `candidates`."""
    if len(token) < 16:
        raise ValueError("a run token needs at least 16 characters of randomness")
    decision = Decision()
    status = ScheduleStatusWrite()
    old = schedule.status.model_dump(mode="json", exclude_none=True)
    conditions = [c.model_dump(exclude_none=True) for c in schedule.status.conditions]
    generation = schedule.metadata.get("generation")
    own = _sort_out(schedule, candidates, {r.metadata.get("uid") for r in candidates} if present is None
                    else present, now)
    runs = own.runs
    status.set(runs=own.record, starting=own.starting)
    last = schedule.status.lastScheduleTime
    for run, moment in own.adopted:
        decision.actions.append(ScheduleEvent(EventReason.RUN_STARTED, f"started {run.name} for {format_time(moment)}",
                                              key=run.name))
        last = max(last or moment, moment)
    if last is not None:
        status.set(lastScheduleTime=last)
    active = sorted(r.name for r in runs if r.phase not in TERMINAL_PHASES)
    suspended = schedule.spec.suspend

    asking = _unschedule_request(schedule, runs, now)
    if asking is not None and asking.status.unscheduleRequest is not None:
        reason = asking.status.unscheduleRequest.reason
        status.set(lastUnschedule=LastUnschedule(execution=asking.name, reason=reason, at=now))
        decision.actions.append(Suspend(reason))
        decision.actions.append(ScheduleEvent(EventReason.UNSCHEDULED, f"{asking.name} asked to unschedule: {reason}"))
        suspended = True

    doomed = _history(schedule, runs)
    decision.actions += doomed[:MAX_DELETES_A_PASS]
    if len(doomed) > MAX_DELETES_A_PASS:
        decision.requeue_after = MORE_SOON  # the rest next pass: other Schedules take their turns between
    succeeded = [s for s in (_scheduled_at(r) for r in runs if r.phase == Phase.SUCCEEDED) if s]
    if succeeded:
        status.set(lastSuccessfulTime=max(succeeded))

    try:
        expression, tz = check_cron(schedule.spec.schedule), zone(schedule.spec.timeZone)
        due, upcoming = latest_due(expression, tz, now), next_due(expression, tz, now)
    except InvalidSchedule as err:
        message = str(err)
        said = any(c.type == READY and c.status == "False" and c.reason == ReadyReason.INVALID_SCHEDULE
                   and c.message == message for c in schedule.status.conditions)
        set_condition(conditions, READY, False, ReadyReason.INVALID_SCHEDULE, message, generation, format_time(now))
        status.set(active=[ActiveRef(name=n) for n in active], nextScheduleTime=None, message=message)
        if not said:  # once: looking again (the safety pass) finds nothing new to say
            decision.actions.append(ScheduleEvent(EventReason.INVALID_SCHEDULE, message, "Warning",
                                                  key=str(generation or "")))
        return _finish(decision, schedule, old, status, conditions)

    if suspended:
        set_condition(conditions, READY, True, ReadyReason.SUSPENDED, "suspended: no new runs", generation,
                      format_time(now))
        status.set(active=[ActiveRef(name=n) for n in active], nextScheduleTime=None, message="suspended")
        return _finish(decision, schedule, old, status, conditions)

    if any(c.type == READY and c.reason == ReadyReason.SUSPENDED for c in schedule.status.conditions):
        status.set(resumedAt=now)  # the times missed while suspended are not made up
    moments = [status.resumedAt or schedule.status.resumedAt, last,
               parse_time(schedule.metadata.get("creationTimestamp"))]
    since = max((m for m in moments if m is not None), default=now)
    message = None
    create: CreateRun | None = None
    if due > since:
        minute = str(int(due.timestamp()) // 60)
        late = (now - due).total_seconds()
        deadline = schedule.spec.startingDeadlineSeconds
        if any(_scheduled_at(r) == due for r in runs):
            status.set(lastScheduleTime=due)
        elif deadline is not None and late > deadline:
            message = f"missed the run of {format_time(due)} by {late:.0f}s (startingDeadlineSeconds {deadline})"
            decision.actions.append(ScheduleEvent(EventReason.MISSED_SCHEDULE, message, "Warning", key=minute))
            status.set(lastScheduleTime=due)  # skipped for good: never started late
        elif active and schedule.spec.concurrencyPolicy == ConcurrencyPolicy.FORBID:
            message = f"run of {format_time(due)} waits: {', '.join(active)} still active (concurrencyPolicy Forbid)"
            decision.actions.append(ScheduleEvent(EventReason.SKIPPED_FORBID, message, key=minute))
            if deadline is not None:  # look again when its deadline passes (a finished run also wakes us)
                decision.requeue_after = min(max(1.0, deadline - late), decision.requeue_after or float("inf"))
        elif len(own.record) >= MAX_RECORDED_RUNS:
            message = (f"run of {format_time(due)} waits: {len(own.record)} runs exist, at most {MAX_RECORDED_RUNS} "
                       "are kept (lower the history limits, or let active runs finish)")
            decision.actions.append(ScheduleEvent(EventReason.TOO_MANY_RUNS, message, "Warning", key=minute))
        else:
            name = run_name(schedule.name, due)
            if name in taken:
                spare = spare_name(schedule.name, token)
                decision.actions.append(ScheduleEvent(
                    EventReason.RUN_NAME_TAKEN, f"{name} already exists and is not a run of this Schedule: the run of "
                    f"{format_time(due)} starts as {spare}", "Warning", key=name))
                name = spare
            replaced = [r for r in runs if r.name in active and r.spec.cancel is None] \
                if schedule.spec.concurrencyPolicy == ConcurrencyPolicy.REPLACE else []
            decision.actions += [ReplaceRun(run.name, f"replaced by {name}: schedule {schedule.name} has "
                                                      "concurrencyPolicy Replace", run.metadata.get("uid", ""))
                                 for run in replaced[:MAX_REPLACES_A_PASS]]
            if len(replaced) > MAX_REPLACES_A_PASS:
                # The rest next pass, and the new run once every old one is told: other Schedules go between.
                message = f"run of {format_time(due)} waits: replacing {len(replaced)} active runs"
                decision.requeue_after = MORE_SOON
            else:
                intent = StartingRun(scheduledAt=due, proof=proof(name, token), since=now)
                if all(s.proof != intent.proof for s in own.starting):  # a retry with the same token: it stands
                    status.set(starting=[*own.starting, intent][-MAX_STARTING:])
                create = CreateRun(name, run_body(schedule, name, due, token))
    if create is None and _refused_as_is(schedule, generation):
        message = message or schedule.status.message  # said until a run starts or the spec changes
    else:
        set_condition(conditions, READY, True, ReadyReason.SCHEDULED, f"next run at {format_time(upcoming)}",
                      generation, format_time(now))
    status.set(active=[ActiveRef(name=n) for n in active], nextScheduleTime=upcoming, message=message)
    wait = (upcoming - now).total_seconds()
    decision.requeue_after = min(decision.requeue_after or wait, wait)
    return _finish(decision, schedule, old, status, conditions, create)


def _refused_as_is(schedule: Schedule, generation: int | None) -> bool:
    return any(c.type == READY and c.reason == ReadyReason.RUN_REFUSED and c.observedGeneration == generation
               for c in schedule.status.conditions)


def decide_refused(schedule: Schedule, due: datetime, why: str, now: datetime) -> Decision:
    """The API server refused the run of `due` for good (its template, a policy, its size): that cron time is
    skipped, as a missed one is, and said on the Schedule (Ready False, RunRefused) and in one Warning Event;
    the next cron time tries again, and so does a new version of the spec. Trying the same request again could
    only be refused again, each time with a status write and a log line."""
    decision = Decision()
    status = ScheduleStatusWrite()
    old = schedule.status.model_dump(mode="json", exclude_none=True)
    conditions = [c.model_dump(exclude_none=True) for c in schedule.status.conditions]
    generation = schedule.metadata.get("generation")
    message = f"the run of {format_time(due)} was refused: {why[:MAX_REFUSAL_SAID]}"
    set_condition(conditions, READY, False, ReadyReason.RUN_REFUSED, message, generation, format_time(now))
    status.set(lastScheduleTime=due, message=message,
               starting=[s for s in schedule.status.starting if s.scheduledAt != due])
    decision.actions.append(ScheduleEvent(EventReason.RUN_REFUSED, message, "Warning",
                                          key=str(int(due.timestamp()) // 60)))
    decision.requeue_after = 0  # decide again now: the next cron time, and what the status says meanwhile
    return _finish(decision, schedule, old, status, conditions)


def _finish(decision: Decision, schedule: Schedule, old: dict[str, Any], status: ScheduleStatusWrite,
            conditions: list[dict[str, Any]], create: CreateRun | None = None) -> Decision:
    """The status patch goes after the other actions and before the create: the create happens only once
    its proof is written (a conflict on the patch stops the shell before it). Only what differs from the
    status read is written."""
    status.set(conditions=conditions, observedGeneration=schedule.metadata.get("generation"))
    decided, empty = status.patch(), ([], None)
    changed = {k: v for k, v in decided.items() if old.get(k) != v and not (v in empty and old.get(k) in empty)}
    if "runs" not in schedule.status.model_fields_set:
        changed["runs"] = decided.get("runs", [])  # the record exists from now on, even empty
    if changed:
        decision.actions.append(PatchScheduleStatus(changed))
    if create is not None:
        decision.actions.append(create)
    return decision
