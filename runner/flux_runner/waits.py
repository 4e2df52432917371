"""Durable sleeps: a sleep longer than the threshold holds no pod.

`ctx.sleep`/`ctx.sleep_until` record the wake time as a step (so a replay knows it), and past the threshold
raise DurableWait out of the workflow: the runner writes a final checkpoint with state Waiting and `wakeAt`,
and exits. The operator shows phase Waiting and starts a new pod at the wake time, whose replay skips every
finished step, the sleep included, and goes on after it.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from flux_api.signals import SignalWait
from flux_api.timefmt import format_time, parse_time

# Sleeps longer than this (seconds) end the pod (the operator's --durable-wait-after; FLUX_DURABLE_WAIT_AFTER).
DEFAULT_DURABLE_AFTER = 60.0
MAX_SLEEP_SECONDS = 10 * 365 * 24 * 3600  # the same bound as a deadline: no wake time overflows


class DurableWait(BaseException):
    """Ends the run to wait without a pod. A BaseException, like CancelledError: a workflow's
    `except Exception` must not swallow it; its `finally` blocks run, as on any stop."""

    def __init__(self, wake_at: datetime | None, waiting: str, signal: SignalWait | None = None) -> None:
        super().__init__(waiting)
        self.wake_at, self.waiting, self.signal = wake_at, waiting, signal


def seconds_of(delay: Any) -> float:
    """A sleep's length from seconds (int, float) or a timedelta; anything else, or out of range, is refused."""
    if isinstance(delay, timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, (int, float)) and not isinstance(delay, bool):
        seconds = float(delay)
    else:
        raise TypeError(f"ctx.sleep takes seconds or a timedelta, not {type(delay).__name__}")
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SLEEP_SECONDS:
        raise ValueError(f"ctx.sleep takes 0 to {MAX_SLEEP_SECONDS} seconds, not {delay!r}")
    return seconds


def aware(moment: Any, now: datetime) -> datetime:
    """A wake time within ctx.sleep's bound: one past it would make a checkpoint the API server refuses."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"ctx.sleep_until takes a timezone-aware datetime, not {moment!r}")
    if (moment - now).total_seconds() > MAX_SLEEP_SECONDS:
        raise ValueError(f"ctx.sleep_until takes a time at most {MAX_SLEEP_SECONDS} seconds (10 years) ahead, "
                         f"not {moment.isoformat()}")
    return moment


def recorded(wake_at: datetime) -> dict[str, str]:
    """The sleep's step result: its wake time, kept across restarts."""
    return {"wakeAt": format_time(wake_at)}


def recorded_wake(result: Any) -> datetime | None:
    """The wake time a replayed sleep recorded; None if the record is not one (the sleep then ends at once)."""
    return parse_time(result.get("wakeAt")) if isinstance(result, dict) else None
