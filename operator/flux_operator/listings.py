"""What a listing says that no event does: an object it no longer holds is gone.

kopf lists again whenever a stream starts over (a 410 after a long disconnect, a failed listing, the
supervisor's restart in watches.py) and then watches from the listing's resourceVersion. An object deleted
in the gap is in neither: the new listing lacks it and no DELETED event ever comes. kopf lets that be, and
the stores would hold it for good: a runner pod deleted meanwhile would keep its execution Running with no
runner, a deleted child would keep its parent waiting, a deleted Schedule would still be run.

`install()` wraps kopf's listing (fetching.fetch_objs) to note which objects a complete listing held and at
which resourceVersion, and its stream (watching.infinite_watch) to hand kopf, just before the listing's end
(Bookmark.LISTED), a DELETED event for every object a store holds for that stream that the listing did not
have, carrying a copy of the store's, so the usual handlers forget it. Only objects no newer than the listing
are forgotten: one the operator's own create stored after the listing's snapshot is kept. A listing cut short
forgets nothing. For REFUTED_FOR after it, `refuted()` also tells the stores that a copy arriving late (a
write's answer, an event kopf had queued) is of an object the listing proved gone. kopf's `initial_streaming`
(a watch that lists) never calls fetch_objs: it must stay off (handlers.configure leaves kopf's default).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kopf._cogs.clients import fetching as kopf_fetching
from kopf._cogs.clients import watching as kopf_watching

from flux_operator.watches import stream_key

# What a store holds for a stream: its objects in that namespace (all, for None), each with at least
# apiVersion, kind and metadata (name, namespace, uid, resourceVersion, and the labels kopf filters on).
Held = Callable[[str | None], Iterable[dict[str, Any]]]
Kind = tuple[str, str]  # (API group, plural): "" is the core group

REFUTED_FOR = 120.0  # seconds a listing still refutes late copies: far longer than an answer or a queue lags

_stores: dict[Kind, Held] = {}


@dataclass
class Listing:
    version: str = ""
    uids: set[str] = field(default_factory=set)

    def proves_gone(self, meta: dict[str, Any]) -> bool:
        """Whether an object (its metadata) was gone when this listing was taken: not in it, and no newer than
        it. An unreadable version proves nothing; a newer one was written after the listing's snapshot."""
        uid, version, listed = meta.get("uid"), _number(meta.get("resourceVersion")), _number(self.version)
        return bool(uid) and uid not in self.uids and version is not None and listed is not None and \
            version <= listed  # etcd's versions compare as integers


_complete: dict[str, Listing] = {}  # by stream key: the last complete listing, until its end is streamed
_forgotten: dict[str, int] = {}  # by stream key: objects a listing proved deleted unseen (flux_watch_unseen_deletions)
_recent: dict[tuple[Kind, str | None], tuple[float, Listing]] = {}  # by kind and stream namespace


def track(group: str, plural: str, held: Held) -> None:
    """Forget what `held` returns for a stream of that kind once a listing of it lacks it."""
    _stores[(group, plural)] = held


def forgotten() -> dict[str, int]:
    """Objects each stream's listings proved deleted unseen (a DELETED event the watch never brought)."""
    return dict(_forgotten)


def untrack_all() -> None:
    _stores.clear()
    _forgotten.clear()
    _complete.clear()
    _recent.clear()


def gone_from(held: Iterable[dict[str, Any]], listing: Listing) -> list[dict[str, Any]]:
    """Copies of the objects held that the listing proves gone."""
    return [dict(raw) for raw in held if listing.proves_gone(raw.get("metadata") or {})]


def refuted(group: str, plural: str, raw: dict[str, Any], clock: Callable[[], float] = time.monotonic) -> bool:
    """Whether a recent listing of that kind (of the object's namespace, or of all) proves this copy gone:
    a store must not take it back. Read from any thread; a dict's get is atomic."""
    meta = raw.get("metadata") or {}
    for namespace in (meta.get("namespace"), None):
        entry = _recent.get(((group, plural), namespace))
        if entry is not None and clock() - entry[0] < REFUTED_FOR and entry[1].proves_gone(meta):
            return True
    return False


def _number(version: Any) -> int | None:
    return int(version) if isinstance(version, str) and version.isdigit() else None


def _kind(resource: Any) -> Kind:
    return getattr(resource, "group", ""), getattr(resource, "plural", "")


def _noting(fetch_objs: Callable[..., AsyncIterator[Any]]):
    async def fetch(**kwargs: Any) -> AsyncIterator[Any]:
        resource = kwargs.get("resource")
        if _kind(resource) not in _stores:
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
        key, kind = stream_key(resource, namespace), _kind(resource)
        async for item in infinite_watch(**kwargs):
            held = _stores.get(kind)
            if item is kopf_watching.Bookmark.LISTED and held is not None and (listing := _complete.pop(key, None)):
                _recent[(kind, namespace)] = (time.monotonic(), listing)
                for raw in gone_from(held(namespace), listing):
                    _forgotten[key] = _forgotten.get(key, 0) + 1
                    yield {"type": "DELETED", "object": raw}
            yield item

    return watch


_installed: list[bool] = []


def install() -> None:
    """Before kopf starts; once (again is a no-op). kopf is pinned: tests/operator/test_listings.py runs kopf's
    own watcher through this."""
    if _installed:
        return
    fetch_objs = getattr(kopf_fetching, "fetch_objs", None)
    infinite_watch = getattr(kopf_watching, "infinite_watch", None)
    if not callable(fetch_objs) or not callable(infinite_watch) or not hasattr(kopf_watching.Bookmark, "LISTED"):
        raise RuntimeError("kopf changed: its fetch_objs, infinite_watch or Bookmark.LISTED is gone; see "
                           "flux_operator/listings.py")
    kopf_fetching.fetch_objs = _noting(fetch_objs)
    kopf_watching.infinite_watch = _forgetting(infinite_watch)
    _installed.append(True)
