"""The results tables of the fault and hostile suites: a row per test, its figure, notes and verdict."""

from __future__ import annotations

from collections.abc import Callable, Container

import pytest


class Result:
    """What a test reports for its row: the figure, and notes (what it used, what it saw)."""

    def __init__(self, key: str, entry: dict) -> None:
        self.key, self.entry = key, entry

    def figure(self, text: str) -> None:
        self.entry["figure"] = text
        print(f"\n[{self.key}] figure: {text}")

    def note(self, text: str) -> None:
        self.entry["notes"].append(text)
        print(f"\n[{self.key}] {text}")


def record_outcome(entry: dict, report: pytest.TestReport) -> None:
    """The row's verdict from one phase's report: a failure anywhere sticks; a passed call holds."""
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = str(crash.message if crash else report.longrepr).splitlines()
        entry["outcome"] = f"FAILED ({report.when}): {message[0][:300]}" if message else "FAILED"
    elif report.skipped:
        entry["outcome"] = "skipped"
    elif report.when == "call" and not entry["outcome"].startswith("FAILED"):
        entry["outcome"] = "held"


def cell(text: str) -> str:
    """Text for one cell of a Markdown table."""
    return text.replace("|", "\\|").replace("\n", " ")


def row_hooks(marker_name: str, entry_of: Callable[[str], dict], usage: str, known: Container[str] | None = None):
    """The `result` fixture and the report hook of a suite whose tests name their row with
    @pytest.mark.<marker_name>(key, ...): both suites' conftests assign them (one place for the wiring)."""

    @pytest.fixture
    def result(request) -> Result:
        marker = request.node.get_closest_marker(marker_name)
        assert marker and (known is None or marker.args[0] in known), \
            f"{request.node.nodeid} needs @pytest.mark.{marker_name}({usage})"
        return Result(marker.args[0], entry_of(marker.args[0]))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        marker = item.get_closest_marker(marker_name)
        if marker is None:
            return
        record_outcome(entry_of(marker.args[0]), report)

    return result, pytest_runtest_makereport
