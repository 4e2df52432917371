"""The fault and hostile suites' rows: a verdict from each phase's report, and Markdown cells."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fluxtest.results import Result, cell, record_outcome

pytestmark = pytest.mark.unit


def report(when: str, outcome: str, message: str = "") -> SimpleNamespace:
    crash = SimpleNamespace(message=message)
    return SimpleNamespace(when=when, failed=outcome == "failed", skipped=outcome == "skipped",
                           longrepr=SimpleNamespace(reprcrash=crash))


def test_a_passed_call_holds_and_a_failure_anywhere_sticks() -> None:
    entry = {"figure": "", "notes": [], "outcome": "not run"}
    record_outcome(entry, report("setup", "passed"))
    assert entry["outcome"] == "not run"
    record_outcome(entry, report("call", "passed"))
    assert entry["outcome"] == "held"
    record_outcome(entry, report("teardown", "failed", "boom\nmore"))
    assert entry["outcome"] == "FAILED (teardown): boom"
    record_outcome(entry, report("call", "passed"))
    assert entry["outcome"] == "FAILED (teardown): boom"


def test_a_result_writes_its_row() -> None:
    entry = {"figure": "", "notes": [], "outcome": "not run"}
    result = Result("k", entry)
    result.figure("3 s")
    result.note("used x")
    assert entry == {"figure": "3 s", "notes": ["used x"], "outcome": "not run"}
    assert cell("a|b\nc") == "a\\|b c"
