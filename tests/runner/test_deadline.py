"""flux_runner.deadline: a timeout that keeps its word in cleanup code, where a cancel is already pending (on Python
3.11 before 3.11.3 the interpreter's own does not: CPython gh-102780)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from flux_runner import deadline, waitfor
from flux_runner.deadline import Deadline

pytestmark = pytest.mark.unit

TIMEOUTS = [pytest.param(Deadline, id="Deadline"), pytest.param(deadline.timeout, id="timeout")]


def in_cleanup(body: Callable[[], Any]) -> str:
    """Runs `body` (a coroutine function) in the except-block of a cancelled task, as a workflow's cleanup runs
    after the SIGTERM's cancel; what it raised, by name, or 'returned'."""
    outcome = []

    async def workflow():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            try:
                await body()
                outcome.append("returned")
            except BaseException as exc:  # noqa: BLE001 - what escapes is what the test is about
                outcome.append(type(exc).__name__)
            raise

    async def main():
        task = asyncio.create_task(workflow())
        await asyncio.sleep(0.01)
        task.cancel("received SIGTERM")
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    return outcome[0]


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_a_timeout_in_cleanup_code_raises_timeout_error_not_cancelled_error(timeout):
    async def hung_read():
        async with timeout(0.05):
            await asyncio.Event().wait()

    assert in_cleanup(hung_read) == "TimeoutError"


def test_the_interpreter_is_wrong_exactly_where_we_say():
    """The interpreter's own Timeout, in cleanup code: right only from 3.11.3 (what `timeout` relies on)."""
    async def hung_read():
        loop = asyncio.get_running_loop()
        async with asyncio.timeouts.Timeout(loop.time() + 0.05):
            await asyncio.Event().wait()

    assert (in_cleanup(hung_read) == "TimeoutError") is deadline.interpreter_is_right()


def test_the_version_boundary():
    assert not deadline.interpreter_is_right((3, 11, 2))
    assert deadline.interpreter_is_right((3, 11, 3)) and deadline.interpreter_is_right((3, 12, 0))


def test_the_cancel_safe_wait_for_keeps_its_word_in_cleanup_code():
    async def slow_release():
        await waitfor.wait_for(asyncio.Event().wait(), 0.05)

    assert in_cleanup(slow_release) == "TimeoutError"


def test_a_block_done_in_time_raises_nothing_and_leaves_no_cancel_behind():
    async def main():
        async with Deadline(1) as d:
            await asyncio.sleep(0)
        await asyncio.sleep(0.02)  # a cancel left pending would land here
        return d.expired()

    assert asyncio.run(main()) is False


def test_an_expired_deadline_outside_cleanup_is_a_timeout_error():
    async def main():
        with pytest.raises(TimeoutError):
            async with Deadline(0.02) as d:
                await asyncio.sleep(5)
        return d.expired()

    assert asyncio.run(main()) is True


def test_a_cancel_from_elsewhere_is_never_taken_for_the_timeout():
    """The caller's own cancel (a SIGTERM) during the block goes on as CancelledError, even when the deadline
    runs out in the same turn."""
    async def main(at_once: bool):
        async def guarded():
            async with Deadline(0.05 if at_once else 5):
                await asyncio.sleep(5)

        task = asyncio.create_task(guarded())
        await asyncio.sleep(0.05 if at_once else 0.01)
        task.cancel("received SIGTERM")
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main(at_once=False))
    asyncio.run(main(at_once=True))


def test_when_reschedule_and_at():
    async def main():
        loop = asyncio.get_running_loop()
        async with Deadline(None) as d:
            assert d.when() is None
            d.reschedule(loop.time() + 5)
            assert d.when() is not None
            d.reschedule(None)
            await asyncio.sleep(0.02)
        with pytest.raises(TimeoutError):
            async with Deadline.at(loop.time() + 0.02):
                await asyncio.sleep(5)
        with pytest.raises(TimeoutError):
            async with Deadline(5) as d:
                d.reschedule(loop.time() + 0.02)
                await asyncio.sleep(5)

    asyncio.run(main())


def interpreters_timeout(delay: float | None) -> asyncio.Timeout:
    return asyncio.Timeout(None if delay is None else asyncio.get_running_loop().time() + delay)


def test_install_gives_workflows_the_right_timeout_where_the_interpreter_is_wrong(monkeypatch):
    for module in (asyncio, asyncio.timeouts):  # as before any install (an earlier test's run() may have done one)
        monkeypatch.setattr(module, "timeout", interpreters_timeout)
        monkeypatch.setattr(module, "timeout_at", asyncio.Timeout)
    installed = deadline.install()
    assert installed is not deadline.interpreter_is_right()
    expected = (Deadline, Deadline.at) if installed else (interpreters_timeout, asyncio.Timeout)
    assert (asyncio.timeout, asyncio.timeout_at) == expected

    async def hung_read():
        async with asyncio.timeout(0.05):
            await asyncio.Event().wait()

    assert in_cleanup(hung_read) == "TimeoutError"


def test_it_is_called_as_the_interpreters_is_and_used_once():
    async def main():
        async with deadline.timeout(delay=5):
            pass
        async with Deadline(delay=5) as d:
            pass
        with pytest.raises(RuntimeError):
            d.reschedule(None)  # after the block: it would cancel the task outside any block
        with pytest.raises(RuntimeError):
            async with d:
                pass
        with pytest.raises(RuntimeError):
            Deadline(5).reschedule(None)  # before the block

    asyncio.run(main())


def test_a_deadline_already_past_expires_at_once():
    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            async with Deadline.at(loop.time() - 1):
                await asyncio.sleep(5)
        with pytest.raises(TimeoutError):
            async with Deadline(0):
                await asyncio.sleep(5)

    asyncio.run(main())
