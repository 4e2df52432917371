"""What the watches delivered, kept small: the operator decides from this, never from fresh reads.

Each Execution is kept as a trimmed copy (no input, no step records or data, no managed fields:
decide() needs none of them; trimmed.py), with the one thing read off
its managed fields beside it (when a cancel reached the API: Snapshot.cancel_requested_at); each runner
pod as a PodView, and children by their parent. Writes the operator makes feed their answers back in,
so its own next decision never sees its past.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic
from flux_api import EXECUTION_LABEL, GROUP, PARENT_LABEL, PLURAL, TERMINAL_PHASES, Execution
from flux_api.names import SCHEDULE_LABEL, tree_root

from flux_operator.eventnames import event_name
from flux_operator.execution.actions import PodView
from flux_operator.execution.children import owned_children
from flux_operator.podview import pod_view
from flux_operator.trees import Trees, admitted_unseen
from flux_operator.trimmed import cancel_asked_at, decided_on, is_stale, trim_execution

Key = tuple[str, str]  # (namespace, execution name)

FAMILY_LIMIT = 2_000  # descendants a cascade reaches in one pass; each cancelled parent reaches further itself


@dataclass
class Snapshot:
    execution: Execution
    raw: dict[str, Any]  # the trimmed object, for Events' involvedObject
    pod: PodView | None
    children: list[Execution]
    cancel_requested_at: datetime | None = None  # from managedFields, which the trimmed copy drops
    tree_size: int = 1  # executions in its tree, the root's and every child's below it (trees.py)

    def event_name(self, reason: str, key: str = "") -> str:
        return event_name(self.raw["metadata"], reason, key)


class World:
    """Thread-safe: kopf's watch handlers write, the workers read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executions: dict[Key, dict[str, Any]] = {}
        self._pods: dict[Key, dict[str, PodView]] = {}  # by execution, then pod name
        self._cancel_asked: dict[Key, datetime] = {}  # when a cancel reached the API, for the latency metrics
        self._handed_on: dict[Key, dict[str, Any]] = {}  # what the last reconcile the watch asked for was given
        self._changes: dict[str, int] = {}  # per namespace: bumped by every change a concurrency limit may read
        # Names by namespace: what one namespace asks for costs its own size, not the cluster's.
        self._names: dict[str, set[str]] = {}
        self._trees = Trees()
        self._refuted: Callable[[str, str, dict[str, Any]], bool] = lambda group, plural, raw: False

    def refute_with(self, refuted: Callable[[str, str, dict[str, Any]], bool]) -> None:
        """`refuted(group, plural, raw)`: a recent listing proves that copy gone (listings.refuted)."""
        self._refuted = refuted

    # --- fed by the watches and by the operator's own writes ----------------------------------

    def execution_seen(self, raw: dict[str, Any]) -> list[Key]:
        """Stores the object; returns the keys to reconcile (it, and its parent if it has one)."""
        if self._refuted(GROUP, PLURAL, raw):
            return []  # a late copy (a write's answer, a queued event) of an execution since deleted
        trimmed = trim_execution(raw)
        meta = trimmed["metadata"]
        key = (meta.get("namespace", ""), meta.get("name", ""))
        parent = (meta.get("labels") or {}).get(PARENT_LABEL)
        with self._lock:
            old = self._executions.get(key)
            old_meta = old["metadata"] if old is not None else None
            if old_meta is not None and is_stale(meta.get("uid"), meta.get("resourceVersion"),
                                               old_meta.get("uid"), old_meta.get("resourceVersion")):
                return []  # a late event behind what our own write already told us
            self._executions[key] = trimmed
            self._names.setdefault(key[0], set()).add(key[1])
            self._trees.seen(key, meta.get("labels"), meta.get("uid"), admitted_unseen(trimmed.get("status") or {}),
                             meta.get("resourceVersion"))
            self._bump(key[0])
            if (asked := cancel_asked_at(raw)) is not None:
                self._cancel_asked[key] = asked
            else:
                self._cancel_asked.pop(key, None)
        return [key, (key[0], parent)] if parent else [key]

    def progress_only(self, raw: dict[str, Any]) -> bool:
        """Whether a watch event brings nothing a decision reads since the last event that asked for a reconcile
        (a runner's checkpoint that only progressed): then only its resourceVersion is taken, and the event
        goes no further (boundary.py hands it to kopf as a bookmark). False sends it the usual way."""
        meta = raw.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        with self._lock:
            held = self._executions.get(key)
        if held is None or held["metadata"].get("uid") != meta.get("uid") or \
                is_stale(meta.get("uid"), meta.get("resourceVersion"), meta.get("uid"),
                       held["metadata"].get("resourceVersion")):
            return False
        trimmed = trim_execution(raw)
        # Compared with what the last event handed on, not with the World's copy: the echo of the operator's
        # own write matches its copy but must still go on (it wakes the parent, as any child's change does).
        if decided_on(trimmed) != self._handed_on.get(key) or \
                cancel_asked_at(raw) != self._cancel_asked.get(key):
            return False
        with self._lock:
            if self._executions.get(key) is not held:
                return False  # replaced meanwhile: let the usual path sort it out
            self._executions[key] = trimmed
        return True

    def execution_changed(self, raw: dict[str, Any]) -> list[Key]:
        """A watch event: stored as execution_seen does; the keys to reconcile only when something a decision
        reads has changed since the last event that asked for one. A runner's checkpoint that only progressed
        (its steps, its data) asks for nothing (and usually never gets here: progress_only)."""
        meta = raw.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        with self._lock:
            held = (self._executions.get(key) or {}).get("metadata") or {}
        if (held.get("uid"), held.get("resourceVersion")) == (meta.get("uid"), meta.get("resourceVersion")):
            parent = (meta.get("labels") or {}).get(PARENT_LABEL)  # the index handler stored this very version
            keys = [key, (key[0], parent)] if parent else [key]
        else:
            keys = self.execution_seen(raw)
        if not keys:
            return []
        with self._lock:
            current = self._executions.get(keys[0])
            if current is None:
                return keys
            reads = decided_on(current)
            if self._handed_on.get(keys[0]) == reads:
                return []
            self._handed_on[keys[0]] = reads
        return keys

    def execution_gone(self, raw: dict[str, Any]) -> list[Key]:
        meta = raw.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        parent = (meta.get("labels") or {}).get(PARENT_LABEL)
        with self._lock:
            current = self._executions.get(key)
            if current is not None and current["metadata"].get("uid") != meta.get("uid"):
                return []  # a successor of the same name already took its place
            self._executions.pop(key, None)
            waiting = self._trees.awaiting(key)  # its name is free now: a parent may make its child under it
            self._trees.gone(key)
            if (names := self._names.get(key[0])) is not None:
                names.discard(key[1])
                if not names:
                    del self._names[key[0]]
            self._bump(key[0])
            self._handed_on.pop(key, None)
            self._cancel_asked.pop(key, None)
        return [*([(key[0], parent)] if parent else []), *waiting]

    def pod_seen(self, raw: dict[str, Any], held_only: bool = False) -> Key | None:
        """Stores the pod unless the World holds a newer version of it. `held_only`: only a pod it still holds
        under that uid (a delete's late answer must not bring back a pod whose DELETED event came first)."""
        key = _pod_key(raw)
        if key is not None and not self._refuted("", "pods", raw):
            view = pod_view(raw)
            with self._lock:
                old = self._pods.get(key, {}).get(view.name)
                if held_only and (old is None or old.uid != view.uid):
                    return None
                if old is not None and is_stale(view.uid, view.resource_version, old.uid, old.resource_version):
                    return None  # e.g. a create's answer arriving after the watch reported the pod Running
                self._pods.setdefault(key, {})[view.name] = view
                self._bump(key[0])
        return key

    def pod_gone(self, raw: dict[str, Any]) -> Key | None:
        key, meta = _pod_key(raw), raw.get("metadata") or {}
        if key is not None:
            with self._lock:
                pods = self._pods.get(key, {})
                held = pods.get(meta.get("name", ""))
                if held is not None and meta.get("uid") in (None, held.uid):  # not a successor of the same name
                    del pods[held.name]
                self._bump(key[0])
                if not pods:
                    self._pods.pop(key, None)
        return key

    def executions_held(self, namespace: str | None) -> list[dict[str, Any]]:
        """The executions held in `namespace` (all for None), as stored: listings.py compares them with a listing."""
        with self._lock:
            return [dict(raw) for key, raw in self._executions.items() if namespace in (None, key[0])]

    def pods_held(self, namespace: str | None) -> list[dict[str, Any]]:
        """The runner pods held in `namespace` (all for None), as much of each as its DELETED event needs."""
        with self._lock:
            return [{"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": view.name, "namespace": key[0], "uid": view.uid, "resourceVersion": view.resource_version,
                "labels": {EXECUTION_LABEL: key[1]}}}
                for key, pods in self._pods.items() if namespace in (None, key[0]) for view in pods.values()]

    # --- read by the workers -----------------------------------------------------------------

    def snapshot(self, key: Key) -> Snapshot | None:
        """The execution, its runner pod (matched by owner UID), and the executions that may be its children:
        those under the names it asked for or recorded (a label claiming it as parent proves nothing and is not
        looked at). Which of them the operator really made for it, decide() works out
        (execution.children.owned_children); None if unknown. Parsed outside the lock."""
        with self._lock:
            raw = self._executions.get(key)
            if raw is None:
                return None
            uid = raw["metadata"].get("uid")
            pods = [p for p in self._pods.get(key, {}).values() if p.owner_uid == uid]
            current = (raw.get("status") or {}).get("podName")
            if current:  # after a retry the finished pod of an earlier run is not the runner
                pods = [p for p in pods if p.name == current]
            candidates = self._raws(key[0], self._candidates(key))
            asked = self._cancel_asked.get(key)
            tree = self._trees.size(key[0], tree_root(uid, raw["metadata"].get("labels")), key)
        execution = _parse(raw)
        if execution is None:
            return None
        children = [c for c in map(_parse, candidates.values()) if c is not None]
        return Snapshot(execution, raw, pods[0] if pods else None, children, asked, tree)

    @contextmanager
    def tree_claim(self, key: Key, counted: int, names: list[str]) -> Iterator[bool]:
        """Holds `names` in the tree of `key` while one reconcile writes and makes them, if the tree still holds the
        `counted` executions its decision saw (else False: decide again), so two parents never take one room."""
        granted = True
        if names:
            with self._lock:
                raw = self._executions.get(key)
                root = tree_root(raw["metadata"].get("uid"), raw["metadata"].get("labels")) if raw else ""
                granted = bool(root) and self._trees.size(key[0], root, key) == counted
                if granted:
                    self._trees.claim(key, root, names, raw["metadata"].get("resourceVersion"))
        failed = True
        try:
            yield granted
            failed = False
        finally:
            if names and granted:
                with self._lock:
                    self._trees.release(key, linger=failed)

    def family(self, key: Key, limit: int = FAMILY_LIMIT) -> dict[str, list[Execution]]:
        """For a cancel that cascades in one pass: each descendant's name -> the executions found as its
        children (as `snapshot` finds them). Walks only where cancel.cascade goes: into the live children each
        parent owns. At most `limit` descendants, each object parsed once and outside the lock: a tenant's
        tree, or names its runners wrote, must not hold up other namespaces' watch events and workers."""
        namespace, root = key
        parsed: dict[str, Execution | None] = {}
        family: dict[str, list[Execution]] = {}
        frontier = [root]
        while frontier:
            with self._lock:
                named = {name: sorted(self._candidates((namespace, name))) for name in frontier}
                wanted = {n for names in named.values() for n in names} | set(frontier)
                fresh = self._raws(namespace, wanted - parsed.keys())
            parsed.update((name, _parse(raw)) for name, raw in fresh.items())
            below: list[str] = []
            for name in frontier:
                parent = parsed.get(name)
                if parent is None:
                    continue
                kids = [k for k in (parsed.get(n) for n in named[name]) if k is not None]
                if name != root:
                    family[name] = kids
                    if len(family) >= limit:
                        return family
                below += [k.name for k in owned_children(parent, kids)
                          if k.phase not in TERMINAL_PHASES and k.name not in family and k.name != root]
            frontier = list(dict.fromkeys(below))
        return family

    def _raws(self, namespace: str, names: set[str]) -> dict[str, dict[str, Any]]:
        """The stored objects of these names that the World holds; call with the lock held. They are replaced,
        never changed in place, so they may be parsed after the lock is let go."""
        return {n: self._executions[(namespace, n)] for n in sorted(names) if (namespace, n) in self._executions}

    def _candidates(self, key: Key) -> set[str]:
        raw = self._executions.get(key)
        return _named_children(raw.get("status") or {}) if raw is not None else set()

    def unparseable(self, key: Key) -> str | None:
        """Why the stored object does not parse, or None."""
        with self._lock:
            raw = self._executions.get(key)
        if raw is None:
            return None
        try:
            Execution.model_validate(raw)
        except pydantic.ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            return f"{where}: {first['msg']}" + (f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else "")
        return None

    def labelled_runs(self, schedule: Key) -> tuple[list[Execution], set[str]]:
        """The executions labelled as a Schedule's runs, whoever made them (the Schedule's decision tells its
        own from forged ones), and the UIDs of all of them, parsed or not."""
        with self._lock:
            keys = [k for k in self._keys_in(schedule[0])
                    if (self._executions[k]["metadata"].get("labels") or {}).get(SCHEDULE_LABEL) == schedule[1]]
            raws = [self._executions[k] for k in keys]
        runs = [r for r in map(_parse, raws) if r is not None]  # outside the lock: forged runs are many
        return runs, {raw["metadata"].get("uid", "") for raw in raws}

    def _bump(self, namespace: str) -> None:
        """Call with the lock held: something a concurrency limit reads changed in `namespace`."""
        self._changes[namespace] = self._changes.get(namespace, 0) + 1

    def changes(self, namespace: str) -> int:
        """A count that moves whenever an execution or runner pod of the namespace does (queues.py caches by it)."""
        return self._changes.get(namespace, 0)

    def namespace_view(self, namespace: str) -> tuple[list[dict[str, Any]], set[str], dict[str, set[str]]]:
        """For queues.py: the namespace's executions, the names of those with a live pod, UID -> children named."""
        with self._lock:
            keys = self._keys_in(namespace)
            raws = [self._executions[k] for k in keys]
            live = {k[1] for k in keys if any(p.phase not in ("Succeeded", "Failed")
                                              for p in self._pods.get(k, {}).values())}
        parents = {raw["metadata"].get("uid", ""): named for raw in raws
                   if (named := _named_children(raw.get("status") or {}))}
        return raws, live, parents

    def names_in(self, namespace: str) -> Container[str]:
        """The names of the executions in a namespace, looked up live (`name in world.names_in(ns)`)."""
        return _Names(self, namespace)

    def has(self, key: Key) -> bool:
        with self._lock:
            return key in self._executions

    def phase_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for raw in self._executions.values():
                phase = (raw.get("status") or {}).get("phase") or "Pending"
                counts[phase] = counts.get(phase, 0) + 1
        return counts

    def watched(self) -> tuple[list[tuple[Key, dict[str, Any]]], dict[Key, datetime]]:
        """Every watched execution (as stored: not to be changed) and when each cancel was seen reaching the API:
        what the oldest-cancel and oldest-pending metrics are worked out from (metric_values.py)."""
        with self._lock:
            return list(self._executions.items()), dict(self._cancel_asked)

    def uid_of(self, key: Key) -> str | None:
        with self._lock:
            return (self._executions.get(key) or {}).get("metadata", {}).get("uid")

    def keys(self) -> list[Key]:
        with self._lock:
            return list(self._executions)

    def keys_in(self, namespace: str) -> list[Key]:
        with self._lock:
            return self._keys_in(namespace)

    def _keys_in(self, namespace: str) -> list[Key]:
        """Call with the lock held."""
        return [(namespace, name) for name in self._names.get(namespace, ())]

    def __len__(self) -> int:
        with self._lock:
            return len(self._executions)


def _parse(raw: dict[str, Any]) -> Execution | None:
    # Parsed on each use (about 30 us), not kept: a parsed model costs about 4.5 KB, which at
    # 5,000 executions is twice what the trimmed objects themselves take.
    try:
        return Execution.model_validate(raw)
    except pydantic.ValidationError:
        return None


def _pod_key(raw: dict[str, Any]) -> Key | None:
    meta = raw.get("metadata") or {}
    execution = (meta.get("labels") or {}).get(EXECUTION_LABEL)
    return (meta.get("namespace", ""), execution) if execution else None


def _named_children(status: dict[str, Any]) -> set[str]:
    """The names an execution asked for as children (spawnRequests) or holds records of (children)."""
    return {item["name"] for field in ("children", "spawnRequests") for item in status.get(field) or []
            if isinstance(item, dict) and isinstance(item.get("name"), str)}


class _Names:
    def __init__(self, world: World, namespace: str) -> None:
        self.world, self.namespace = world, namespace

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.world.has((self.namespace, name))

