"""How many executions each tree holds, from the watches: for the platform's cap on a tree's size.

Every child carries its root's UID (ROOT_LABEL, set by the operator when it makes the child; only the operator
may set it: flux_api.policy_owned), so a tree is counted without walking it, and a new root under an old
root's name starts a tree of its own. A child a parent has admitted but whose object has not been seen yet
(its status.children entry has neither a uid nor a refusal) counts already, so a create that failed and is
retried is not admitted twice. A parent's decision to admit children is claimed before it is written (claim,
release): two parents of one tree deciding at once cannot both take its last room. Not thread-safe: the World
holds its lock around every call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from flux_api.names import ROOT_LABEL, tree_root

from flux_operator.execution.children import awaiting_create

Key = tuple[str, str]  # (namespace, execution name)
Held = frozenset[tuple[str, str]]  # (root uid, child name): what one execution puts in a tree


def admitted_unseen(status: dict[str, Any]) -> list[str]:
    """The children a parent admitted whose objects are not made yet (children.awaiting_create)."""
    return [c["name"] for c in status.get("children") or []
            if isinstance(c, dict) and isinstance(c.get("name"), str) and awaiting_create(c)]


def _claim_key(key: Key) -> Key:
    return key[0], "\0" + key[1]  # no execution's name has a NUL: never one of the watched keys


def _newer(version: str | None, than: str | None) -> bool:
    """Whether `version` is a later resourceVersion than `than` (integers on etcd; anything else is news)."""
    try:
        return int(version) > int(than)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True


class Trees:
    def __init__(self) -> None:
        self._counts: dict[Key, Counter[str]] = {}  # (namespace, root uid) -> names in it, by how many hold them
        self._held: dict[Key, Held] = {}
        # Claims kept until a newer version of their execution is seen (release(linger=True)), by the version
        # the World held when each was claimed.
        self._lingering: set[Key] = set()
        self._claimed_on: dict[Key, str | None] = {}

    def seen(self, key: Key, labels: dict[str, str] | None, uid: str | None, admitted: Iterable[str],
             version: str | None = None) -> None:
        root = (labels or {}).get(ROOT_LABEL)
        held = {(root, key[1])} if root else set()
        tree = tree_root(uid, labels)
        if tree:
            held.update((tree, name) for name in admitted)
        self._replace(key, frozenset(held))
        if key in self._lingering and _newer(version, self._claimed_on.get(key)):
            self.release(key)

    def gone(self, key: Key) -> None:
        self._replace(key, frozenset())
        self.release(key)

    def claim(self, key: Key, root: str, names: Iterable[str], version: str | None = None) -> None:
        """Counts the children `key`'s decision admits in the tree until release(): its status write, once
        the World has it, counts them from then on (a name is counted once, however many hold it). `version`:
        the execution's resourceVersion the decision was made on."""
        self._lingering.discard(key)
        self._claimed_on[key] = version
        self._replace(_claim_key(key), frozenset((root, name) for name in names))

    def release(self, key: Key, linger: bool = False) -> None:
        """`linger`: the reconcile failed, and its status write may have landed all the same (an answer lost):
        keep counting the claim until a newer version of the execution is seen, whose status then says."""
        if linger:
            self._lingering.add(key)
            return
        self._lingering.discard(key)
        self._claimed_on.pop(key, None)
        self._replace(_claim_key(key), frozenset())

    def awaiting(self, key: Key) -> list[Key]:
        """The executions that admitted a child under this key's name and have not seen it made. A child is named
        `<parent>-<suffix>`, so each '-' in the name splits off one execution that may have."""
        namespace, name = key
        parents = [(namespace, name[:i]) for i, letter in enumerate(name) if letter == "-"]
        return [p for p in parents if any(admitted == name for _, admitted in self._held.get(p, ()))]

    def size(self, namespace: str, root: str, deciding: Key | None = None) -> int:
        """Executions in the tree of the root with this UID: the root, every child that names it, and every
        child admitted in it and not seen yet. `deciding`: less what only that execution's own lingering claim
        holds (its decision counts those names itself, as new ones)."""
        counts = self._counts.get((namespace, root), Counter())
        own = self._held.get(_claim_key(deciding), frozenset()) if deciding else frozenset()
        return 1 + len(counts) - sum(1 for tree, name in own if tree == root and counts[name] == 1)

    def _replace(self, key: Key, held: Held) -> None:
        old = self._held.get(key, frozenset())
        if old == held:
            return
        for root, name in old - held:
            counts = self._counts[(key[0], root)]
            counts[name] -= 1
            if counts[name] <= 0:
                del counts[name]
            if not counts:
                del self._counts[(key[0], root)]
        for root, name in held - old:
            self._counts.setdefault((key[0], root), Counter())[name] += 1
        if held:
            self._held[key] = held
        else:
            self._held.pop(key, None)
