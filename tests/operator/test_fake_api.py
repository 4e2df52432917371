"""The operator's fake API applies writes as the API server does where the unit tests rely on it."""

from __future__ import annotations

import pytest
from flux_api.errors import Failure
from flux_operator.kube import ApiFailure
from flux_api.mergepatch import merge_patch
from flux_operator.testing import FakeKubeApi

pytestmark = pytest.mark.unit


def stored(api: FakeKubeApi, **status) -> dict:
    return api.put({"metadata": {"name": "x", "namespace": "ns"}, "spec": {"workflow": "w:main"},
                    "status": status})


def test_a_merge_patch_merges_objects_deeply_replaces_lists_and_null_removes() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2], "gone": 1}
    merged = merge_patch(target, {"a": {"c": 3, "d": 4}, "l": [3], "gone": None})
    assert merged == {"a": {"b": 1, "c": 3, "d": 4}, "l": [3]}
    assert target == {"a": {"b": 1, "c": 2}, "l": [1, 2], "gone": 1}, "a new value: the target is not changed"


def test_a_status_patch_keeps_the_sibling_fields_of_a_nested_object() -> None:
    api = FakeKubeApi()
    stored(api, phase="Cancelling", cancellation={"reason": "r", "requestedAt": "2026-01-01T00:00:00Z"})
    after = api.patch_status("ns", "x", {"cancellation": {"signalledAt": "2026-01-01T00:00:01Z"}}, None)
    assert after["status"]["cancellation"] == {"reason": "r", "requestedAt": "2026-01-01T00:00:00Z",
                                               "signalledAt": "2026-01-01T00:00:01Z"}


def test_generation_starts_at_one_and_moves_only_with_the_spec() -> None:
    api = FakeKubeApi()
    assert stored(api)["metadata"]["generation"] == 1
    assert api.patch_status("ns", "x", {"phase": "Running"}, None)["metadata"]["generation"] == 1
    api.patch_execution("ns", "x", {"spec": {"cancel": {"reason": "stop"}}})
    assert api.get_execution("ns", "x")["metadata"]["generation"] == 2


def test_a_cancel_cannot_be_changed_or_removed_once_set() -> None:
    api = FakeKubeApi()
    stored(api)
    api.patch_execution("ns", "x", {"spec": {"cancel": {"reason": "stop"}}})
    for patch in ({"spec": {"cancel": None}}, {"spec": {"cancel": {"reason": "other"}}}):
        with pytest.raises(ApiFailure) as refused:
            api.patch_execution("ns", "x", patch)
        assert refused.value.kind is Failure.INVALID
    assert api.get_execution("ns", "x")["spec"]["cancel"] == {"reason": "stop"}


def test_a_finished_phase_is_final() -> None:
    api = FakeKubeApi()
    stored(api, phase="Succeeded")
    with pytest.raises(ApiFailure) as refused:
        api.patch_status("ns", "x", {"phase": "Running"}, None)
    assert refused.value.kind is Failure.INVALID


def test_a_stale_resource_version_is_a_conflict() -> None:
    api = FakeKubeApi()
    version = stored(api)["metadata"]["resourceVersion"]
    api.patch_status("ns", "x", {"phase": "Running"}, version)
    with pytest.raises(ApiFailure) as stale:
        api.patch_status("ns", "x", {"phase": "Failed"}, version)
    assert stale.value.kind is Failure.CONFLICT
