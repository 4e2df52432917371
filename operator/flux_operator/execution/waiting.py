"""Durable waits: the runner checkpointed state Waiting (a long ctx.sleep) and ended its pod. Pure.

The execution shows phase Waiting with what it waits for, holds no pod, and at the checkpoint's wakeAt a
new pod goes on from the checkpoint (every finished step, the sleep included, is skipped). A cancel while
Waiting ends it at once; a suspend makes it Suspended at once (its resume sleeps on if the time has not come).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flux_api import Execution, Phase
from flux_api.events import EventReason
from flux_api.signals import Signal, nth_index
from flux_api.timefmt import format_time
from flux_api.types import SignalReceived

from flux_operator.execution.actions import RUN_AGAIN, DeletePod, Plan, PodView
from flux_operator.payloads import SIGNALS_FIELD_MANAGER


# A durable wait lasts at least this long, whatever wakeAt the runner wrote: a runner lying about its wake time
# cannot make the operator start its pods back to back. Honest waits are longer (--durable-wait-after >= 10 s).
MIN_WAIT = timedelta(seconds=10)
AT_ONCE = datetime.fromtimestamp(0, timezone.utc)


def wake_at(ex: Execution) -> datetime | None:
    """When a Waiting execution's next pod starts; None when it is not waiting."""
    checkpoint = ex.status.checkpoint
    if checkpoint is None or checkpoint.state != Phase.WAITING:
        return None
    return checkpoint.wakeAt


def waits_for(ex: Execution) -> str:
    checkpoint = ex.status.checkpoint
    when = wake_at(ex)
    return (checkpoint.waiting if checkpoint and checkpoint.waiting else None) or \
        (f"sleeping until {format_time(when)}" if when else "waiting")


def runner_waits(ex: Execution, pod: PodView | None, plan: Plan, now: datetime) -> None:
    """Pending or Running, and the runner's last word is Waiting: phase Waiting; its pod is done, deleted."""
    if pod is not None and not pod.terminating:
        # The runner exits by itself after that checkpoint; a pod that stays (a runner lying about waiting)
        # is stopped like any other, with its grace period.
        done = pod.phase in ("Succeeded", "Failed")
        plan.actions.append(DeletePod(pod.name, 0 if done else ex.spec.gracePeriodSeconds, pod.uid))
    message = waits_for(ex)
    plan.status.set(phase=Phase.WAITING, message=message, waitingSince=now)
    if ex.status.startedAt is None:
        plan.status.set(startedAt=now)  # it ran: it checkpointed
    plan.event(EventReason.WAITING, f"{message}: the runner pod ended, none runs until then", key=_key(ex))


def due(ex: Execution, pod: PodView | None, now: datetime) -> bool:
    """The wake time has come, or the signal waited for has arrived, and the last pod is gone: the next one
    may start (and takes the signal, or times out)."""
    when = ends_at(ex)
    return pod is None and when is not None and now >= when


def ends_at(ex: Execution) -> datetime | None:
    """When a Waiting execution's next pod may start once its last pod is gone (signal_at, else wakes); None
    for a wait for a signal that has not arrived and has no timeout."""
    at = signal_at(ex)
    return at if at is not None else wakes(ex)


def wakes(ex: Execution) -> datetime | None:
    """When a Waiting execution's next pod may start without a signal: its wake time, but never sooner than
    MIN_WAIT after the wait began; None for a wait for a signal without a timeout."""
    checkpoint = ex.status.checkpoint
    when = wake_at(ex)
    if when is None and checkpoint is not None and checkpoint.signal is not None:
        return None
    floor = ex.status.waitingSince + MIN_WAIT if ex.status.waitingSince else None
    return max((m for m in (when, floor) if m is not None), default=None)


def signal_at(ex: Execution) -> datetime | None:
    """When a wait whose signal has arrived may go on; None if it has not arrived. At once (the epoch), unless
    the signal was recorded before the wait began: a runner waiting, pod after pod, for what it already has
    waits MIN_WAIT each time, as one lying about its wake time does."""
    wait = ex.status.checkpoint.signal if ex.status.checkpoint else None
    index = nth_index(ex.spec.signals, wait.name, wait.occurrence) if wait is not None else None
    if index is None:
        return None
    received = next((r.receivedAt for r in ex.status.signals if r.index == index), None)
    began = ex.status.waitingSince
    if received is not None and began is not None and received < began:
        return began + MIN_WAIT
    return AT_ONCE


def signal_arrived(ex: Execution) -> bool:
    return signal_at(ex) is not None


def wake(ex: Execution, plan: Plan, now: datetime) -> None:
    """Pending again; the new runner (asked for by the caller) goes on after the sleep."""
    when = wake_at(ex)
    plan.status.set(phase=Phase.PENDING, checkpoint=RUN_AGAIN, message=None)
    late = f", {(now - when).total_seconds():.1f}s after its wake time" if when and not signal_arrived(ex) else ""
    plan.event(EventReason.WOKEN, f"woke from '{waits_for(ex)}'{late}: a new pod goes on from the checkpoint",
               key=_key(ex))


def _key(ex: Execution) -> str:
    """One Event per wait: its signal and occurrence, and its wake time as digits (the World keeps no checkpoint
    sequence). A wait that timed out took no signal, so the next one waits for the same occurrence: its own
    wake time, or none, tells the two apart."""
    wait = ex.status.checkpoint.signal if ex.status.checkpoint else None
    when = wake_at(ex)
    digits = "".join(c for c in format_time(when) if c.isdigit()) if when else ""
    if wait is not None:
        return "-".join(part for part in (wait.name, str(wait.occurrence), digits) if part).lower()
    return digits


def record_signals(ex: Execution, plan: Plan, now: datetime) -> None:
    """Each signal appended to spec.signals since the last decision: in status.signals, with who sent it (its
    sentBy, which admission checked) and the field manager that wrote the list (which the client named), and
    an Event."""
    seen = len(ex.status.signals)
    received = [_as_checked(record, ex.spec.signals) for record in ex.status.signals]
    if len(ex.spec.signals) <= seen and received == ex.status.signals:
        return
    manager = ex.metadata.get(SIGNALS_FIELD_MANAGER)
    for index, signal in enumerate(ex.spec.signals[seen:], start=seen):
        received.append(SignalReceived(name=signal.name, index=index, receivedAt=now, sentBy=signal.sentBy,
                                       fieldManager=manager))
        plan.event(EventReason.SIGNAL_RECEIVED, f"signal {signal.name} received {_from(signal.sentBy, manager)}"
                   f"{f': {signal.reason}' if signal.reason else ''}", key=str(index))
    plan.status.set(signals=received)


def _as_checked(record: SignalReceived, signals: list[Signal]) -> SignalReceived:
    """A record's sentBy is its signal's, which admission checked. An operator before 143354c wrote the field
    manager there: that name moves to fieldManager, so no client-named sender reads as a checked one."""
    signed = signals[record.index].sentBy if record.index < len(signals) else None
    if record.sentBy == signed:
        return record
    return record.model_copy(update={"sentBy": signed, "fieldManager": record.fieldManager or record.sentBy})


def _from(sender: str | None, manager: str | None) -> str:
    if sender:
        return f"from {sender}"
    return f"from a sender not verified (field manager {manager})" if manager else "from a sender not verified"
