"""flux_runner.waitfor: a cancel that lands as a wait_for's awaitable finishes is never dropped."""

import asyncio
import signal
from pathlib import Path

import pytest
from flux_runner import waitfor
from flux_runner.main import EXIT_OK, run
from flux_runner.testing import FakeExecutionApi, new_execution

pytestmark = pytest.mark.unit


async def _cancel_in_the_turn_the_answer_comes(wait_for) -> str:
    """What a task awaiting `wait_for(answer, 10)` sees when its cancel and the answer land in one turn."""
    loop = asyncio.get_running_loop()
    answer = loop.create_future()
    waiting = asyncio.ensure_future(wait_for(answer, 10))
    await asyncio.sleep(0)  # now suspended in wait_for
    answer.set_result("answer")
    waiting.cancel()
    try:
        return await waiting
    except asyncio.CancelledError:
        return "cancelled"


def test_the_cancel_safe_wait_for_raises_the_cancel_even_when_the_answer_came_in_the_same_turn():
    assert asyncio.run(_cancel_in_the_turn_the_answer_comes(waitfor.wait_for)) == "cancelled"


def test_the_interpreters_own_wait_for_drops_that_cancel_exactly_where_the_runner_replaces_it():
    dropped = asyncio.run(_cancel_in_the_turn_the_answer_comes(waitfor._ORIGINAL)) == "answer"
    assert dropped == waitfor.needed()


def test_it_keeps_wait_fors_other_promises():
    async def scenario():
        loop = asyncio.get_running_loop()
        never = loop.create_future()
        with pytest.raises(TimeoutError):
            await waitfor.wait_for(never, 0.01)
        assert never.cancelled(), "the awaitable is cancelled on timeout"

        async def quick():
            return 7
        assert await waitfor.wait_for(quick(), 1) == 7
        assert await waitfor.wait_for(quick(), None) == 7
        done = loop.create_future()
        done.set_result("ready")
        assert await waitfor.wait_for(done, 0) == "ready"
        with pytest.raises(TimeoutError):
            await waitfor.wait_for(loop.create_future(), 0)
        with pytest.raises(ValueError, match="inside"):
            async def failing():
                raise ValueError("inside")
            await waitfor.wait_for(failing(), 1)
    asyncio.run(scenario())


@pytest.mark.parametrize(("version", "needed"), [((3, 11), True), ((3, 12), False), ((3, 13), False)])
def test_only_interpreters_before_312_need_it(version, needed):
    assert waitfor.needed(version) is needed


def test_install_replaces_asyncio_wait_for_where_needed_and_is_idempotent():
    original = asyncio.wait_for
    assert waitfor.install() is waitfor.needed()
    assert waitfor.install() is waitfor.needed()
    from asyncio import wait_for as imported_after
    expected = waitfor.wait_for if waitfor.needed() else original
    assert asyncio.wait_for is expected and asyncio.tasks.wait_for is expected and imported_after is expected


RACING_WORKFLOW = '''
import asyncio, os, signal

async def main(ctx, input):
    await ctx.step("before", lambda: 1)
    loop = asyncio.get_running_loop()
    answer = loop.create_future()
    # The loop reads the signal in its next turn and runs the runner's handler in the turn after: the one
    # in which the answer comes too.
    os.kill(os.getpid(), signal.SIGTERM)
    loop.call_soon(loop.call_soon, answer.set_result, "late")
    try:
        await asyncio.wait_for(answer, 10)
    except asyncio.CancelledError:
        await ctx.checkpoint({"cleanedUp": True})
        raise
    await ctx.step("after", lambda: 2)
'''


def _run_racing_workflow(token, tmp_path: Path, monkeypatch) -> tuple[dict, str]:
    """The racing workflow run by the runner; its final checkpoint and termination message."""
    (tmp_path / "racing_workflow.py").write_text(RACING_WORKFLOW)
    monkeypatch.syspath_prepend(str(tmp_path))
    api = FakeExecutionApi(new_execution("demo", "racing_workflow:main"))
    termination_log = tmp_path / "termination-log"
    termination_log.touch()
    unhandled = []
    previous = signal.signal(signal.SIGTERM, lambda *_: unhandled.append("SIGTERM reached Python, not the loop"))
    try:
        exit_code = asyncio.run(run(api.client(token), termination_log=termination_log, poll_interval=0.001))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert unhandled == [] and exit_code == EXIT_OK
    return api.checkpoint, termination_log.read_text()


def test_sigterm_as_a_wait_for_finishes_still_cancels_the_workflow(token, tmp_path: Path, monkeypatch):
    final, message = _run_racing_workflow(token, tmp_path, monkeypatch)
    assert [s["name"] for s in final["steps"]] == ["before"], "no step may run after the cancel"
    assert final.get("data") == {"cleanedUp": True}, "the workflow's cleanup ran"
    assert final["state"] == "Cancelled" and final.get("error") is None
    assert message == "Cancelled: received SIGTERM\n"


def test_without_the_runners_wait_for_that_race_loses_the_cancel_where_the_interpreter_drops_it(
        token, tmp_path: Path, monkeypatch):
    # The control: the workflow above does make the race, so the test before it can fail.
    monkeypatch.setattr(waitfor, "install", lambda: False)
    final, _ = _run_racing_workflow(token, tmp_path, monkeypatch)
    lost = [s["name"] for s in final["steps"]] == ["before", "after"] and "data" not in final
    assert lost == waitfor.needed(), final
