"""Checkpoint writes coalesced: at most one an interval whatever the step rate, at once when it matters."""

import asyncio
import os
import signal
import time

import pytest
from flux_runner.journal import Journal
from flux_runner.main import EXIT_OK, run
from flux_runner.testing import FakeExecutionApi, new_execution, operator_finishes_children

from tests.runner.test_context import run_workflow

pytestmark = pytest.mark.unit


@pytest.fixture
def api() -> FakeExecutionApi:
    return FakeExecutionApi(new_execution("parent", "tests:unused"))


def patches(api: FakeExecutionApi) -> list[dict]:
    return [r.body["status"] for r in api.requests if r.method == "PATCH"]


def test_writes_and_reads_are_bounded_by_the_interval_whatever_the_step_rate(api, token):
    interval = 0.05

    async def workflow(ctx, input):
        began = time.monotonic()
        for i in range(3000):
            await ctx.step(f"step-{i}", lambda: None)
        await ctx.flush()
        return time.monotonic() - began

    task, _ = run_workflow(api, token, workflow, interval=interval)
    took = task.result()
    bound = took / interval + 2  # the first step at once, one an interval, the flush
    assert len(patches(api)) <= bound, f"{len(patches(api))} writes in {took:.2f}s"
    assert len([r for r in api.requests if r.method == "GET"]) <= bound + 1  # + the runner's own first GET
    assert api.checkpoint["stepCount"] == 3000, "the last write holds every step"
    assert api.checkpoint["done"]["runs"] == [{"prefix": "step-", "first": 0, "last": 2999}]


def test_a_long_step_does_not_hold_back_the_steps_finished_before_it(api, token):
    order = []

    def written(fake, record):
        if record.method == "PATCH":
            order.append(("written", record.body["status"]["checkpoint"]["stepCount"]))

    api.hooks.append(written)

    async def workflow(ctx, input):
        await ctx.step("a", lambda: 1)  # written at once
        await ctx.step("b", lambda: 2)  # within the interval: left to the background flush
        await ctx.step("c", asyncio.sleep, 0.5)
        order.append(("c done", None))

    run_workflow(api, token, workflow, interval=0.1)
    assert order == [("written", 1), ("written", 2), ("written", 3), ("c done", None)]


def test_flush_writes_at_once(api, token):
    async def workflow(ctx, input):
        await ctx.step("a", lambda: 1)
        await ctx.step("b", lambda: 2)
        await ctx.checkpoint({"at": "b"})
        before = len(patches(api))
        await ctx.flush()
        return before, len(patches(api))

    task, _ = run_workflow(api, token, workflow, interval=3600)
    assert task.result() == (1, 2)
    assert api.checkpoint["stepCount"] == 2 and api.checkpoint["data"] == {"at": "b"}


def test_a_spawn_is_asked_for_only_after_the_steps_before_it_are_written(api, token):
    api.hooks.append(operator_finishes_children(result=lambda request: "child done"))

    async def workflow(ctx, input):
        await ctx.step("a", lambda: 1)
        await ctx.step("b", lambda: 2)
        return await ctx.spawn("flux_examples.quick:main", {"n": 1})

    task, _ = run_workflow(api, token, workflow, interval=3600)
    assert task.result() == "child done"
    kinds = [("checkpoint", s["checkpoint"]["stepCount"]) if "checkpoint" in s else ("spawn",) for s in patches(api)]
    assert kinds[:3] == [("checkpoint", 1), ("checkpoint", 2), ("spawn",)]


def test_a_cancel_answered_to_a_background_write_cancels_the_workflow(api, token):
    def user_cancels(fake, record):
        if record.method == "PATCH":
            fake.execution["spec"]["cancel"] = {"reason": "stop"}

    async def workflow(ctx, input):
        await ctx.step("a", lambda: 1)  # written at once, before the cancel exists
        api.hooks.append(user_cancels)
        await ctx.step("b", lambda: 2)  # left to the background flush, whose answer carries the cancel
        await asyncio.sleep(30)

    began = time.monotonic()
    task, ctx = run_workflow(api, token, workflow, interval=0.1)
    assert task.cancelled() and ctx.cancelled
    assert time.monotonic() - began < 5


def test_sigterm_lands_in_a_loop_of_steps_that_never_awaits_anything_else(token, tmp_path, monkeypatch):
    # No step writes or reads within the interval, so only the step boundary's own yield lets the handler run.
    (tmp_path / "busy_workflow.py").write_text(
        "async def main(ctx, input):\n"
        "    for i in range(10_000_000):\n"
        "        await ctx.step(f'step-{i}', lambda: None)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    api = FakeExecutionApi(new_execution("busy", "busy_workflow:main"))
    unhandled = []
    previous = signal.signal(signal.SIGTERM, lambda *_: unhandled.append("SIGTERM reached Python, not the loop"))

    async def terminate_soon():
        asyncio.get_running_loop().call_later(0.5, os.kill, os.getpid(), signal.SIGTERM)
        return await run(api.client(token), termination_log=tmp_path / "termination-log", checkpoint_interval=3600)

    began = time.monotonic()
    try:
        assert asyncio.run(terminate_soon()) == EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert unhandled == [] and time.monotonic() - began < 5
    final = api.checkpoint
    assert final["state"] == "Cancelled" and final["stepCount"] > 0
    assert len(patches(api)) == 2, "the first step, then the final checkpoint holding every other one"


class SlowToStop:
    """The second write hangs, and takes a moment to stop once cancelled (closing the connection), then raises
    `on_stop` if set; every other write is answered at once."""

    def __init__(self, on_stop: Exception | None = None) -> None:
        self.calls, self.on_stop = 0, on_stop

    async def patch_status(self, status):
        self.calls += 1
        if self.calls != 2:
            return {}
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.05)
            if self.on_stop is not None:
                raise self.on_stop


async def hanging_background_write(api: SlowToStop) -> Journal:
    """A journal whose background write of the second step is on its way, and hangs."""
    journal = Journal(api, interval=0.01)
    await journal.record_step("a", None)
    await journal.record_step("b", None)  # within the interval: the background flush writes it
    await asyncio.sleep(0.03)
    return journal


def test_a_cancel_while_a_flush_stops_the_background_write_is_not_lost():
    """The workflow's SIGTERM lands while flush() waits for the background write it cancelled to stop: the
    flush must raise it, not swallow it and write on."""
    async def go():
        journal = await hanging_background_write(SlowToStop())
        flushing = asyncio.create_task(journal.flush())
        await asyncio.sleep(0.01)  # the flush waits for the background write to stop
        flushing.cancel("received SIGTERM")
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(flushing, 1)
    asyncio.run(go())


def test_an_error_of_the_background_write_as_a_flush_stops_it_reaches_the_flush():
    """Only the background write's own cancel is expected when flush() stops it; anything else it raises is
    the caller's to see."""
    async def go():
        journal = await hanging_background_write(SlowToStop(on_stop=RuntimeError("broken while stopping")))
        with pytest.raises(RuntimeError, match="broken while stopping"):
            await asyncio.wait_for(journal.flush(), 1)
    asyncio.run(go())
