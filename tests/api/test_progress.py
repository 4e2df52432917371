"""Which checkpoint is the newer: the Execution's own or its ExecutionProgress's."""

import pytest
from flux_api.progress import belongs_to, checkpoint_of, newest, with_progress

pytestmark = pytest.mark.unit


def cp(sequence, **more):
    return {"state": "Running", "sequence": sequence, **more}


@pytest.mark.parametrize(("recorded", "progress", "expected"), [
    (None, None, None),
    (cp(3), None, cp(3)),
    (None, cp(3), cp(3)),
    (cp(3), cp(4), cp(4)),
    (cp(5), cp(4), cp(5)),
    (cp(4, state="Succeeded"), cp(4), cp(4, state="Succeeded")),  # a tie: the Execution's, the final word's
    (cp(4), {"state": "Running"}, cp(4)),  # no sequence is older than any
    (cp(4), cp(True), cp(4)),  # a boolean is no sequence
    (cp(4), cp("9"), cp(4)),  # nor a string
    ({"state": "Running"}, cp(0), cp(0)),
    ("garbage", cp(1), cp(1)),
    (cp(1), ["garbage"], cp(1)),
])
def test_the_higher_sequence_is_the_newer_checkpoint(recorded, progress, expected):
    assert newest(recorded, progress) == expected


@pytest.mark.parametrize(("obj", "expected"), [
    (None, None),
    ({}, None),
    ({"status": None}, None),
    ({"status": "x"}, None),
    ({"status": {"checkpoint": "x"}}, None),
    ({"status": {"checkpoint": cp(2)}}, cp(2)),
])
def test_the_checkpoint_of_a_progress_object(obj, expected):
    assert checkpoint_of(obj) == expected


@pytest.mark.parametrize(("owners", "uid", "expected"), [
    ([{"uid": "u1", "controller": True}], "u1", True),
    ([{"uid": "u1", "controller": True}], "u2", False),  # a deleted namesake's
    ([{"uid": "u1"}], "u1", False),  # a reference that is not the controller
    ([], "u1", False),
    ([{"uid": "u1", "controller": True}], None, False),
    (["garbage", {"uid": "u1", "controller": True}], "u1", True),
])
def test_a_progress_object_belongs_to_its_controller_only(owners, uid, expected):
    assert belongs_to({"metadata": {"ownerReferences": owners}}, uid) is expected
    assert belongs_to(None, uid) is False


def _execution(uid: str = "u1", checkpoint: dict | None = None) -> dict:
    return {"metadata": {"name": "x", "uid": uid}, "status": {"phase": "Running", "checkpoint": checkpoint}}


def _progress_object(owner: str, sequence: int) -> dict:
    return {"metadata": {"ownerReferences": [{"uid": owner, "controller": True}]},
            "status": {"checkpoint": {"state": "Running", "sequence": sequence}}}


def test_an_execution_takes_the_newer_checkpoint_of_its_own_progress_object_only() -> None:
    execution = _execution(checkpoint={"state": "Running", "sequence": 2})
    merged = with_progress(execution, _progress_object("u1", 9))
    assert merged["status"] == {"phase": "Running", "checkpoint": {"state": "Running", "sequence": 9}}
    assert execution["status"]["checkpoint"]["sequence"] == 2, "the object read is not changed"
    assert with_progress(execution, _progress_object("u1", 1)) is execution, "its own is newer"
    assert with_progress(execution, _progress_object("other", 9)) is execution, "a deleted namesake's"
    assert with_progress(execution, None) is execution
    bare = {"metadata": {"uid": "u1"}}
    assert with_progress(bare, _progress_object("u1", 3))["status"]["checkpoint"]["sequence"] == 3


def _written(progress: dict, at: str) -> dict:
    progress["metadata"]["managedFields"] = [
        {"manager": "flux-runner", "operation": "Update", "subresource": "status", "time": at},
        {"manager": "flux-operator", "operation": "Update", "time": "2026-11-21T13:00:00Z"}]  # no status: not it
    return progress


def test_progress_written_after_its_execution_finished_is_not_taken() -> None:
    """Only a leaked runner token writes then (the runner's own writes end with its pod, before the finish): a
    forged later checkpoint must not reach `kubectl flux status` or a retry's seed."""
    failed = {"metadata": {"uid": "u1"}, "status": {"phase": "Failed", "finishedAt": "2026-11-21T12:00:00.400Z",
                                                    "checkpoint": {"state": "Running", "sequence": 2}}}
    before = _written(_progress_object("u1", 7), "2026-11-21T11:59:58Z")  # a crashed run's last progress
    assert with_progress(failed, before)["status"]["checkpoint"]["sequence"] == 7
    same_second = _written(_progress_object("u1", 7), "2026-11-21T12:00:01Z")
    assert with_progress(failed, same_second)["status"]["checkpoint"]["sequence"] == 7, "within the tolerance"
    forged = _written(_progress_object("u1", 2 ** 62), "2026-11-21T12:05:00Z")
    assert with_progress(failed, forged) is failed
    running = {"metadata": {"uid": "u1"}, "status": {"phase": "Running", "checkpoint": {"sequence": 2}}}
    assert with_progress(running, forged)["status"]["checkpoint"]["sequence"] == 2 ** 62, "no finish: no cutoff"
