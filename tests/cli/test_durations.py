"""Durations typed by people (--timeout, --stale) and ages printed like kubectl."""

import pytest
from flux_cli.durations import DurationError, format_duration, human_age, parse_duration
from flux_cli.errors import ArgumentError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("2h", 7200),
        ("120", 120),
        ("0", 0),
        ("0s", 0),
        ("1.5", 1.5),
        ("1.5h", 5400),
        ("2d", 172800),
        ("1d2h3m4s", 93784),
        ("1h0m", 3600),
        (" 45s ", 45),
    ],
)
def test_parse_accepts_seconds_and_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", " ", "abc", "5x", "m", "s5", "-5s", "-1", "5 m", "30m1h", "1m1m", "1h 30m", "5M", "1e3", "1.s", ".5s", "5m30", "h1"],
)
def test_parse_rejects_garbage_with_a_readable_message(text: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert repr(text) in message and "90s" in message and "\n" not in message


def test_duration_errors_are_argument_errors() -> None:
    # main.py turns ArgumentError into "error: ..." and exit code 1.
    assert issubclass(DurationError, ArgumentError)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (45, "45s"), (90, "1m30s"), (5400, "1h30m"), (7200, "2h"), (86400 + 1, "1d1s")])
def test_format_duration_is_compact_and_exact(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("seconds", "age"),
    [
        (-5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (119, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 30 * 60, "5h30m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (3 * 86400 + 5 * 3600, "3d5h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
    ],
)
def test_human_age_matches_kubectl_granularity(seconds: float, age: str) -> None:
    assert human_age(seconds) == age
