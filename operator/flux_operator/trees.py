"""How many executions each tree holds, from the watches: for the platform's cap on a tree's size.

Every child carries its root's name (ROOT_LABEL, set by the operator when it makes the child; only the operator
may set it: flux_api.policy_owned), so a tree is counted without walking it. Not thread-safe: the World holds
its lock around every call.
"""

from __future__ import annotations

from flux_api.names import ROOT_LABEL

Key = tuple[str, str]  # (namespace, execution name)


class Trees:
    def __init__(self) -> None:
        self._members: dict[Key, set[str]] = {}  # (namespace, root) -> names of the children below it
        self._root_of: dict[Key, str] = {}

    def seen(self, key: Key, labels: dict[str, str] | None) -> None:
        root = (labels or {}).get(ROOT_LABEL)
        held = self._root_of.get(key)
        if held == root:
            return
        if held is not None:
            self.gone(key)
        if root:
            self._members.setdefault((key[0], root), set()).add(key[1])
            self._root_of[key] = root

    def gone(self, key: Key) -> None:
        root = self._root_of.pop(key, None)
        if root is None:
            return
        members = self._members.get((key[0], root))
        if members is not None:
            members.discard(key[1])
            if not members:
                del self._members[(key[0], root)]

    def size(self, namespace: str, root: str) -> int:
        """Executions in the tree of this root: the root and every child that names it."""
        return 1 + len(self._members.get((namespace, root), ()))
