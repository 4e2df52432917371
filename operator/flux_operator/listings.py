"""What a listing says that no event does: an object it no longer holds is gone.

kopf lists again whenever a stream starts over (a 410 after a long disconnect, a failed listing, the
supervisor's restart in watches.py) and then watches from the listing's resourceVersion. An object deleted
in the gap is in neither: the new listing lacks it and no DELETED event ever comes. kopf lets that be, and
the stores would hold it for good: a runner pod deleted meanwhile would keep its execution Running with no
runner, a deleted child would keep its parent waiting, a deleted Schedule would still be run.

`install()` wraps kopf's listing (fetching.fetch_objs) to note which objects a complete listing held and at
which resourceVersion, and its stream (watching.infinite_watch) to hand kopf, just before the listing's end
(Bookmark.LISTED), a DELETED event for every object a store holds for that stream that the listing did not
have, carrying the store's copy, so the usual handlers forget it. Only objects no newer than the listing are
forgotten: one the operator's own create stored after the listing's snapshot is kept. A listing cut short
forgets nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kopf._cogs.clients import fetching as kopf_fetching
from kopf._cogs.clients import watching as kopf_watching

from flux_operator.watches import stream_key

# What a store holds for a stream: its objects in that namespace (all, for None), each with at least
# apiVersion, kind and metadata (name, namespace, uid, resourceVersion, and the labels kopf filters on).
Held = Callable[[str | None], Iterable[dict[str, Any]]]

_stores: dict[str, Held] = {}  # by plural


@dataclass
class Listing:
    version: str = ""
    uids: set[str] = field(default_factory=set)


_complete: dict[str, Listing] = {}  # by stream key: the last complete listing, until its end is streamed


def track(plural: str, held: Held) -> None:
    """Forget what `held` returns for a stream of `plural` once a listing of it lacks it."""
    _stores[plural] = held


def untrack_all() -> None:
    _stores.clear()
    _complete.clear()


def gone_from(held: Iterable[dict[str, Any]], listing: Listing) -> list[dict[str, Any]]:
    """The objects held that the listing proves gone: not in it, and no newer than it. An unreadable version
    proves nothing (kept); a newer one was stored after the listing's snapshot (kept)."""
    gone = []
    for raw in held:
        meta = raw.get("metadata") or {}
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        if not uid or uid in listing.uids:
            continue
        if _number(version) is not None and _number(listing.version) is not None and \
                _number(version) <= _number(listing.version):  # etcd's versions compare as integers
            gone.append(raw)
    return gone


def _number(version: Any) -> int | None:
    return int(version) if isinstance(version, str) and version.isdigit() else None


def _noting(fetch_objs: Callable[..., AsyncIterator[Any]]):
    async def fetch(**kwargs: Any) -> AsyncIterator[Any]:
        resource = kwargs.get("resource")
        plural = getattr(resource, "plural", None)
        if plural not in _stores:
            async for page in fetch_objs(**kwargs):
                yield page
            return
        key, listing = stream_key(resource, kwargs.get("namespace")), Listing()
        _complete.pop(key, None)
        async for chunk, version in fetch_objs(**kwargs):
            listing.version = version or listing.version
            listing.uids.update((obj.get("metadata") or {}).get("uid", "") for obj in chunk)
            yield chunk, version
        _complete[key] = listing  # only now: a listing cut short is no proof

    return fetch


def _forgetting(infinite_watch: Callable[..., AsyncIterator[Any]]):
    async def watch(**kwargs: Any) -> AsyncIterator[Any]:
        resource, namespace = kwargs.get("resource"), kwargs.get("namespace")
        key, held = stream_key(resource, namespace), _stores.get(getattr(resource, "plural", ""))
        async for item in infinite_watch(**kwargs):
            if item is kopf_watching.Bookmark.LISTED and held is not None and (listing := _complete.pop(key, None)):
                for raw in gone_from(held(namespace), listing):
                    yield {"type": "DELETED", "object": raw}
            yield item

    return watch


_installed: list[bool] = []


def install() -> None:
    """Before kopf starts; once (again is a no-op)."""
    if _installed:
        return
    kopf_fetching.fetch_objs = _noting(kopf_fetching.fetch_objs)
    kopf_watching.infinite_watch = _forgetting(kopf_watching.infinite_watch)
    _installed.append(True)
