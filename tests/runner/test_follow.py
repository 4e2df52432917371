"""A waiting runner follows its Execution with a watch (flux_runner.follow): the Follower alone with a scripted
stream, then the runner against the in-memory API server."""

import asyncio
import logging
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from flux_runner.errors import ApiUnavailable, Forbidden
from flux_runner.follow import Follower
from flux_runner.main import EXIT_OK, run
from flux_runner.testing import FakeExecutionApi, new_execution

pytestmark = pytest.mark.unit


def obj(version: int, **status) -> dict:
    return {"metadata": {"name": "x", "resourceVersion": str(version)}, "status": status}


class Scripted:
    """poll() and stream() for a Follower: each watch is a queue the test feeds; None in it ends that watch; an
    exception in `opens` is what the next open raises."""

    def __init__(self, polled: dict) -> None:
        self.polled, self.polls, self.opened_from = polled, 0, []
        self.opens: list[Exception] = []
        self.queue: asyncio.Queue = asyncio.Queue()

    async def poll(self) -> dict:
        self.polls += 1
        return self.polled

    async def stream(self, version: str):
        self.opened_from.append(version)
        if self.opens:
            raise self.opens.pop(0)
        self.queue = asyncio.Queue()
        yield None
        while (event := await self.queue.get()) is not None:
            yield event


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def opened(api: Scripted) -> tuple[Follower, dict]:
    """A Follower whose watch is open, and what it read before."""
    follower = Follower(api.poll, api.stream, lambda n: 0.0)
    seen = await follower.read()
    await follower.changed(seen, poll=0.001)
    await settle()
    assert follower.live
    return follower, seen


def test_a_waiter_wakes_when_the_watch_sends_a_change_and_reads_it_without_a_request():
    async def go():
        api = Scripted(obj(1))
        follower = Follower(api.poll, api.stream, lambda n: 0.0)
        seen = await follower.read()
        opening = asyncio.create_task(follower.changed(seen, poll=30))
        await settle()
        assert follower.live and api.opened_from == ["1"] and opening.done()  # woken to read from the watch
        seen = await follower.read()
        waiting = asyncio.create_task(follower.changed(seen, poll=30))
        await settle()
        assert not waiting.done()
        api.queue.put_nowait({"type": "MODIFIED", "object": obj(2, children=["done"])})
        await asyncio.wait_for(waiting, 1)
        assert (await follower.read())["status"] == {"children": ["done"]}
        assert api.polls == 1  # only the first read, before the watch
        await follower.close()
    asyncio.run(go())


def test_a_cancel_that_lands_as_the_watch_wakes_the_waiter_is_not_lost():
    """SIGTERM and the operator's suspend patch arrive together: the waiter is woken and cancelled in the same
    turn of the loop. asyncio.wait_for (Python 3.11) returned the wake and dropped the cancel; the runner then
    waited on until the SIGKILL, with no final checkpoint."""
    async def go():
        follower, seen = await opened(Scripted(obj(1)))
        waiting = asyncio.create_task(follower.changed(seen, poll=30))
        await settle()
        follower._keep(obj(2))  # what the watch does with an event: the wake is set...
        waiting.cancel("received SIGTERM")  # ...and the cancel lands before the waiter runs again
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 1)
        await follower.close()
    asyncio.run(go())


def test_a_change_the_watch_already_has_returns_at_once():
    async def go():
        api = Scripted(obj(1))
        follower, seen = await opened(api)
        api.queue.put_nowait({"type": "MODIFIED", "object": obj(2)})
        await settle()
        await asyncio.wait_for(follower.changed(seen, poll=30), 0.5)
        await follower.close()
    asyncio.run(go())


def test_a_live_wait_is_bounded_by_at_most():
    async def go():
        api = Scripted(obj(1))
        follower, seen = await opened(api)
        assert follower.live
        await asyncio.wait_for(follower.changed(seen, poll=30, at_most=0.01), 0.5)
        await follower.close()
    asyncio.run(go())


def test_a_forbidden_watch_falls_back_to_polling_for_good(caplog):
    caplog.set_level(logging.INFO, "flux.runner")

    async def go():
        api = Scripted(obj(1))
        api.opens.append(Forbidden("WATCH executions: HTTP 403", 403))
        follower = Follower(api.poll, api.stream, lambda n: 0.0)
        seen = await follower.read()
        for _ in range(3):
            await follower.changed(seen, poll=0.001)
            await follower.read()
        assert not follower.live and api.opened_from == ["1"]  # tried once
        assert api.polls == 4
        await follower.close()
    asyncio.run(go())
    assert "no watch of the execution allowed" in caplog.text


def test_a_failed_watch_is_opened_again_after_its_backoff_and_reads_poll_meanwhile():
    async def go():
        api = Scripted(obj(1))
        api.opens.append(ApiUnavailable("WATCH executions: ConnectError"))
        delays = []
        follower = Follower(api.poll, api.stream, lambda n: delays.append(n) or 0.02)
        seen = await follower.read()
        await follower.changed(seen, poll=0.001)
        assert not follower.live
        await follower.read()
        assert api.polls == 2
        await asyncio.sleep(0.1)
        assert follower.live and api.opened_from == ["1", "1"] and delays == [1]
        await follower.close()
    asyncio.run(go())


def test_a_watch_goes_on_from_its_last_bookmark_and_starts_afresh_after_an_expired_version():
    async def go():
        api = Scripted(obj(1))
        follower, seen = await opened(api)
        api.queue.put_nowait({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}})
        api.queue.put_nowait(None)  # the API server's timeoutSeconds
        await settle()
        assert api.opened_from == ["1", "7"]
        api.polled = obj(9)
        api.queue.put_nowait({"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}})
        await settle()
        assert api.opened_from == ["1", "7", "9"] and api.polls == 2
        assert (await follower.read())["metadata"]["resourceVersion"] == "9"
        await follower.close()
    asyncio.run(go())


def test_a_watch_that_ends_at_once_every_time_is_opened_again_only_after_a_growing_backoff():
    async def go():
        api = Scripted(obj(1))
        delays = []
        follower = Follower(api.poll, api.stream, lambda n: delays.append(n) or 0.0)
        seen = await follower.read()
        await follower.changed(seen, poll=0.001)
        for _ in range(3):
            await settle()
            api.queue.put_nowait(None)
        await settle()
        assert delays == [1, 2, 3] and len(api.opened_from) == 4
        await follower.close()
    asyncio.run(go())


# --- the runner against the in-memory API server


def test_a_waiting_parent_follows_its_execution_with_one_watch_instead_of_polling(token: Path):
    api = FakeExecutionApi(new_execution("tree", "flux_examples.tree:full", {"depth": 1, "fanout": 2}), watch=True)

    async def operator() -> None:  # ends the children a while after they were asked for
        while len(api.status.get("spawnRequests") or []) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        api.status["children"] = [{"name": r["name"], "phase": "Succeeded", "result": 1}
                                  for r in api.status["spawnRequests"]]
        api.touch()

    async def go():
        playing = asyncio.create_task(operator())
        code = await run(api.client(token), termination_log=Path("/nonexistent"), poll_interval=0.005)
        await playing
        return code

    assert asyncio.run(go()) == EXIT_OK
    assert api.checkpoint["state"] == "Succeeded" and api.checkpoint["result"] == {"children": 2}
    watches = [r for r in api.requests if r.path == api.collection_path]
    polls = [r for r in api.requests if r.method == "GET" and r.path == api.path]
    assert len(watches) == 1, watches
    query = {k: v[-1] for k, v in parse_qs(watches[0].query).items()}
    assert query["watch"] == "true" and query["fieldSelector"] == "metadata.name=tree"
    assert query["allowWatchBookmarks"] == "true"
    # 0.3 s at a 5 ms poll interval would be about 60 polls; with the watch, the first read and at most one
    # more (the two children's waits, before the watch was open).
    assert len(polls) <= 3, [r.query for r in polls]


def test_without_a_watch_allowed_a_waiting_parent_polls_as_before(token: Path):
    api = FakeExecutionApi(new_execution("tree", "flux_examples.tree:full", {"depth": 1, "fanout": 2}))

    def finish_later(fake, record) -> None:
        asked = fake.status.get("spawnRequests") or []
        polls = [r for r in fake.requests if r.method == "GET" and "resourceVersion=0" in r.query]
        if len(asked) == 2 and len(polls) >= 10 and not fake.status.get("children"):
            fake.status["children"] = [{"name": r["name"], "phase": "Succeeded", "result": 1} for r in asked]

    api.hooks.append(finish_later)
    assert asyncio.run(run(api.client(token), termination_log=Path("/nonexistent"), poll_interval=0.001)) == EXIT_OK
    assert api.checkpoint["result"] == {"children": 2}
    assert not [r for r in api.requests if r.path == api.collection_path]  # the 403s are not recorded
