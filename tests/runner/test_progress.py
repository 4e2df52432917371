"""Periodic checkpoints go to the ExecutionProgress; what the operator decides on goes to the Execution."""

import asyncio

import pytest
from flux_runner.main import EXIT_OK, run
from flux_runner.testing import FakeExecutionApi, new_execution

pytestmark = pytest.mark.unit

STEPS = (
    "import asyncio\n"
    "async def main(ctx, input):\n"
    "    for i in range(input.get('steps', 5)):\n"
    "        await ctx.step(f'step-{i}', asyncio.sleep, input.get('pause', 0))\n"
    "    if input.get('flush'):\n"
    "        await ctx.flush()\n"
    "    if input.get('hang'):\n"
    "        await asyncio.sleep(3600)\n"
    "    return {'done': ctx.completed_steps if hasattr(ctx, 'completed_steps') else None}\n"
)


@pytest.fixture
def workflow(tmp_path, monkeypatch) -> str:
    (tmp_path / "progress_workflow.py").write_text(STEPS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "progress_workflow:main"


def execute(api, token, tmp_path, interval=0.0, poll=0.001) -> int:
    return asyncio.run(run(api.client(token), termination_log=tmp_path / "termination-log", poll_interval=poll,
                           checkpoint_interval=interval))


def writes(api, path) -> list[dict]:
    return [r.body["status"]["checkpoint"] for r in api.requests if r.method == "PATCH" and r.path == path]


def made(api: FakeExecutionApi) -> FakeExecutionApi:
    """As the operator leaves it: an ExecutionProgress exists only once a first checkpoint reached the Execution
    (here one of no step, a runner restarted since)."""
    api.status["checkpoint"] = {"state": "Running", "sequence": 0, "stepCount": 0}
    return api


def test_periodic_writes_go_to_the_progress_object_and_the_final_one_to_the_execution(workflow, token, tmp_path):
    api = made(FakeExecutionApi(new_execution("p", workflow, {"steps": 5}), progress=True))
    assert execute(api, token, tmp_path) == EXIT_OK
    progress, execution = writes(api, f"{api.progress_path}/status"), writes(api, f"{api.path}/status")
    assert [c["stepCount"] for c in progress] == [1, 2, 3, 4, 5], "a write per step (interval 0), none to the Execution"
    assert [c["state"] for c in execution] == ["Succeeded"], "the Execution hears only the final word"
    sequences = [c["sequence"] for c in progress + execution]
    assert sequences == sorted(sequences) and len(set(sequences)) == 6, "one sequence across both objects"
    assert api.checkpoint["stepCount"] == 5 and len(api.checkpoint["steps"]) == 5, "the final one holds every step"


def test_flush_goes_to_the_execution(workflow, token, tmp_path):
    api = made(FakeExecutionApi(new_execution("p", workflow, {"steps": 2, "flush": True}), progress=True))
    assert execute(api, token, tmp_path, interval=3600) == EXIT_OK
    execution = writes(api, f"{api.path}/status")
    assert [(c["state"], c["stepCount"]) for c in execution] == [("Running", 2), ("Succeeded", 2)]
    assert [c["stepCount"] for c in writes(api, f"{api.progress_path}/status")] == [1], "the first step, at once"


def test_a_restart_goes_on_from_the_newer_of_the_two_checkpoints(workflow, token, tmp_path):
    api = FakeExecutionApi(new_execution("p", workflow, {"steps": 4}), progress=True)
    api.status["checkpoint"] = {"state": "Running", "sequence": 2, "stepCount": 1,
                                "done": {"runs": [], "names": ["step-0"]}}
    api.progress["status"]["checkpoint"] = {"state": "Running", "sequence": 5, "stepCount": 3,
                                            "done": {"runs": [], "names": ["step-0", "step-1", "step-2"]}}
    assert execute(api, token, tmp_path) == EXIT_OK
    assert api.checkpoint["stepCount"] == 4, "steps 0-2 were not run again: only step-3 was"
    assert [c["sequence"] for c in writes(api, f"{api.progress_path}/status")] == [6]


def test_an_older_progress_object_does_not_win_over_the_execution(workflow, token, tmp_path):
    api = FakeExecutionApi(new_execution("p", workflow, {"steps": 2}), progress=True)
    api.status["checkpoint"] = {"state": "Succeeded", "sequence": 9, "stepCount": 2, "result": {"kept": True}}
    api.progress["status"]["checkpoint"] = {"state": "Running", "sequence": 8, "stepCount": 1}
    assert execute(api, token, tmp_path) == EXIT_OK
    assert api.checkpoint["result"] == {"kept": True} and writes(api, f"{api.path}/status") == [], \
        "finished before this start: it stands"


def test_a_progress_object_of_another_execution_is_neither_read_nor_written(workflow, token, tmp_path):
    api = FakeExecutionApi(new_execution("p", workflow, {"steps": 3}), progress=True)
    api.progress["metadata"]["ownerReferences"][0]["uid"] = "uid-of-a-deleted-namesake"
    api.progress["status"]["checkpoint"] = {"state": "Running", "sequence": 50, "stepCount": 3,
                                            "done": {"runs": [], "names": ["step-0", "step-1", "step-2"]}}
    assert execute(api, token, tmp_path) == EXIT_OK
    assert writes(api, f"{api.progress_path}/status") == []
    assert [c["stepCount"] for c in writes(api, f"{api.path}/status")] == [1, 2, 3, 3], "every step ran"


def test_a_progress_object_that_goes_away_sends_the_checkpoints_to_the_execution(workflow, token, tmp_path):
    api = made(FakeExecutionApi(new_execution("p", workflow, {"steps": 4}), progress=True))

    def deleted_after_two(fake, record):
        if record.method == "PATCH" and record.path == f"{fake.progress_path}/status" and \
                record.body["status"]["checkpoint"]["stepCount"] == 2:
            fake.progress_deleted = True

    api.hooks.append(deleted_after_two)
    assert execute(api, token, tmp_path) == EXIT_OK
    assert [c["stepCount"] for c in writes(api, f"{api.progress_path}/status")] == [1, 2, 3], "the third was refused"
    assert [c["stepCount"] for c in writes(api, f"{api.path}/status")] == [3, 4, 4], "from then on, the Execution"
    assert api.checkpoint["state"] == "Succeeded" and api.checkpoint["stepCount"] == 4


def test_without_a_progress_object_every_checkpoint_goes_to_the_execution(workflow, token, tmp_path):
    api = FakeExecutionApi(new_execution("p", workflow, {"steps": 3}))
    assert execute(api, token, tmp_path) == EXIT_OK
    assert [c["stepCount"] for c in writes(api, f"{api.path}/status")] == [1, 2, 3, 3]


def test_a_cancel_is_still_seen_at_a_step_boundary_when_progress_goes_elsewhere(workflow, token, tmp_path):
    # No SIGTERM here: the runner must learn of spec.cancel from the API server, as after a lost signal.
    api = FakeExecutionApi(new_execution("p", workflow, {"steps": 2000, "pause": 0.005}), progress=True)

    def cancel_after_three(fake, record):
        checkpoint = (record.body or {}).get("status", {}).get("checkpoint") or {}
        if record.path == f"{fake.progress_path}/status" and checkpoint.get("stepCount", 0) >= 3:
            fake.execution["spec"]["cancel"] = {"reason": "enough"}

    api.hooks.append(cancel_after_three)
    assert execute(api, token, tmp_path, interval=0.05) == EXIT_OK
    assert api.checkpoint["state"] == "Cancelled" and api.checkpoint["stepCount"] < 200
    gets = [r for r in api.requests if r.method == "GET" and r.path == api.path]
    assert len(gets) >= 2, "the step boundaries asked the Execution, not only the start"


def the_operator_makes_it_after_the_first_checkpoint(fake, record):
    """A hook playing the operator: MakeProgress once the Execution shows a Running checkpoint."""
    checkpoint = (record.body or {}).get("status", {}).get("checkpoint") or {}
    if record.path == f"{fake.path}/status" and checkpoint.get("state") == "Running":
        fake.progress_deleted = False


def test_the_runner_finds_the_progress_object_made_after_its_first_checkpoint(workflow, token, tmp_path):
    api = FakeExecutionApi(new_execution("p", workflow, {"steps": 40, "pause": 0.1}), progress=True)
    api.progress_deleted = True  # not made at the start: the operator makes it once the runner checkpoints
    api.hooks.append(the_operator_makes_it_after_the_first_checkpoint)
    assert execute(api, token, tmp_path, interval=0.2) == EXIT_OK
    execution, progress = writes(api, f"{api.path}/status"), writes(api, f"{api.progress_path}/status")
    assert execution[0]["stepCount"] == 1, "the first step at once, to the Execution: nothing else yet"
    assert len(progress) >= 10, "then the periodic writes went to the ExecutionProgress"
    assert [c["state"] for c in execution[-1:]] == ["Succeeded"] and len(execution) <= 3, execution
    looks = [i for i, r in enumerate(api.requests) if r.method == "GET" and r.path == api.progress_path]
    first_write = next(i for i, r in enumerate(api.requests) if r.method == "PATCH")
    assert len(looks) == 1 and looks[0] > first_write, \
        "none at the start (the Execution held no checkpoint, so there could be none), one an interval later"


def test_an_operator_that_grants_no_progress_object_is_not_asked_again(workflow, token, tmp_path):
    api = FakeExecutionApi(new_execution("p", workflow, {"steps": 20, "pause": 0.1}))
    assert execute(api, token, tmp_path, interval=0.2) == EXIT_OK
    assert writes(api, f"{api.progress_path}/status") == []
    assert api.checkpoint["stepCount"] == 20
