"""kopf's own listing and watch code, fed an object nested as deep as the API server admits, through the
decoders boundary.install() puts in place (flux_operator/boundary.py).

The bytes come from a local HTTP server shaped like the API server's list and watch answers: what is
tested is kopf 1.45.2's decoding path (fetching.fetch_objs, watching.continuous_watch, api.stream), not
Kubernetes. The cluster tests (tests/hostile/test_deep_objects.py) send the same objects through a real one.
"""

from __future__ import annotations

import asyncio
import json
import logging

import kopf
import pytest
from aiohttp import web
from flux_api import nesting
from flux_operator import boundary
from kopf._cogs.clients import watching
from kopf._cogs.structs import references
from tests.operator.builders import serve, use_server

pytestmark = pytest.mark.unit

DEPTH = 9_990
RESOURCE = references.Resource("workflows.flux.dev", "v1alpha1", "executions", namespaced=True)


def deep_object(name: str, rv: str) -> str:
    return ('{"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution", "metadata": {"name": "%s", '
            '"namespace": "ns", "uid": "u-%s", "resourceVersion": "%s"}, "spec": {"workflow": "a:b", '
            '"input": {"deep": %s}}}' % (name, name, rv, "[" * DEPTH + "]" * DEPTH))


def plain_object(name: str, rv: str) -> str:
    return json.dumps({"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
                       "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "resourceVersion": rv},
                       "spec": {"workflow": "a:b"}})


async def api_server(unused_port_host: str = "127.0.0.1"):
    """A list in two pages (the deep object in the second) and a watch that sends it again, then ends."""
    async def executions(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true":
            response = web.StreamResponse()
            await response.prepare(request)
            for line in ('{"type": "ADDED", "object": %s}' % deep_object("deep-2", "12"),
                         '{"type": "BOOKMARK", "object": {"kind": "Execution", "metadata": {"resourceVersion": "13"}}}',
                         '{"type": "MODIFIED", "object": %s}' % plain_object("plain", "14")):
                await response.write(line.encode() + b"\n")
            return response
        if request.query.get("continue") == "page-2":
            body = '{"kind": "ExecutionList", "metadata": {"resourceVersion": "11", "continue": ""}, "items": [%s]}' \
                   % deep_object("deep", "10")
        else:
            assert request.query.get("limit") == "1", "kopf lists in pages of settings.watching.chunk_size"
            body = '{"kind": "ExecutionList", "metadata": {"resourceVersion": "11", "continue": "page-2"}, ' \
                   '"items": [%s]}' % plain_object("plain", "9")
        return web.Response(text=body, content_type="application/json")

    return await serve(executions, unused_port_host)


async def list_then_watch(events: int, handler=None) -> list:
    """The first `events` items kopf's continuous_watch yields, from `handler`'s answers (api_server's if None)."""
    runner, server = await (serve(handler) if handler else api_server())
    vault = await use_server(server)
    settings = kopf.OperatorSettings()
    settings.watching.chunk_size = 1
    seen: list = []
    try:
        stream = watching.continuous_watch(settings=settings, resource=RESOURCE, namespace="ns",
                                           operator_pause_waiter=asyncio.Future())
        async for item in stream:
            seen.append(item)
            if len(seen) == events:
                break
        await stream.aclose()
    finally:
        await vault.close()
        await runner.cleanup()
    return seen


def test_kopfs_listing_and_watch_decode_an_object_nested_as_deep_as_the_api_server_admits() -> None:
    boundary.install()
    seen = asyncio.run(list_then_watch(events=6))
    listed = [item["object"] for item in seen[:2]]
    assert [o["metadata"]["name"] for o in listed] == ["plain", "deep"]
    assert seen[2] is watching.Bookmark.LISTED
    watched = seen[3:]
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in watched] == \
        [("ADDED", "deep-2"), ("BOOKMARK", None), ("MODIFIED", "plain")]
    for obj in (listed[1], watched[0]["object"]):
        assert obj["spec"]["workflow"] == "a:b"
        assert nesting.depth(obj) == DEPTH + 3 and nesting.depth(obj) > nesting.depth(obj, limit=200)
        # Nothing in it nests deeper than the decode depth: repr, json.dumps and pydantic are safe on it.
        assert len(repr(obj)) < 20_000 and json.loads(json.dumps(obj)) == obj


def test_install_is_idempotent_and_keeps_kopfs_request() -> None:
    from kopf._cogs.clients import api
    boundary.install()
    get, request = api.get, api.request
    boundary.install()
    assert api.get is get and api.request is request
    assert api.json.loads is boundary._watch_line


logging.getLogger("kopf").setLevel(logging.WARNING)


def running_object(rv: str, step: int, **spec) -> dict:
    return {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
            "metadata": {"name": "busy", "namespace": "ns", "uid": "u-busy", "resourceVersion": rv},
            "spec": {"workflow": "a:b", **spec},
            "status": {"phase": "Running", "checkpoint": {"state": "Running", "sequence": step,
                                                          "steps": [{"name": f"s{step}"}]}}}


def test_checkpoint_progress_reaches_kopf_as_a_bookmark_and_anything_else_as_itself() -> None:
    from flux_operator.world import World
    world = World()
    world.execution_changed(running_object("9", 1))

    async def executions(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true":
            response = web.StreamResponse()
            await response.prepare(request)
            for obj in (running_object("14", 2), running_object("15", 3, cancel={"reason": "stop"})):
                await response.write(json.dumps({"type": "MODIFIED", "object": obj}).encode() + b"\n")
            return response
        return web.json_response({"kind": "ExecutionList", "metadata": {"resourceVersion": "9"},
                                  "items": [running_object("9", 1)]})

    boundary.install()
    boundary.quiet_when(world.progress_only)
    try:
        seen = asyncio.run(list_then_watch(4, executions))
    finally:
        boundary.quiet_when(None)
    assert seen[1] is watching.Bookmark.LISTED
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in seen[2:]] == \
        [("BOOKMARK", "14"), ("MODIFIED", "15")], "progress is a bookmark; a cancel is an event"
    assert world.snapshot(("ns", "busy")).raw["metadata"]["resourceVersion"] == "14", "its version was taken"


def test_the_size_of_each_execution_the_watch_brings_is_told_and_nothing_else() -> None:
    sizes: list[int] = []
    execution = json.dumps({"type": "MODIFIED", "object": {"kind": "Execution", "metadata": {"name": "a"},
                                                           "status": {"checkpoint": {"data": "x" * 500}}}})
    pod = json.dumps({"type": "MODIFIED", "object": {"kind": "Pod", "metadata": {"name": "p"}}})
    boundary.on_execution_line(sizes.append)
    try:
        for line in (execution, pod, json.dumps({"type": "BOOKMARK"}), "[1]"):
            boundary._watch_line(line)
    finally:
        boundary.on_execution_line(None)
    assert sizes == [len(execution)]
    boundary._watch_line(execution)
    assert sizes == [len(execution)], "no hook: nothing told"
