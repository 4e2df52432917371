"""One time format for every role: the operator's and the runner's stamps must order correctly."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from flux_api import crd, crd_rules
from flux_api.timefmt import FIRST_YEAR, LAST_YEAR, STAMP_PATTERN, format_time, now_text, parse_time
from flux_api.types import MAX_DEADLINE_SECONDS

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


@pytest.mark.parametrize("text", [
    "9999-12-31T23:59:59-23:59",  # 10000-01-01 in UTC: past what a datetime holds
    "0001-01-01T00:00:00+23:59",  # before year 1 in UTC
    "9000-01-01T00:00:00Z", "0999-12-31T23:59:59Z",  # outside the years the schema admits
    "2026-11-21T12:00:00Z" + " " * 60,  # longer than any timestamp field
    "2026-11-21T12:00:60Z",  # a leap second: RFC 3339 has it, datetime has not
])
def test_no_text_makes_parsing_raise_and_what_is_out_of_range_reads_as_absent(text) -> None:
    assert parse_time(text) is None


def test_the_schema_pattern_admits_what_parses_and_refuses_the_overflow() -> None:
    pattern = re.compile(STAMP_PATTERN)
    for text in ("2026-11-21T12:00:00Z", "2026-11-21T12:00:00.123Z", "8999-12-31T23:59:59+23:59",
                 "1000-01-01T00:00:00-23:59"):
        assert pattern.match(text) and parse_time(text) is not None, text
    for text in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00Z", "2026-11-21 12:00:00Z", "yesterday"):
        assert not pattern.match(text), text


def test_any_admitted_time_plus_the_longest_admitted_duration_fits_a_datetime() -> None:
    latest = parse_time(f"{LAST_YEAR}-12-31T00:00:00Z")
    earliest = parse_time(f"{FIRST_YEAR}-01-01T23:59:00+00:00")
    assert latest + timedelta(seconds=MAX_DEADLINE_SECONDS) and earliest - timedelta(seconds=MAX_DEADLINE_SECONDS)


def test_every_timestamp_field_of_both_crds_carries_the_pattern() -> None:
    """Found by walking the generated schemas: a new `...At`/`...Time` field without Stamp fails here."""
    def walk(node, path):
        for name, child in (node.get("properties") or {}).items():
            yield from walk(child, f"{path}.{name}")
            if (name.endswith(("At", "Time")) or f"{path}.{name}" == ".status.lastUnschedule.at") \
                    and child.get("type") == "string":
                yield f"{path}.{name}", child
        if "items" in node:
            yield from walk(node["items"], f"{path}[]")

    schemas = [crd.open_api_schema(), crd.schedule_schema()]
    stamps = [(path, node) for schema in schemas for path, node in walk(schema, "")]
    assert len(stamps) >= 20, [path for path, _ in stamps]
    cel = (".spec.startAt", ".spec.executionTemplate.spec.startAt")  # a CEL rule with the same pattern
    missing = [path for path, node in stamps if node.get("pattern") != STAMP_PATTERN and path not in cel]
    assert missing == []
    assert STAMP_PATTERN.replace("\\", "\\\\") in crd_rules.START_AT_RULE["rule"]
