"""`kubectl flux suspend|resume`: the patches they send and what they refuse, without a cluster."""

from __future__ import annotations

import pytest
from flux_api.names import SUSPEND_REASON_ANNOTATION, SUSPENDED_BY_ANNOTATION
from flux_cli.errors import ArgumentError
from flux_cli.executions.suspending import refusal, resume_patch, suspend_patch

pytestmark = pytest.mark.unit


def test_suspend_sets_the_flag_and_the_reason():
    assert suspend_patch("  maintenance ") == {"metadata": {"annotations": {SUSPEND_REASON_ANNOTATION: "maintenance"}},
                                               "spec": {"suspend": True}}


def test_a_suspend_without_a_reason_removes_an_old_one():
    assert suspend_patch(None)["metadata"]["annotations"] == {SUSPEND_REASON_ANNOTATION: None}
    assert suspend_patch("   ")["metadata"]["annotations"] == {SUSPEND_REASON_ANNOTATION: None}


def test_a_reason_past_the_limit_is_refused_before_any_call():
    with pytest.raises(ArgumentError, match="too long"):
        suspend_patch("x" * 1025)


def test_resume_clears_the_flag_and_who_suspended():
    assert resume_patch() == {"metadata": {"annotations": {SUSPEND_REASON_ANNOTATION: None, SUSPENDED_BY_ANNOTATION: None}},
                              "spec": {"suspend": False}}


@pytest.mark.parametrize(("obj", "expected"), [
    ({"status": {"phase": "Succeeded"}}, "already finished (Succeeded): nothing to suspend"),
    ({"spec": {"cancel": {"reason": "x"}}, "status": {"phase": "Cancelling"}},
     "being cancelled (Cancelling): a cancel cannot be undone, nothing to suspend"),
    ({"metadata": {"annotations": {"workflows.flux.dev/cancel": "stop"}}, "status": {"phase": "Suspended"}},
     "being cancelled (Suspended): a cancel cannot be undone, nothing to suspend"),
    ({"status": {"phase": "Cancelling", "cancellation": {"reason": "DeadlineExceeded", "source": "deadline"}}},
     "being cancelled (Cancelling): a cancel cannot be undone, nothing to suspend"),
    ({"metadata": {"annotations": {"workflows.flux.dev/cancel": "  "}}, "status": {"phase": "Running"}}, None),
    ({"status": {"phase": "Running"}}, None),
    ({"status": {"phase": "Suspended"}}, None),
])
def test_what_cannot_be_suspended_is_said_plainly(obj, expected):
    assert refusal(obj, "suspend") == expected
