"""Cron times of a Schedule in its time zone. Pure: no I/O, no clock.

Daylight saving, decided once here:
- Fall-back repeats an hour of wall-clock time. A cron time in that hour fires once, at its first
  occurrence: a daily `30 1 * * *` runs once that night, as in Vixie cron. A schedule whose hour field
  covers every hour (`*`, `*/1`, `0-23`, `@hourly`) is about elapsed hours instead, and fires in both
  occurrences: an hourly schedule runs 25 times on a 25-hour day, once an hour.
- Spring-forward skips an hour. A cron time inside the gap fires once, at the end of the gap (a daily
  `30 2 * * *` runs at 03:00 that night); an hourly schedule has 23 runs that day, still one an hour.

Cron times come from `croniter`; a cron expression that no date matches raises InvalidSchedule.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from flux_api.crd_rules import CRON_PATTERN

# Enough to step over the repeated hour of a fall-back minute by minute, with room to spare.
_MAX_SKIPPED = 4 * 60


class InvalidSchedule(ValueError):
    pass


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise InvalidSchedule(f"unknown time zone {name!r}") from err


def _single(item: str) -> str:
    """`a-a` and `a-a/s` mean `a`, as in Vixie cron and Kubernetes CronJobs; croniter reads them as `*`."""
    span = item.partition("/")[0]
    low, dash, high = span.partition("-")
    same = low.lower() == high.lower() or (low.isdigit() and high.isdigit() and int(low) == int(high))
    return low if dash and low and same else item


def normal(expression: str) -> str:
    """The expression croniter is given: every one-value range written as that value."""
    expression = expression.strip()
    if expression.startswith("@"):
        return expression
    return " ".join(",".join(_single(item) for item in field.split(",")) for field in expression.split())


def check_cron(expression: str) -> str:
    """The CRD's own grammar first (an object stored before its rule, or past it, meets the same one): croniter
    also reads `R` (a new random time at each reading), `L` and `#`, which Flux does not promise."""
    expression = expression.strip()
    if not re.fullmatch(CRON_PATTERN, expression) or not croniter.is_valid(normal(expression)):
        raise InvalidSchedule(f"invalid cron expression {expression!r}")
    return expression


def every_hour(expression: str) -> bool:
    """Whether the hour field names all 24 hours."""
    hours = croniter(normal(expression)).expanded[1]
    return hours == ["*"] or set(hours) == set(range(24))


def _repeat(moment: datetime, tz: ZoneInfo) -> bool:
    """Whether `moment` is the second occurrence of a wall-clock time that fall-back repeats."""
    local = moment.astimezone(tz)  # sets fold=1 on the second occurrence
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _walk(expression: str, tz: ZoneInfo, start: datetime, forward: bool) -> datetime:
    try:
        times = croniter(normal(expression), start.astimezone(tz))
        keep_repeats = every_hour(expression)
        for _ in range(_MAX_SKIPPED):
            moment = (times.get_next if forward else times.get_prev)(datetime).astimezone(timezone.utc)
            if keep_repeats or not _repeat(moment, tz):
                return moment
    except CroniterError as err:
        raise InvalidSchedule(f"the cron expression {expression!r} never fires: no date matches it") from err
    raise InvalidSchedule(f"the cron expression {expression!r} fires only in repeated hours")  # not reachable


def latest_due(expression: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The latest cron time at or before `now`, in UTC."""
    return _walk(expression, tz, now + timedelta(microseconds=1), forward=False)


def next_due(expression: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The first cron time after `now`, in UTC."""
    return _walk(expression, tz, now, forward=True)
