"""Where kopf's bytes become objects: through flux_api.nesting, so no object kills a watch.

kopf 1.45.2 decodes every watch line with `json.loads` and every other answer (the initial listing
included) with aiohttp's `response.json()`. An object nested a few thousand levels deep, which the API
server accepts, makes both raise RecursionError: the watcher task dies, kopf stops the whole operator,
and after a restart the listing fails on the same object. `install()` points both at `nesting.loads`,
which decodes anything the API server sends and replaces what is nested too deep with a small stub
before any code (kopf's, ours) could recurse into it. kopf is pinned: tests/operator/test_boundary.py
drives kopf's own stream and listing code through this, so an upgrade that moves them fails there.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from flux_api import nesting
from flux_api.names import KIND
from kopf._cogs.clients import api as kopf_api

from flux_operator import memory

_INSTALLED = "_flux_bounded_decoding"
QUIETED = "fluxQuieted"  # marks the bookmark that stands for a quieted event: still an event the watch brought
_quiet: list[Callable[[dict[str, Any]], bool]] = []  # the World's progress_only, once the operator has one
_sized: list[Callable[[int], None]] = []  # told each Execution watch event's size (flux_checkpoint_bytes)


def _loads(data: bytes | str) -> Any:
    memory.decoded(len(data))  # large answers leave freed heap behind: the trimmer returns it
    return nesting.loads(data)


def _execution_of(event: Any) -> dict[str, Any] | None:
    """The Execution a watch event carries, if it carries one."""
    obj = event.get("object") if isinstance(event, dict) else None
    return obj if isinstance(obj, dict) and obj.get("kind") == KIND else None


def _quieted(event: Any, obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """The bookmark that stands for `event` (carrying the Execution `obj`), if it is a checkpoint's progress
    (see quiet_when)."""
    if not (_quiet and obj is not None and event.get("type") == "MODIFIED" and isinstance(obj.get("metadata"), dict)
            and _quiet[0](obj)):
        return None
    return {"type": "BOOKMARK", QUIETED: True, "object": {"apiVersion": obj.get("apiVersion"), "kind": KIND,
                                           "metadata": {"resourceVersion": obj["metadata"].get("resourceVersion")}}}


def quiet_when(test: Callable[[dict[str, Any]], bool] | None) -> None:
    """An Execution's MODIFIED watch event for which `test` is true (the World's progress_only) reaches kopf
    as a BOOKMARK of its resourceVersion, which kopf's multiplexer drops after noting where the stream is:
    a checkpoint that only progressed costs its decode and one comparison, not kopf's handling of an event
    (about 1.2 ms each) for every checkpoint write of every execution."""
    _quiet[:] = [test] if test is not None else []


def on_execution_line(record: Callable[[int], None] | None) -> None:
    """`record` is told the size in bytes of every Execution the watch brings (its checkpoint is most of it)."""
    _sized[:] = [record] if record is not None else []


def _watch_line(data: bytes | str) -> Any:
    event = nesting.loads(data)
    obj = _execution_of(event)
    if _sized and obj is not None:
        _sized[0](len(data))
    bookmark = _quieted(event, obj)
    memory.decoded(len(data), cyclic=bookmark is None)  # kopf never saw a quieted one: nothing to collect
    return bookmark or event


def _answer(method: str):
    async def call(url: str, **kwargs: Any) -> Any:
        response = await kopf_api.request(method, url, **kwargs)
        async with response:
            body = await response.read()
        return _loads(body) if body.strip() else None

    call.__name__ = call.__qualname__ = method
    return call


def install() -> None:
    """Idempotent; before kopf starts."""
    if getattr(kopf_api, _INSTALLED, False):
        return
    for name in ("request", "stream", "get", "post", "patch", "delete"):
        if not callable(getattr(kopf_api, name, None)):
            raise RuntimeError(f"kopf changed: kopf._cogs.clients.api.{name} is gone; see flux_operator/boundary.py")
    # `stream` reads `json.loads` from its module at call time: only that name is replaced there.
    kopf_api.json = SimpleNamespace(loads=_watch_line)
    for method in ("get", "post", "patch", "delete"):
        setattr(kopf_api, method, _answer(method))
    setattr(kopf_api, _INSTALLED, True)
