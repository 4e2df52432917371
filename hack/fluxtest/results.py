"""The results tables of the fault and hostile suites: a row per test, its figure, notes and verdict."""

from __future__ import annotations

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
