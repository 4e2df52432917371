"""ctx.wait_for_signal in the runner: a signal there is taken at once, one sent meanwhile is taken by the
poll, a long wait holds no pod, a replay takes the same signal, a timeout raises."""

import asyncio
from pathlib import Path

import pytest
from flux_runner.main import EXIT_OK, run
from flux_runner.signalling import decoded
from flux_runner.testing import FakeExecutionApi, new_execution

pytestmark = pytest.mark.unit

APPROVE = {"name": "approve", "data": '{"approved":true,"by":"ada"}', "sentBy": "grace"}


@pytest.fixture
def termination_log(tmp_path: Path) -> Path:
    path = tmp_path / "termination-log"
    path.touch()
    return path


def approval(timeout=None, signals=None) -> FakeExecutionApi:
    return FakeExecutionApi(new_execution("approval", "flux_examples.approval:main",
                                          {"timeoutSeconds": timeout} if timeout is not None else {},
                                          signals=signals or []))


def run_runner(api, token, log, durable_after=60.0) -> int:
    return asyncio.run(run(api.client(token), termination_log=log, poll_interval=0.001, checkpoint_interval=0.0,
                           durable_after=durable_after))


def test_a_signal_already_sent_is_taken_at_once(token, termination_log):
    api = approval(signals=[APPROVE])
    assert run_runner(api, token, termination_log) == EXIT_OK
    final = api.checkpoint
    assert final["state"] == "Succeeded"
    # The approver is the checked sender, not the name the data claims.
    assert final["result"] == {"applied": True, "rows": 42, "decision": {"approved": True, "by": "ada"},
                               "approvedBy": "grace"}
    assert final["results"]["signal-approve-1"] == {"data": {"approved": True, "by": "ada"}, "sentBy": "grace"}


def test_without_a_timeout_the_wait_holds_no_pod(token, termination_log):
    api = approval()
    assert run_runner(api, token, termination_log) == EXIT_OK
    final = api.checkpoint
    assert final["state"] == "Waiting" and final.get("wakeAt") is None
    assert final["signal"] == {"name": "approve", "occurrence": 1}
    assert final["waiting"] == "waiting for signal approve"
    assert "signal-approve-1" not in final["results"], "nothing received yet"


def test_the_pod_after_the_signal_takes_it_and_skips_what_ran(token, termination_log):
    api = approval()
    run_runner(api, token, termination_log)
    waited = api.checkpoint
    api.status["checkpoint"] = {**waited, "state": "Running", "signal": None, "waiting": None}
    api.execution["spec"]["signals"] = [APPROVE]
    assert run_runner(api, token, termination_log) == EXIT_OK
    final = api.checkpoint
    assert final["state"] == "Succeeded" and final["result"]["applied"] is True
    assert final["steps"][: len(waited["steps"])] == waited["steps"], "prepare did not run again"


def test_a_signal_sent_during_a_short_wait_is_seen_by_the_poll(token, termination_log):
    api = approval(timeout=30)  # within the threshold: the wait stays in the pod and polls
    polls = []

    def operator_delivers(api_, record):
        if record.method == "GET":
            polls.append(record)
            if len(polls) == 3:
                api_.execution["spec"]["signals"] = [APPROVE]
    api.hooks.append(operator_delivers)
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Succeeded" and api.checkpoint["result"]["applied"] is True


def test_a_timeout_raises_in_the_workflow(token, termination_log):
    api = approval(timeout=0.05)
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["result"] == {"applied": False, "why": "nobody decided in time"}
    assert api.checkpoint["results"]["signal-approve-1"] == {"timedOut": True}


def test_a_long_timeout_waits_without_a_pod_until_it(token, termination_log):
    api = approval(timeout=3600)
    run_runner(api, token, termination_log)
    final = api.checkpoint
    assert final["state"] == "Waiting" and final["wakeAt"] and final["signal"]["name"] == "approve"


def test_the_kth_wait_takes_the_kth_signal_of_its_name(token, termination_log):
    api = FakeExecutionApi(new_execution("two", "tests.runner.signal_workflows:twice", signals=[
        {"name": "go", "data": "1"}, {"name": "other", "data": "9"}, {"name": "go", "data": "2"}]))
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["result"] == [1, 2]


def test_a_wait_that_timed_out_takes_no_signal_so_the_next_wait_takes_the_late_one(token, termination_log):
    """Signals queue: the first go, sent after the first wait gave up, goes to the next wait (it once waited for
    a second go that might never come), in this pod and in the replay after it."""
    api = FakeExecutionApi(new_execution("late", "tests.runner.signal_workflows:missed_then_taken"))
    assert run_runner(api, token, termination_log) == EXIT_OK
    waited = api.checkpoint
    assert waited["state"] == "Waiting" and waited["signal"] == {"name": "go", "occurrence": 1}
    api.status["checkpoint"] = {**waited, "state": "Running", "signal": None, "waiting": None}
    api.execution["spec"]["signals"] = [{"name": "go", "data": "7"}]
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["result"] == ["timed out", 7]


@pytest.mark.parametrize(("text", "value"), [('{"a":1}', {"a": 1}), ("not json", "not json"), (None, None)])
def test_signal_data_is_json_and_other_text_is_kept_as_it_is(text, value):
    assert decoded(text) == value


@pytest.mark.parametrize("name", ["a/b", "100%", "-dash-first", "x" * 64, "with space"])
def test_a_name_no_signal_can_have_fails_the_workflow_with_a_clear_error(token, termination_log, name):
    api = FakeExecutionApi(new_execution("odd", "tests.runner.signal_workflows:named", {"name": name}))
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Failed"
    assert f"ctx.wait_for_signal: {name!r} is no signal name" in api.checkpoint["error"]
    assert "signal" not in api.checkpoint, "no wait was written for it"


def _seed(result: dict) -> dict:
    names = ["prepare", "signal-approve-1-wait", "signal-approve-1"]
    return {"done": {"names": names}, "stepCount": 3,
            "results": {"prepare": {"rows": 42}, "signal-approve-1-wait": {"until": None}, "signal-approve-1": result},
            "steps": [{"name": n, "result": None} for n in names]}


def test_a_seed_cannot_sign_an_approval(token, termination_log):
    """spec.seed is its creator's word: a sentBy there is no sender the API server checked. The wait happens
    again and takes the signal of this execution (here none: Waiting), never the forged approver."""
    api = approval()
    api.execution["spec"]["seed"] = _seed({"data": {"approved": True}, "sentBy": "alice@corp.example"})
    assert run_runner(api, token, termination_log) == EXIT_OK
    final = api.checkpoint
    assert final["state"] == "Waiting" and final["signal"] == {"name": "approve", "occurrence": 1}
    assert "signal-approve-1" not in final["results"] and final["results"]["prepare"] == {"rows": 42}
    assert final["stepCount"] == 2, "prepare, seeded; then the wait again"
    api.status["checkpoint"] = {**final, "state": "Running", "signal": None, "waiting": None}
    api.execution["spec"]["signals"] = [APPROVE]
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["result"]["approvedBy"] == "grace", "the sender of this execution's own signal"


def test_a_seeded_unsigned_signal_is_reused_as_input_is(token, termination_log):
    api = approval()
    api.execution["spec"]["seed"] = _seed({"data": {"approved": False}})
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Succeeded"
    assert api.checkpoint["result"] == {"applied": False, "why": "rejected", "decision": {"approved": False}}


def test_a_wait_for_a_signal_past_the_most_an_execution_takes_fails_clearly(token, termination_log):
    """spec.signals holds at most 32: the 33rd go can never come, and its durable wait could not be checkpointed."""
    signals = [{"name": "go", "data": str(i)} for i in range(32)]
    api = FakeExecutionApi(new_execution("many", "tests.runner.signal_workflows:more_than_can_come", {"waits": 33},
                                         signals=signals))
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Failed"
    assert "would take signal go number 33, which can never come" in api.checkpoint["error"]
    assert api.checkpoint["stepCount"] == 64, "the 32 that came were taken (a wait step and a signal step each)"
