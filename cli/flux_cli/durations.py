"""Durations as people type them ("90s", "5m", "1h30m", "2d", "120") and as kubectl prints ages."""

from __future__ import annotations

import math
import re
from datetime import datetime

from flux_cli.errors import ArgumentError

_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PLAIN_SECONDS = re.compile(r"\d+(\.\d+)?")
# Units in descending order, each at most once: "1h30m" yes, "30m1h" and "1m1m" no.
_WITH_UNITS = re.compile(
    r"(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?"
)

DURATION_HELP = "a number of seconds or units d/h/m/s, e.g. 90s, 5m, 1h30m, 2d"


class DurationError(ArgumentError):
    pass


def parse_duration(text: str) -> float:
    """Seconds in `text`; DurationError (one readable line) for anything else."""
    value = text.strip()
    if _PLAIN_SECONDS.fullmatch(value):
        return float(value)
    match = _WITH_UNITS.fullmatch(value)
    # The pattern also matches "", which is no duration.
    if value and match:
        return float(sum(float(amount) * _UNIT_SECONDS[unit] for unit, amount in match.groupdict().items() if amount))
    raise DurationError(f"invalid duration {text!r}: use {DURATION_HELP}")


def format_duration(seconds: float) -> str:
    """Exact, compact form of a duration the user gave: 5400 -> "1h30m"."""
    whole = int(round(seconds))
    if whole == 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        amount, whole = divmod(whole, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def human_age(seconds: float) -> str:
    """Rounded age like kubectl's AGE column: precise when young, coarse when old."""
    total = max(0, math.floor(seconds))
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if total < 120:
        return f"{total}s"
    if minutes < 10:
        rest = total % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def age(moment: datetime | None, now: datetime) -> str | None:
    """How long ago, kubectl's way (5m, 3h); None when unknown."""
    return None if moment is None else human_age((now - moment).total_seconds())
