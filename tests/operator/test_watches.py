"""A watch that stops is restarted, and one that cannot be makes /healthz red (flux_operator/watches.py).

kopf's own watcher (queueing.watcher) runs here against a local HTTP server shaped like the API server's
list and watch answers, which first sends an ERROR event kopf cannot continue from: without supervision
that watcher task dies (and kopf stops the operator). The cluster fault tests do it with a real API server.
"""

from __future__ import annotations

import asyncio
import json
import logging

import kopf
import pytest
from aiohttp import web
from flux_operator import boundary, watches
from flux_operator.health import Health
from kopf._cogs.clients.errors import APIForbiddenError
from kopf._cogs.clients import watching as kopf_watching
from kopf._core.reactor import queueing
from kopf._cogs.structs import references
from tests.operator.builders import Clock, serve, use_server

pytestmark = pytest.mark.unit

RESOURCE = references.Resource("workflows.flux.dev", "v1alpha1", "executions", namespaced=True)
KEY = "executions@ns"


def test_a_stream_silent_too_long_is_a_problem_until_it_hears_something() -> None:
    clock = Clock(1000.0)
    monitor = watches.WatchMonitor(clock, silent_after=200)
    monitor.started(KEY)
    clock.now += 199
    assert monitor.problems() == {}
    clock.now += 2
    assert monitor.problems() == {KEY: "no event or bookmark for 201s"}
    monitor.alive(KEY)
    assert monitor.problems() == {}
    monitor.stopped(KEY)
    clock.now += 10_000
    assert monitor.problems() == {}, "a stream kopf stopped on purpose (a namespace gone) is no problem"


def test_one_failure_a_restart_mends_is_no_problem() -> None:
    clock = Clock(1000.0)
    monitor = watches.WatchMonitor(clock, failing_after=30, recovered_after=60)
    monitor.started(KEY)
    monitor.failed(KEY, "WatchingError: Error in the watch-stream")
    for _ in range(12):
        clock.now += 10
        monitor.alive(KEY)
        assert monitor.problems() == {}
    assert monitor.restarts() == {KEY: 1}


def test_failing_again_and_again_is_a_problem_though_each_listing_succeeds() -> None:
    """A 403 on the watch only: every restart lists (a sign of life), then fails. Red once the series of
    failures is older than failing_after; green again once recovered_after passes without one."""
    clock = Clock(1000.0)
    monitor = watches.WatchMonitor(clock, failing_after=30, recovered_after=60)
    monitor.started(KEY)
    for _ in range(3):
        monitor.alive(KEY)  # the listing
        clock.now += 16
        monitor.failed(KEY, "APIForbiddenError: cannot watch executions")
    assert monitor.problems() == {KEY: "failing for 32s (3 failures): APIForbiddenError: cannot watch executions"}
    clock.now += 59
    monitor.alive(KEY)
    assert KEY in monitor.problems()
    clock.now += 2
    assert monitor.problems() == {}, "a minute without a failure: mended"
    monitor.failed(KEY, "again")
    assert monitor.problems() == {}, "a new series starts"


def test_health_is_red_with_the_streams_problem() -> None:
    monitor = watches.WatchMonitor(Clock(1000.0), silent_after=0)
    monitor.started(KEY)
    monitor._streams[KEY].life -= 1
    health = Health("me", lambda: float("inf"), lambda: True, lambda: "me", lambda: 0, watches=monitor.problems)
    ok, body = health.report()
    assert not ok and body["problems"]["watches"] == f"watch {KEY}: no event or bookmark for 1s"


async def _supervised(watcher, monitor, **options) -> asyncio.Task:
    return asyncio.create_task(watches.supervise(watcher, monitor, resource=RESOURCE, namespace="ns", **options))


def test_a_watcher_that_fails_or_ends_is_restarted_and_one_silent_too_long_too() -> None:
    async def scenario() -> tuple[list[str], dict]:
        monitor, runs = watches.WatchMonitor(), []

        async def watcher(**_) -> None:
            runs.append(f"run {len(runs) + 1}")
            if len(runs) == 1:
                raise RuntimeError("Event processing has failed with an unrecoverable error")
            if len(runs) == 2:
                return
            monitor.alive(KEY)
            await asyncio.sleep(3600)  # then silent: restarted after restart_after

        task = await _supervised(watcher, monitor, backoff=(0.01,), restart_after=0.3, check_every=0.05)
        await asyncio.sleep(0.8)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return runs, monitor.restarts()

    runs, restarts = asyncio.run(scenario())
    assert runs[:4] == ["run 1", "run 2", "run 3", "run 4"], "failed, ended, silent: each one restarted"
    assert restarts == {}, "the stream is forgotten once its supervisor is cancelled (kopf stopping it)"


def test_a_run_that_never_hears_anything_is_restarted_once_per_restart_after_not_in_a_loop() -> None:
    async def scenario() -> list[float]:
        monitor, starts = watches.WatchMonitor(), []

        async def watcher(**_) -> None:
            starts.append(asyncio.get_running_loop().time())
            await asyncio.sleep(3600)  # connects, lists nothing, hears nothing

        task = await _supervised(watcher, monitor, backoff=(0.01,), restart_after=0.3, check_every=0.02)
        await asyncio.sleep(1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return starts

    starts = asyncio.run(scenario())
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert 2 <= len(starts) <= 4 and all(gap >= 0.3 for gap in gaps), starts


def test_a_forbidden_observer_is_left_to_kopf() -> None:
    async def scenario() -> None:
        async def watcher(**_) -> None:
            raise APIForbiddenError({"message": "forbidden"}, status=403, headers={})

        await asyncio.wait_for(watches.supervise(watcher, watches.WatchMonitor(), passthrough=(APIForbiddenError,),
                                                 resource=RESOURCE, namespace=None), timeout=10)

    with pytest.raises(APIForbiddenError):
        asyncio.run(scenario())


async def api_server(watches_served: list[str], over: asyncio.Event | None = None):
    """An empty list, then watches: the first sends an ERROR event other than 410 (kopf raises WatchingError,
    its watcher task dies), the next an ADDED event, and stays open."""
    async def executions(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            return web.json_response({"kind": "ExecutionList", "metadata": {"resourceVersion": "5"}, "items": []})
        response = web.StreamResponse()
        await response.prepare(request)
        watches_served.append(request.query.get("resourceVersion", ""))
        if len(watches_served) == 1:
            event = {"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "internal error"}}
        else:
            event = {"type": "ADDED", "object": {"kind": "Execution", "metadata": {
                "name": "x", "namespace": "ns", "uid": "u", "resourceVersion": "6"}}}
        await response.write(json.dumps(event).encode() + b"\n")
        if len(watches_served) > 1 and over is not None:
            await over.wait()
        return response

    return await serve(executions)


def test_kopfs_own_watcher_dies_on_an_error_event_and_is_restarted() -> None:
    async def scenario() -> tuple[list, list, dict]:
        served: list[str] = []
        over = asyncio.Event()
        runner, server = await api_server(served, over)
        vault = await use_server(server)
        settings = kopf.OperatorSettings()
        settings.watching.reconnect_backoff = 0.01
        processed: list = []

        async def processor(*, raw_event, **_) -> None:
            processed.append((raw_event["type"], raw_event["object"]["metadata"]["name"]))

        monitor = watches.WatchMonitor()
        watches.install(monitor)
        boundary.install()
        task = asyncio.create_task(queueing.watcher(settings=settings, resource=RESOURCE, namespace="ns",
                                                    processor=processor))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if processed:
                break
        restarts = monitor.restarts()
        over.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await vault.close()
        await runner.cleanup()
        return processed, served, restarts

    processed, served, restarts = asyncio.run(scenario())
    assert processed == [("ADDED", "x")], "the restarted watcher listed again and delivered the event"
    assert len(served) == 2 and restarts == {KEY: 1}
    assert queueing.watcher is not watches._kopf_watcher and kopf_watching.infinite_watch.__name__ == "watch"


def test_without_supervision_kopfs_watcher_task_dies_on_that_event() -> None:
    """The failure supervise() answers, shown on kopf's own watcher: the task ends with WatchingError."""
    async def scenario() -> BaseException | None:
        served: list[str] = []
        runner, server = await api_server(served)
        vault = await use_server(server)

        async def processor(**_) -> None:
            pass

        watches.install(watches.WatchMonitor())
        original = watches._kopf_watcher
        task = asyncio.create_task(original(settings=kopf.OperatorSettings(), resource=RESOURCE, namespace="ns",
                                            processor=processor))
        done, _ = await asyncio.wait({task}, timeout=10)
        await vault.close()
        await runner.cleanup()
        return task.exception() if done else None

    error = asyncio.run(scenario())
    assert isinstance(error, kopf_watching.WatchingError)


logging.getLogger("kopf").setLevel(logging.CRITICAL)


def test_what_a_watch_brought_counts_objects_and_quieted_checkpoints_not_the_servers_bookmarks() -> None:
    from flux_operator import boundary
    from kopf._cogs.clients.watching import Bookmark
    boundary.quiet_when(lambda obj: True)  # every checkpoint only progressed
    try:
        quieted = boundary._quieted({"type": "MODIFIED"}, {"kind": "Execution", "metadata": {"resourceVersion": "7"}})
    finally:
        boundary.quiet_when(None)
    assert quieted is not None and quieted["type"] == "BOOKMARK"
    counted = [watches._news(item) for item in (
        {"type": None, "object": {}}, {"type": "MODIFIED", "object": {}}, {"type": "DELETED", "object": {}},
        quieted, {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "8"}}}, Bookmark.LISTED)]
    assert counted == [True, True, True, True, False, False]
