"""Durable sleeps in the runner: a sleep past the threshold ends the run as Waiting with its wake time; the
replay after it skips what ran and goes on; a short one sleeps in the pod."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flux_api.timefmt import format_time, parse_time
from flux_runner.main import EXIT_OK, run
from flux_runner.testing import FakeExecutionApi, new_execution
from flux_runner.waits import seconds_of

pytestmark = pytest.mark.unit


@pytest.fixture
def termination_log(tmp_path: Path) -> Path:
    path = tmp_path / "termination-log"
    path.touch()
    return path


def run_runner(api: FakeExecutionApi, token: Path, log: Path, durable_after: float = 60.0) -> int:
    return asyncio.run(run(api.client(token), termination_log=log, poll_interval=0.001,
                           checkpoint_interval=0.0, durable_after=durable_after))


def nap(seconds: float, workflow: str = "flux_examples.nap:main") -> FakeExecutionApi:
    return FakeExecutionApi(new_execution("nap", workflow, {"sleepSeconds": seconds}))


def test_a_long_sleep_ends_the_run_as_waiting_with_its_wake_time(token, termination_log):
    api = nap(120)
    before = datetime.now(UTC)
    assert run_runner(api, token, termination_log) == EXIT_OK
    final = api.checkpoint
    assert final["state"] == "Waiting"
    wake = parse_time(final["wakeAt"])
    assert before + timedelta(seconds=119) < wake < datetime.now(UTC) + timedelta(seconds=121)
    assert final["waiting"] == f"sleeping until {final['wakeAt']}"
    assert [s["name"] for s in final["steps"]] == ["before-1", "before-2", "sleep-1"], "nothing after the sleep ran"
    assert final["results"]["sleep-1"] == {"wakeAt": final["wakeAt"]}, "a replay finds the same wake time"
    assert termination_log.read_text() == f"Waiting: sleeping until {final['wakeAt']}\n"


def test_after_the_wake_time_the_replay_skips_what_ran_and_goes_on(token, termination_log):
    api = nap(120)
    run_runner(api, token, termination_log)
    waited = api.checkpoint
    past = format_time(datetime.now(UTC) - timedelta(seconds=1))
    # What the operator does at the wake time (state Running, wake time cleared); here the clock moved on.
    api.status["checkpoint"] = {**waited, "state": "Running", "wakeAt": None, "waiting": None,
                                "results": {**waited["results"], "sleep-1": {"wakeAt": past}}}
    assert run_runner(api, token, termination_log) == EXIT_OK
    final = api.checkpoint
    assert final["state"] == "Succeeded" and final.get("wakeAt") is None
    assert [s["name"] for s in final["steps"]] == ["before-1", "before-2", "sleep-1", "after-1", "after-2"]
    assert final["steps"][:3] == waited["steps"], "the steps before the sleep were not run again"


def test_a_pod_started_before_the_wake_time_waits_again_for_the_same_time(token, termination_log):
    api = nap(300)
    run_runner(api, token, termination_log)
    first = api.checkpoint
    api.status["checkpoint"] = {**first, "state": "Running", "wakeAt": None, "waiting": None}
    run_runner(api, token, termination_log)
    assert api.checkpoint["state"] == "Waiting" and api.checkpoint["wakeAt"] == first["wakeAt"]


def test_a_short_sleep_stays_in_the_pod(token, termination_log):
    api = nap(0.05)
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Succeeded"
    assert "Waiting" not in {c["state"] for c in api.checkpoints}


def test_the_threshold_is_the_operators_setting(token, termination_log):
    api = nap(2)
    run_runner(api, token, termination_log, durable_after=1)
    assert api.checkpoint["state"] == "Waiting"


def test_except_exception_cannot_swallow_the_end_of_the_pod(token, termination_log):
    api = nap(120, "flux_examples.nap:stubborn")
    run_runner(api, token, termination_log)
    assert api.checkpoint["state"] == "Waiting" and api.checkpoint.get("result") is None


@pytest.mark.parametrize(("delay", "error"), [
    ("10", TypeError), (True, TypeError), (-1, ValueError), (float("nan"), ValueError), (1e12, ValueError),
])
def test_a_sleep_of_something_else_than_seconds_is_refused(delay, error):
    with pytest.raises(error):
        seconds_of(delay)


@pytest.mark.parametrize("until", ["9500-01-01T00:00:00+00:00", "2026-01-01T00:00:00"])
def test_a_wake_time_past_the_bound_or_without_a_zone_fails_the_workflow_clearly(token, termination_log, until):
    """Past ten years the Waiting checkpoint would be refused by the schema, again in every new pod."""
    api = FakeExecutionApi(new_execution("late", "tests.runner.signal_workflows:sleep_until", {"until": until}))
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Failed", api.checkpoint
    assert "ctx.sleep_until takes a" in api.checkpoint["error"]


def test_a_wake_time_within_the_bound_sleeps_without_a_pod(token, termination_log):
    until = (datetime.now(UTC) + timedelta(days=9 * 365)).isoformat()
    api = FakeExecutionApi(new_execution("late", "tests.runner.signal_workflows:sleep_until", {"until": until}))
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Waiting" and parse_time(api.checkpoint["wakeAt"]).year >= 2035


def test_a_timedelta_is_seconds_too():
    assert seconds_of(timedelta(minutes=2)) == 120.0


def test_a_retry_starts_from_its_seed_and_runs_only_the_rest(token, termination_log):
    """spec.seed (kubectl flux retry): the seeded steps are skipped and their results reused."""
    api = nap(0.01)
    api.execution["spec"]["seed"] = {"done": {"names": ["before-1"]}, "results": {"before-1": 1},
                                     "steps": [{"name": "before-1", "result": 1}], "stepCount": 1}
    assert run_runner(api, token, termination_log) == EXIT_OK
    final = api.checkpoint
    assert final["state"] == "Succeeded"
    assert [s["name"] for s in final["steps"]] == ["before-1", "before-2", "sleep-1", "after-1", "after-2"]
    assert final["steps"][0] == {"name": "before-1", "result": 1, "completedAt": None}, "not run again"


def test_a_seed_that_is_no_checkpoint_fails_clearly(token, termination_log):
    api = nap(0.01)
    api.execution["spec"]["seed"] = {"stepCount": -1}
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Failed" and "spec.seed is not a valid checkpoint" in api.checkpoint["error"]
