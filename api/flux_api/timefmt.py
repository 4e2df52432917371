"""RFC 3339 timestamps, one precision for every role: UTC, milliseconds, `Z`.

The runner and the operator both stamp cancellations (acknowledgedAt vs signalledAt);
with two precisions a later moment could read as earlier.
"""

from __future__ import annotations

from datetime import datetime, timezone


def format_time(moment: datetime) -> str:
    """Millisecond precision: cancellation latencies are often well under a second."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: str | None) -> datetime | None:
    """Parses what the API server and our roles write; None for absent or malformed text."""
    if not text or not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def now_text() -> str:
    return format_time(utcnow())
