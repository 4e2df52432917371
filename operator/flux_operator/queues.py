"""Concurrency limits' shell: the watched ConcurrencyLimits (LimitStore), the verdicts the execution
reconcile passes to decide() and the keys to wake (Queues), and the usage each limit shows (LimitReconciler).
The decisions are pure (execution/queueing.py); state comes from the watches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pydantic
from flux_api.names import GROUP, LIMIT_KIND, VERSION
from flux_api.limits import MAX_LIMITS_PER_NAMESPACE, MAX_SELECTOR_TERMS_PER_NAMESPACE, ConcurrencyLimit, selector_terms

from flux_operator.execution.queueing import Lineup, Member, Queued, counted_by, keepable, lineup, member, verdict
from flux_operator.kube import KubeApi
from flux_operator.metric_values import LimitShown
from flux_operator.workqueue import Result
from flux_operator.world import Key, World

log = logging.getLogger("flux_operator")

CACHED_FOR = timedelta(seconds=1)  # a line is worked out again at least this often (start times come due)
# A limit's status follows its executions' changes this much later: a hand-over's dozen events (a finish, its
# pod gone, the next one's start, its pod, its Running) make one pass and one write, not one each, while the
# pass the next in line waits for gets the CPU.
USAGE_SETTLES_SECONDS = 0.5


class LimitStore:
    """Thread-safe: kopf's watch handler writes, the workers read. Unparseable limits are left out (and
    logged once): the API server's schema admits none, so only a newer version could write one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limits: dict[Key, ConcurrencyLimit] = {}
        self._by_namespace: dict[str, dict[str, ConcurrencyLimit]] = {}  # the same, for one namespace's events
        self._announced: dict[Key, tuple[Any, Any]] = {}  # (uid, generation) last told to the executions

    def seen(self, raw: dict[str, Any]) -> Key:
        return self._store(raw)[0]

    def changed(self, raw: dict[str, Any]) -> tuple[Key, bool]:
        """Stores the limit; whether what it limits changed (new, replaced, or a new generation of its spec)
        since this was last asked, not only its status (which the operator itself writes). kopf runs the index
        handler (seen) before the event handler: the answer must not depend on which stored it first."""
        key, limit = self._store(raw)
        version = (limit.metadata.get("uid"), limit.metadata.get("generation")) if limit is not None else None
        with self._lock:
            told = self._announced.get(key)
            self._announced[key] = version
        return key, version is None or told != version

    def _store(self, raw: dict[str, Any]) -> tuple[Key, ConcurrencyLimit | None]:
        meta = raw.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        try:
            limit = ConcurrencyLimit.model_validate({**raw, "metadata": {k: meta.get(k) for k in (
                "name", "namespace", "uid", "generation", "resourceVersion")}})
        except pydantic.ValidationError as err:
            log.error("concurrencylimit %s/%s does not parse, left out: %s", *key, err.errors()[0]["msg"])
            with self._lock:
                self._drop(key)
            return key, None
        with self._lock:
            self._limits[key] = limit
            self._by_namespace.setdefault(key[0], {})[key[1]] = limit
        return key, limit

    def held(self, namespace: str | None) -> list[dict[str, Any]]:
        """The limits held in `namespace` (all for None): listings.py forgets those a listing lacks."""
        with self._lock:
            return [{"apiVersion": f"{GROUP}/{VERSION}", "kind": LIMIT_KIND, "metadata": dict(limit.metadata)}
                    for key, limit in self._limits.items() if namespace in (None, key[0])]

    def gone(self, raw: dict[str, Any]) -> Key:
        meta = raw.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        with self._lock:
            if key in self._limits and self._limits[key].metadata.get("uid") == meta.get("uid"):
                self._drop(key)
                self._announced.pop(key, None)
        return key

    def in_namespace(self, namespace: str) -> list[ConcurrencyLimit]:
        """The limits applied in a namespace (applied())."""
        with self._lock:
            found = list(self._by_namespace.get(namespace, {}).values())
        return applied(found)

    def _drop(self, key: Key) -> None:
        """Call with the lock held."""
        self._limits.pop(key, None)
        limits = self._by_namespace.get(key[0], {})
        limits.pop(key[1], None)
        if not limits:
            self._by_namespace.pop(key[0], None)

    def get(self, key: Key) -> ConcurrencyLimit | None:
        with self._lock:
            return self._limits.get(key)

    def keys(self) -> list[Key]:
        with self._lock:
            return list(self._limits)

    def shown(self, served: Callable[[str], bool]) -> list[LimitShown]:
        """Each limit applied in a namespace the operator serves, as its status shows it, for the metrics (read at
        each scrape; nothing is worked out). Not the others: whoever may make limits anywhere would grow the
        series with ones nothing applies."""
        with self._lock:
            namespaces = list(self._by_namespace)
        limits = [limit for ns in namespaces if served(ns) for limit in self.in_namespace(ns)]
        return [LimitShown(limit.namespace, limit.name, limit.spec.max, limit.status.active, limit.status.queued)
                for limit in limits]


def applied(limits: list[ConcurrencyLimit]) -> list[ConcurrencyLimit]:
    """The first by name, up to MAX_LIMITS_PER_NAMESPACE of them and MAX_SELECTOR_TERMS_PER_NAMESPACE terms in
    all: the first one past either bound and every one after it are left out (not_applied says why)."""
    chosen: list[ConcurrencyLimit] = []
    terms = 0
    for limit in sorted(limits, key=lambda limit: limit.name)[:MAX_LIMITS_PER_NAMESPACE]:
        terms += selector_terms(limit.spec.selector)
        if terms > MAX_SELECTOR_TERMS_PER_NAMESPACE:
            break
        chosen.append(limit)
    return chosen


def not_applied(applied: list[ConcurrencyLimit]) -> str:
    """The status message of a limit applied() leaves out, given the ones it applies."""
    names = ", ".join(limit.name for limit in applied)
    if len(applied) >= MAX_LIMITS_PER_NAMESPACE:
        message = f"a namespace has at most {MAX_LIMITS_PER_NAMESPACE} ConcurrencyLimits, the first by name ({names})"
    else:
        terms = sum(selector_terms(limit.spec.selector) for limit in applied)
        message = (f"the ConcurrencyLimits of a namespace have at most {MAX_SELECTOR_TERMS_PER_NAMESPACE} selector "
                   f"terms in all (matchLabels entries, matchExpressions and their values), the first by name within "
                   f"it applied ({names}: {terms} terms)")
    return f"not applied: {message}"[:1024]


Content = frozenset[tuple[str, str]]  # an execution's labels by content: a status write brings them in a new dict


class _Memo:
    """A Counted for one pass down a namespace's line that works out each distinct (labels, child, labels_cut) once
    per stamp of the limits (their uids and generations): a selector's answer changes with neither the pass nor the
    clock. It starts from what the last pass asked, and keeps only what this pass asks, so it never outgrows the
    namespace's executions. Once done it is only read (by the next pass)."""

    def __init__(self, stamp: tuple[Any, ...], limits: list[ConcurrencyLimit], last: _Memo | None) -> None:
        self.stamp, self._evaluate = stamp, counted_by(limits)
        self._known = last.used if last is not None and last.stamp == stamp else {}
        self._known_labels = last.labels if last is not None else {}
        self._known_contents = last.contents if last is not None else {}
        self.used: dict[tuple[Content, bool, bool], frozenset[str]] = {}
        self.labels: dict[int, tuple[Mapping[str, str], Content]] = {}  # id -> (the labels, held so the id stays)
        # One object for equal contents: a key found is then the same object, not 32 labels compared.
        self.contents: dict[Content, Content] = {}

    def __call__(self, m: Member) -> frozenset[str]:
        key = (self._content(m.labels), m.child, m.labels_cut)
        names = self.used.get(key)
        if names is None:
            names = self._known.get(key)
            self.used[key] = names = names if names is not None else self._evaluate(m)
        return names

    def _content(self, labels: Mapping[str, str]) -> Content:
        """Once per labels object: the World keeps an unchanged execution's object, so its labels, pass to pass (and
        never changes one in place: queues.members keeps a Member by the same rule)."""
        held = self.labels.get(id(labels)) or self._known_labels.get(id(labels))
        if held is None or held[0] is not labels:
            content = frozenset(labels.items())
            held = (labels, self.contents.get(content, self._known_contents.get(content, content)))
        self.labels[id(labels)] = held
        self.contents[held[1]] = held[1]
        return held[1]


class Queues:
    """Reads the World and the LimitStore; answers in Members and names, never calls the API. One pass down a
    namespace's line serves every verdict until the namespace or its limits change (or a second passes: start
    times and backoffs come due), so a safety pass over a thousand queued executions costs one pass, not one
    each."""

    def __init__(self, world: World, limits: LimitStore) -> None:
        self.world, self.limits = world, limits
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[Any, datetime, dict[str, Member], Lineup]] = {}
        self._kept: dict[str, dict[str, tuple[dict[str, Any], bool, Member | None]]] = {}  # name -> (raw, pod, Member)
        self._memos: dict[str, _Memo] = {}  # the last pass's, for the next

    def members(self, namespace: str, now: datetime) -> list[Member]:
        raws, live, parents = self.world.namespace_view(namespace)
        with self._lock:
            kept = self._kept.get(namespace, {})
        keep: dict[str, tuple[dict[str, Any], bool, Member | None]] = {}
        found: list[Member] = []
        for raw in raws:
            name, has_pod = raw["metadata"].get("name", ""), raw["metadata"].get("name") in live
            held = kept.get(name)
            if held is not None and held[0] is raw and held[1] == has_pod:
                # The World replaces an object it stores anew: the same object, the same Member (as of now).
                one = held[2].at(now) if held[2] is not None else None
                keep[name] = held
            else:
                one = member(raw, has_pod, parents, now)
                if keepable(raw):
                    keep[name] = (raw, has_pod, one)
            if one is not None:
                found.append(one)
        with self._lock:
            self._kept[namespace] = keep
        return found

    def _lineup(self, namespace: str, limits: list[ConcurrencyLimit],
                now: datetime) -> tuple[dict[str, Member], Lineup]:
        stamp = (self.world.changes(namespace), _stamp(limits))
        with self._lock:
            cached = self._cached.get(namespace)
        if cached is not None and cached[0] == stamp and now < cached[1]:
            return cached[2], cached[3]
        members = self.members(namespace, now)
        memo = self._memo(namespace, limits)
        line = lineup(limits, members, memo)
        self._keep(namespace, memo)
        by_name = {m.name: m for m in members}
        with self._lock:
            self._cached[namespace] = (stamp, now + CACHED_FOR, by_name, line)
        return by_name, line

    def verdict(self, key: Key, now: datetime) -> Queued | None:
        """Whether the execution may start now (None) or waits for a slot; None where no limit is."""
        limits = self.limits.in_namespace(key[0])
        if not limits:
            return None
        by_name, line = self._lineup(key[0], limits, now)
        subject = by_name.get(key[1])
        if subject is None:
            return None
        if subject.ready and not subject.holds:
            return line.queued(subject.name)
        # Not ready in the cached pass (a start time or wake come due since): placed in line by its age.
        memo = self._memo(key[0], limits)
        found = verdict(subject, limits, by_name.values(), memo)
        self._keep(key[0], memo)
        return found

    def _memo(self, namespace: str, limits: list[ConcurrencyLimit]) -> _Memo:
        with self._lock:
            last = self._memos.get(namespace)
        return _Memo(_stamp(limits), limits, last)

    def _keep(self, namespace: str, memo: _Memo) -> None:
        with self._lock:
            last, self._memos[namespace] = self._memos.get(namespace), memo
        del last  # freed out of the lock: a thousand entries

    def to_wake(self, namespace: str, now: datetime) -> list[Key]:
        """The executions waiting in line that a limit now admits (a slot freed, a limit was raised)."""
        limits = self.limits.in_namespace(namespace)
        if not limits:
            return []
        return [(namespace, name) for name in self._lineup(namespace, limits, now)[1].admitted]

    def usage(self, limit: ConcurrencyLimit, applied: list[ConcurrencyLimit], now: datetime) -> tuple[int, int]:
        """(active, queued) for a limit's status, from the same pass down the line the verdicts use."""
        return self._lineup(limit.namespace, applied, now)[1].usage(limit)

    def limit_keys(self, namespace: str) -> list[Key]:
        return [(namespace, limit.name) for limit in self.limits.in_namespace(namespace)]


def _stamp(limits: list[ConcurrencyLimit]) -> tuple[tuple[Any, Any], ...]:
    """What the applied limits decide by: a new uid or generation is a new selector, max or includeChildren."""
    return tuple((lim.metadata.get("uid"), lim.metadata.get("generation")) for lim in limits)


class LimitReconciler:
    """Keeps each ConcurrencyLimit's status (active, queued) as the cluster has it; writes only a change."""

    def __init__(self, queues: Queues, api: KubeApi, clock) -> None:
        self.queues, self.api, self.clock = queues, api, clock

    def reconcile(self, key: Key) -> Result:
        limit = self.queues.limits.get(key)
        if limit is None:
            return Result()
        applied = self.queues.limits.in_namespace(key[0])
        if any(a.name == limit.name for a in applied):
            active, queued = self.queues.usage(limit, applied, self.clock())
            message = None
        else:
            active = queued = None
            message = not_applied(applied)
        shown, generation = limit.status, limit.metadata.get("generation")
        wanted = {"active": active, "queued": queued, "message": message, "observedGeneration": generation}
        if shown.model_dump(include=set(wanted)) != wanted:
            self.api.patch_limit_status(*key, wanted)
        return Result()
