"""One time format for every role: the operator's and the runner's stamps must order correctly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from flux_api.timefmt import format_time, now_text, parse_time

pytestmark = pytest.mark.unit


def test_milliseconds_and_z() -> None:
    moment = datetime(2026, 11, 21, 12, 0, 0, 987654, tzinfo=timezone.utc)
    assert format_time(moment) == "2026-11-21T12:00:00.987Z"


def test_other_offsets_are_written_in_utc() -> None:
    moment = datetime(2026, 11, 21, 13, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert format_time(moment) == "2026-11-21T12:00:00.000Z"


def test_a_later_moment_never_reads_earlier() -> None:
    """The bug: the runner wrote whole seconds, so an acknowledgement 0.3 s after a signal at
    x.5 s read as x.0 s, before the signal. Both now write milliseconds through one function."""
    signalled = datetime(2026, 11, 21, 12, 0, 0, 500000, tzinfo=timezone.utc)
    acknowledged = signalled + timedelta(milliseconds=300)
    assert parse_time(format_time(acknowledged)) > parse_time(format_time(signalled))
    assert format_time(acknowledged) > format_time(signalled)  # also as text, as kubectl sorts


def test_now_text_round_trips() -> None:
    text = now_text()
    assert format_time(parse_time(text)) == text


@pytest.mark.parametrize("text", [None, "", "yesterday", "2026-13-01T00:00:00Z", 42])
def test_bad_text_is_none_not_an_exception(text) -> None:
    assert parse_time(text) is None


def test_server_seconds_and_offsets_parse_as_utc() -> None:
    assert parse_time("2026-11-21T12:00:00Z") == datetime(2026, 11, 21, 12, tzinfo=timezone.utc)
    assert parse_time("2026-11-21T13:00:00+01:00") == datetime(2026, 11, 21, 12, tzinfo=timezone.utc)
    assert parse_time("2026-11-21T12:00:00") == datetime(2026, 11, 21, 12, tzinfo=timezone.utc)
