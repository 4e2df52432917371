"""Timestamps past what a datetime holds (written before the schema bounded them) print as they are."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flux_cli import objects
from flux_cli.executions import render
from flux_cli.rendering import to_text
from flux_cli.executions.actions import StatusView

pytestmark = pytest.mark.unit

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
BEYOND = "9999-12-31T23:59:59-23:59"  # 10000-01-01T23:58:59Z


def test_status_and_list_print_a_time_past_the_calendar() -> None:
    obj = {"metadata": {"name": "late", "namespace": "a", "creationTimestamp": BEYOND},
           "spec": {"workflow": "pkg.mod:main"},
           "status": {"phase": "Cancelling", "startedAt": BEYOND,
                      "conditions": [{"type": "Started", "status": "True", "reason": "R", "message": "",
                                      "lastTransitionTime": BEYOND}],
                      "cancellation": {"reason": "r", "source": "spec", "requestedAt": BEYOND},
                      "checkpoint": {"state": "Cancelled", "updatedAt": BEYOND,
                                     "steps": [{"name": "s", "completedAt": BEYOND}]}}}
    text = to_text(render.status_text(StatusView(obj, []), NOW))
    assert BEYOND in text
    assert objects.last_progress(obj) is None
    to_text(render.list_table([obj], NOW, all_namespaces=False))
