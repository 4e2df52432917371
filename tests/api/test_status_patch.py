"""Status is written through the models: a misspelt or ill-typed field fails here, not silently on the server."""

from __future__ import annotations

import pytest
from flux_api.types import status_patch
from pydantic import ValidationError

pytestmark = pytest.mark.unit


def test_only_the_fields_given_are_written() -> None:
    assert status_patch({"phase": "Running", "podName": "x-runner"}) == {"phase": "Running", "podName": "x-runner"}


def test_none_is_kept_so_merge_patch_removes_the_field() -> None:
    assert status_patch({"message": None}) == {"message": None}


def test_nested_blocks_keep_only_what_was_set() -> None:
    patch = status_patch({"cancellation": {"reason": "r", "source": "spec", "requestedAt": "t"}})
    assert patch == {"cancellation": {"reason": "r", "source": "spec", "requestedAt": "t"}}


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
