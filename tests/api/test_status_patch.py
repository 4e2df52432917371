"""Status is written through the models: a misspelt or ill-typed field fails here, not silently on the server."""

from __future__ import annotations

import pytest
from flux_api.writes import status_patch
from pydantic import ValidationError

pytestmark = pytest.mark.unit


def test_only_the_fields_given_are_written() -> None:
    assert status_patch({"phase": "Running", "podName": "x-runner"}) == {"phase": "Running", "podName": "x-runner"}


def test_none_is_kept_so_merge_patch_removes_the_field() -> None:
    assert status_patch({"message": None}) == {"message": None}


def test_nested_blocks_keep_only_what_was_set() -> None:
    at = "2026-11-21T12:00:00.000Z"
    patch = status_patch({"cancellation": {"reason": "r", "source": "spec", "requestedAt": at}})
    assert patch == {"cancellation": {"reason": "r", "source": "spec", "requestedAt": at}}


def test_a_timestamp_is_an_aware_datetime_written_in_the_one_format() -> None:
    from datetime import datetime, timezone

    from flux_api import ExecutionStatus

    status = ExecutionStatus.model_validate({"startedAt": "2026-11-21T12:00:00Z", "finishedAt": "not a time"})
    assert status.startedAt == datetime(2026, 11, 21, 12, tzinfo=timezone.utc) and status.finishedAt is None
    assert status_patch({"startedAt": status.startedAt}) == {"startedAt": "2026-11-21T12:00:00.000Z"}


@pytest.mark.parametrize("fields, where", [
    ({"phsae": "Running"}, "status.phsae"),
    ({"cancellation": {"reason": "r", "source": "spec", "acknowledgeAt": "t"}}, "status.cancellation.acknowledgeAt"),
    ({"conditions": [{"type": "A", "status": "True", "lastTransitionTime": "t", "reason": "R", "mesage": ""}]},
     "status.conditions[0].mesage"),
    ({"children": [{"name": "c", "phaze": "Running"}]}, "status.children[0].phaze"),
])
def test_a_misspelt_field_is_refused_with_its_path(fields, where) -> None:
    with pytest.raises(ValueError, match=where.replace("[", r"\[").replace("]", r"\]")):
        status_patch(fields)


def test_a_wrong_value_is_refused() -> None:
    with pytest.raises(ValidationError):
        status_patch({"phase": "Finished"})
    with pytest.raises(ValidationError):
        status_patch({"cancellation": {"reason": "r", "source": "telepathy"}})


def test_no_length_makes_a_status_write_raise_it_is_cut_to_the_schema() -> None:
    """Decisions bound their lists themselves (with counts); this is the backstop."""
    patch = status_patch({
        "message": "m" * 9000,
        "children": [{"name": f"c{i}", "error": "e" * 9000, "tokens": ["t" * 100] * 6} for i in range(60)],
        "cancellation": {"reason": "r" * 2000, "source": "spec", "children": [{"name": f"c{i}"} for i in range(60)]},
        "conditions": [{"type": f"T{i}", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z",
                        "reason": "r" * 2000} for i in range(20)],
    })
    assert len(patch["message"]) == 8192
    assert len(patch["children"]) == 50 and len(patch["children"][0]["error"]) == 8192
    assert patch["children"][0]["tokens"] == ["t" * 64] * 4
    assert len(patch["cancellation"]["children"]) == 50 and len(patch["cancellation"]["reason"]) == 1024
    assert len(patch["conditions"]) == 16 and len(patch["conditions"][0]["reason"]) == 1024


def test_a_status_write_holds_only_what_was_set_and_refuses_a_misspelt_field() -> None:
    from flux_api import Phase, StatusWrite

    write = StatusWrite()
    write.set(phase=Phase.RUNNING, message=None, checkpoint={"state": "Running", "error": None})
    assert write.patch() == {"phase": "Running", "message": None, "checkpoint": {"state": "Running", "error": None}}
    with pytest.raises(ValueError):
        write.set(phse="Running")
    write.set(message="m" * 10_000)  # cut to the schema's bound, never refused
    assert len(write.patch()["message"]) == 8192
