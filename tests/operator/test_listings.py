"""A listing after a gap proves an object gone (flux_operator/listings.py): the pure comparison, and kopf
1.45.2's own watcher (listing, a 410, listing again) through the wrappers, with the World as the store.

The answers come from a local HTTP server shaped like the API server's list and watch answers: what is
tested is kopf's listing and stream code through ours, not Kubernetes. The fault suite deletes a runner pod
while the operator's watches are refused (tests/faults/test_watches.py).
"""

from __future__ import annotations

import asyncio
import json

import kopf
import pytest
from aiohttp import web
from flux_operator import boundary, listings, watches
from flux_operator.listings import Listing, gone_from
from flux_operator.world import World
from kopf._core.reactor import queueing
from kopf._cogs.structs import references
from tests.operator.builders import serve, use_server

pytestmark = pytest.mark.unit

RESOURCE = references.Resource("workflows.flux.dev", "v1alpha1", "executions", namespaced=True)


def held(uid: str, version: str | None, namespace: str = "ns") -> dict:
    return {"metadata": {"name": uid, "namespace": namespace, "uid": uid, "resourceVersion": version}}


def test_only_what_the_listing_lacks_and_is_no_newer_than_it_is_gone() -> None:
    listing = Listing("100", {"in"})
    objects = [held("in", "50"), held("older", "99"), held("same", "100"), held("newer", "101"),
               held("unreadable", "x"), held("none", None), {"metadata": {"name": "no-uid", "resourceVersion": "1"}}]
    gone = gone_from(objects, listing)
    assert [raw["metadata"]["name"] for raw in gone] == ["older", "same"]
    assert gone[0] is not objects[1], "kopf is handed copies, never the store's own objects"
    assert gone_from(objects, Listing("", set())) == [], "a listing without a readable version proves nothing"


def test_a_recent_listing_refutes_late_copies_of_its_kind_in_its_namespace_or_all() -> None:
    now = [1000.0]
    listings._recent[(("g", "things"), "ns")] = (now[0], Listing("100", {"in"}))
    listings._recent[(("", "pods"), None)] = (now[0], Listing("50", set()))
    try:
        clock = lambda: now[0]  # noqa: E731
        assert listings.refuted("g", "things", held("late", "99"), clock)
        assert not listings.refuted("g", "things", held("in", "99"), clock)
        assert not listings.refuted("g", "things", held("late", "101"), clock), "newer than the listing: news"
        assert not listings.refuted("g", "things", held("late", "99", namespace="other"), clock)
        assert not listings.refuted("g", "other-things", held("late", "99"), clock)
        assert listings.refuted("", "pods", held("late", "7", namespace="any"), clock), "a cluster-wide listing"
        now[0] += listings.REFUTED_FOR
        assert not listings.refuted("g", "things", held("late", "99"), clock), "only for REFUTED_FOR"
    finally:
        listings.untrack_all()


def execution(name: str, version: str) -> dict:
    return {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
            "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "resourceVersion": version},
            "spec": {"workflow": "a:b"}}


async def api_server(listings_served: list[int], over: asyncio.Event):
    """The first listing holds a and b; its watch ends at once with a 410 (kopf lists again); the second
    listing holds a only (b was deleted in the gap, and no event says so), and its watch stays open."""
    async def executions(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            listings_served.append(1)
            first = len(listings_served) == 1
            items = [execution("a", "5"), execution("b", "6")] if first else [execution("a", "5")]
            return web.json_response({"kind": "ExecutionList", "items": items,
                                      "metadata": {"resourceVersion": "10" if first else "20"}})
        response = web.StreamResponse()
        await response.prepare(request)
        if len(listings_served) == 1:
            gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
            await response.write(json.dumps(gone).encode() + b"\n")
        else:
            await over.wait()
        return response

    return await serve(executions)


def test_kopfs_watcher_hears_a_deleted_event_for_what_the_listing_after_a_410_lacks() -> None:
    world, monitor = World(), watches.WatchMonitor()
    world.execution_seen(execution("made-after", "25"))  # a create's answer, newer than the second listing

    async def scenario() -> list[tuple[str, str]]:
        served: list[int] = []
        over = asyncio.Event()
        runner, server = await api_server(served, over)
        vault = await use_server(server)
        settings = kopf.OperatorSettings()
        settings.watching.reconnect_backoff = 0.01
        processed: list[tuple[str, str]] = []

        async def processor(*, raw_event, **_) -> None:  # what handlers.execution_event does with the World
            raw = raw_event["object"]
            processed.append((raw_event["type"], raw["metadata"]["name"]))
            world.execution_gone(raw) if raw_event["type"] == "DELETED" else world.execution_seen(raw)

        watches.install(monitor)
        boundary.install()
        listings.install()
        listings.track("workflows.flux.dev", "executions", world.executions_held)
        world.refute_with(listings.refuted)
        task = asyncio.create_task(queueing.watcher(settings=settings, resource=RESOURCE, namespace="ns",
                                                    processor=processor))
        try:
            for _ in range(200):
                await asyncio.sleep(0.05)
                if ("DELETED", "b") in processed:
                    break
        finally:
            over.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await vault.close()
            await runner.cleanup()
        return processed

    try:
        processed = asyncio.run(scenario())
        assert ("DELETED", "b") in processed, processed
        assert [event for event in processed if event[0] == "DELETED"] == [("DELETED", "b")], processed
        assert sorted(name for _, name in world.keys()) == ["a", "made-after"]
        assert listings.forgotten() == {"executions@ns": 1}, "flux_watch_unseen_deletions{stream}"
        assert monitor.heard() == {"executions@ns": 3}, "flux_watch_events{stream}: three listed, none made up"
        # A late copy of b (a write's answer, an event kopf had queued) does not bring it back; a copy of a
        # successor under the same name, or one newer than the listing, is news.
        assert world.execution_seen(execution("b", "15")) == [] and not world.has(("ns", "b"))
        successor = {**execution("b", "22"), "metadata": {**execution("b", "22")["metadata"], "uid": "u-b2"}}
        assert world.execution_seen(successor) == [("ns", "b")]
    finally:
        listings.untrack_all()


def test_a_pod_held_is_forgotten_through_its_deleted_event_but_never_its_successor() -> None:
    world = World()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "3",
        "labels": {"workflows.flux.dev/execution": "x"}}, "status": {"phase": "Running"}}
    world.pod_seen(pod)
    [ghost] = world.pods_held("ns")
    assert world.pods_held("other") == []
    successor = {**pod, "metadata": {**pod["metadata"], "uid": "u2", "resourceVersion": "9"}}
    world.pod_seen(successor)
    world.pod_gone(ghost)  # the old one's DELETED, handled after the listing's copy of its successor
    assert [p["metadata"]["uid"] for p in world.pods_held(None)] == ["u2"]
    world.pod_gone(world.pods_held("ns")[0])
    assert world.pods_held(None) == []

