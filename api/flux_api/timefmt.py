"""RFC 3339 timestamps, one precision for every role: UTC, milliseconds, `Z`.

The runner and the operator both stamp cancellations (acknowledgedAt vs signalledAt);
with two precisions a later moment could read as earlier.

Every timestamp field of the CRDs carries STAMP_PATTERN, so the API server admits only the years
FIRST_YEAR to LAST_YEAR; parsing reads anything else as absent and never raises. Together they leave
room for every duration the schema admits (at most 10 years) on either side: no arithmetic on an
admitted time can overflow a datetime (`9999-12-31T23:59:59-23:59` is 10000-01-01 in UTC).
"""

from __future__ import annotations

from datetime import datetime, timezone

FIRST_YEAR, LAST_YEAR = 1000, 8999
STAMP_PATTERN = (r"^[1-8][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:"
                 r"([0-5][0-9]|60)(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
_LONGEST = 64  # what the schema admits for a timestamp field


def format_time(moment: datetime) -> str:
    """Millisecond precision: cancellation latencies are often well under a second."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: str | datetime | None) -> datetime | None:
    """Parses what the API server and our roles write; None for absent, malformed or out-of-range text.
    Never raises, whatever the text. A datetime (a model's Stamp, parsed already) is taken as it is."""
    if isinstance(text, datetime):
        moment = text if text.tzinfo else text.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc) if FIRST_YEAR <= moment.year <= LAST_YEAR else None
    if not text or not isinstance(text, str) or len(text) > _LONGEST:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        parsed = parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError, TypeError):
        return None
    return parsed if FIRST_YEAR <= parsed.year <= LAST_YEAR else None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def now_text() -> str:
    return format_time(utcnow())
