"""Children: which Executions are an execution's children, making the ones its runner asks for, and the
mirror of their phases and results that the runner reads. Pure: observed state in, status and actions out.

A child is one only if the operator made it for this parent: its UID is recorded in the parent's
status.children (operator-owned), or it carries a creation token whose hash is recorded there
(ownership.py), and it is controlled by the parent. A label and an ownerReference prove nothing.

Every name the runner ever asked for keeps its entry, made or refused, so rewriting status.spawnRequests
cannot pass MAX_CHILDREN: a name past it is refused and counted (childrenRefused). A name that an
Execution this parent did not make already has is refused as NameTaken, so ctx.spawn raises instead of
waiting for a child that will never come. Results are mirrored within MIRRORED_RESULTS_BUDGET in all: once
mirrored a result stays; one that does not fit is left on its child (resultOmitted), and ctx.spawn says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flux_api import PARENT_LABEL, TERMINAL_PHASES, ChildRef, ChildStatus, Execution, Phase, nesting
from flux_api.events import EventReason
from flux_api.names import tree_depth
from flux_api.types import MAX_CHILDREN, MAX_DEPTH, MIRRORED_ERROR_CHARS, MIRRORED_RESULTS_BUDGET, ChildRefused

from flux_operator import payloads
from flux_operator.execution.actions import TOO_MANY_CHILDREN, Action, CreateChild, ObserveRefusal, PatchStatus, Plan
from flux_operator.ownership import Memory, controller_uid, proves, with_token



def child_key(name: str) -> str:
    return f"child/{name}"


def _entry(child: ChildStatus) -> dict[str, Any]:
    return child.model_dump(mode="json", exclude_none=True, exclude_defaults=True)


def owned_children(ex: Execution, candidates: list[Execution]) -> list[Execution]:
    """Of the Executions found under the names this execution asked for or recorded, the ones it owns."""
    uid = ex.metadata.get("uid", "")
    by_name = {c.name: c for c in candidates}
    owned = []
    for entry in ex.status.children:
        child = by_name.get(entry.name)
        if child is None or entry.reason:
            continue
        meta = child.metadata
        if entry.uid:
            mine = meta.get("uid") == entry.uid and controller_uid(meta) == uid
        elif entry.tokens:
            mine = proves(meta, uid, entry.tokens)
        else:  # recorded by an operator before creation tokens: recognised as it did
            mine = controller_uid(meta) == uid and (meta.get("labels") or {}).get(PARENT_LABEL) == ex.name
        if mine:
            owned.append(child)
    return sorted(owned, key=lambda c: c.name)


def awaiting_create(entry: dict[str, Any]) -> bool:
    """Whether a status.children entry is a child admitted (it has creation tokens) that is neither made (no uid)
    nor refused; an older operator's record without tokens is not one."""
    return bool(entry.get("tokens")) and not entry.get("uid") and not entry.get("reason")


def newly_admitted(ex: Execution, actions: list[Action]) -> list[str]:
    """The children a decision admits into the tree: entries its status write adds that are neither made nor
    refused (what the tree's count must hold from before that write until the World has it)."""
    before = {c.name for c in ex.status.children}
    patch = next((a.patch for a in actions if isinstance(a, PatchStatus)), {})
    return [c["name"] for c in patch.get("children") or [] if c["name"] not in before and awaiting_create(c)]


@dataclass(frozen=True)
class TreeRoom:
    """The tree an execution is in: how many executions it holds now (the World's count, children admitted and
    not yet seen included), and the most it may hold (the platform's maxExecutionsPerTree)."""

    size: int
    most: int

    @property
    def left(self) -> int:
        return max(self.most - self.size, 0)


def spawn(ex: Execution, candidates: list[Execution], owned: list[Execution], memory: Memory, plan: Plan,
          now: datetime, tree: TreeRoom | None = None) -> None:
    """Records and makes the children asked for, refuses what may not be, and mirrors the owned ones. `tree`:
    a name new to this pass is refused once the tree has no room left (None: no cap)."""
    entries = {e.name: _entry(e) for e in ex.status.children}
    by_name, mine = {c.name: c for c in candidates}, {c.name: c for c in owned}
    too_deep = tree_depth(ex.metadata.get("labels"), MAX_DEPTH) + 1 > MAX_DEPTH
    over_cap, new = 0, []  # `new`: the names this pass admits; those refused after all take no room
    for request in ex.status.spawnRequests:
        admitted = sum(1 for n in new if not entries[n].get("reason"))
        name = request.name
        entry = entries.get(name)
        if entry is None:
            if len(entries) >= MAX_CHILDREN:
                over_cap += 1
                continue
            if too_deep:
                _refuse(entries, plan, name, ChildRefused.TOO_DEEP,
                        f"refused: a tree of executions is at most {MAX_DEPTH} levels deep", EventReason.SPAWN_REFUSED)
                continue
            if tree is not None and admitted >= tree.left:
                _refuse(entries, plan, name, ChildRefused.TREE_FULL,
                        f"refused: its tree already holds {tree.size + admitted} executions; the platform allows "
                        f"at most {tree.most} a tree (maxExecutionsPerTree)", EventReason.SPAWN_REFUSED)
                continue
            if (nested := payloads.value_problem(request.input, "its input")) is not None:
                _refuse(entries, plan, name, ChildRefused.REFUSED, f"refused: {nested}", EventReason.SPAWN_REFUSED)
                continue
            new.append(name)
            entry = entries[name] = {"name": name, "phase": Phase.PENDING}
        elif not awaiting_create(entry):
            continue  # made, refused, or an older operator's record
        if name in mine:
            continue  # made: the mirror records it
        found = by_name.get(name)
        if found is not None:
            if found.metadata.get("deletionTimestamp"):  # a predecessor on its way out: wait, the token on record
                _record_token(entries[name], memory)  # (else a later pass takes the entry for an older operator's)
            else:
                _refuse(entries, plan, name, ChildRefused.NAME_TAKEN,
                        f"the name {name} is taken by an Execution this one did not spawn: pass another name= to "
                        "ctx.spawn", EventReason.SPAWN_CONFLICT)
            continue
        _create(entries[name], request, memory, plan, now, entries)
    _mirror(entries, mine)
    children = [entries[n] for n in sorted(entries)]
    if children != sorted((_entry(e) for e in ex.status.children), key=lambda e: e["name"]):
        plan.status.set(children=children)
    refused_before = ex.status.childrenRefused or 0
    if over_cap != refused_before:
        plan.status.set(childrenRefused=over_cap)
        if over_cap > refused_before:
            plan.actions.append(ObserveRefusal(TOO_MANY_CHILDREN, over_cap - refused_before))
    if over_cap:
        plan.event(EventReason.SPAWN_REFUSED, f"{over_cap} spawn request(s) refused: an execution may have at most "
                   f"{MAX_CHILDREN} children, and this one has {MAX_CHILDREN}", "Warning", key="limit")


def _create(entry: dict[str, Any], request, memory: Memory, plan: Plan, now: datetime,
            entries: dict[str, dict[str, Any]]) -> None:
    """Nothing exists under the name yet: record the creation token's hash (this status write comes first)
    and create the child carrying the token, unless the API server refused it before."""
    name, key = request.name, child_key(request.name)
    refused = memory.refusals.get(key)
    if refused is not None and refused.permanent:
        _refuse(entries, plan, name, ChildRefused.REFUSED,
                f"the API server refused child {name}: {refused.message}"[:8192], EventReason.SPAWN_REFUSED)
        return
    token = _record_token(entry, memory)
    if refused is not None and now < refused.retry_at:
        return
    plan.actions.append(CreateChild(name, request.workflow, request.input, token))


def _record_token(entry: dict[str, Any], memory: Memory) -> str:
    """The child's creation token, its hash recorded in the entry: an entry with one is a child this operator
    admitted and is to make (awaiting_create), whatever keeps its create waiting."""
    token = memory.token(child_key(entry["name"]))
    entry["tokens"] = with_token(entry.get("tokens", []), token)
    return token


def _refuse(entries: dict[str, dict[str, Any]], plan: Plan, name: str, reason: ChildRefused, error: str,
            event: EventReason) -> None:
    entries[name] = {"name": name, "phase": Phase.FAILED, "reason": reason, "error": error}
    plan.event(event, f"child {name}: {error}", "Warning", key=name)
    plan.actions.append(ObserveRefusal(str(reason)))


def _size(value: Any) -> int:
    """Bytes of JSON (a size stub's recorded size); anything that does not encode counts as too large."""
    if payloads.is_size_stub(value):
        return int(nesting.elided(value).get("bytes") or 0)
    try:
        return len(json.dumps(value, separators=(",", ":")))
    except (ValueError, TypeError, RecursionError):
        return MIRRORED_RESULTS_BUDGET + 1


def _mirror(entries: dict[str, dict[str, Any]], mine: dict[str, Execution]) -> None:
    """Phases, errors and results of the owned children. A mirrored result stays (a restarted runner reads
    the same); a new one is mirrored only if it fits what is left of the budget."""
    used = sum(_size(e["result"]) for e in entries.values() if "result" in e)
    for name in sorted(entries):
        child, entry = mine.get(name), entries[name]
        if child is None:
            continue
        entry.pop("tokens", None)
        entry.update(uid=child.metadata.get("uid"), phase=child.phase)
        result = child.status.checkpoint.result if child.status.checkpoint else None
        if (unusable := payloads.value_problem(result, "its result")) is not None and "result" not in entry:
            entry.update(phase=Phase.FAILED, error=unusable)  # the parent's workflow must not get a stub
            continue
        if child.phase in TERMINAL_PHASES and result is not None and "result" not in entry \
                and "resultOmitted" not in entry:
            size = _size(result)
            if used + size <= MIRRORED_RESULTS_BUDGET:
                entry["result"], used = result, used + size
            else:
                entry["resultOmitted"] = size
        if child.phase in (Phase.FAILED, Phase.CANCELLED) and child.status.message:
            entry["error"] = child.status.message[:MIRRORED_ERROR_CHARS]


def children_view(children: list[Execution]) -> dict[str, Any]:
    """status.cancellation's list of children (names and phases), bounded, with a count of the rest (None, so
    an earlier count is removed, when none is left out): an update of a Cancellation."""
    ordered = sorted(children, key=lambda c: c.name)
    return {"children": [ChildRef(name=c.name, phase=c.phase) for c in ordered[:MAX_CHILDREN]],
            "childrenOmitted": len(ordered) - MAX_CHILDREN if len(ordered) > MAX_CHILDREN else None}
