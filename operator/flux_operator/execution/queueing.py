"""Concurrency limits: which executions may start now, and how full each limit is. Pure: the namespace's
watched executions and limits and a clock in, verdicts out.

A limit's slots are held by the executions it counts that have a runner: Running (a lost pod is made again),
or Pending, Cancelling or Suspending with a live pod. Suspended, Waiting and finished ones hold none, nor a
Cancelling one whose runner is gone and which only waits for its children or its final write. The rest that
could start now line up in creation order (then name); going down the line, each one starts when every limit
that counts it still has a slot left (lineup). Nothing is remembered: after a restart or a failover the same
cluster gives the same answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pydantic
from flux_api import PARENT_LABEL, TERMINAL_PHASES, Execution, Phase
from flux_api.conditions import WAITING_PREFIX
from flux_api.limits import ConcurrencyLimit, selects
from flux_api.names import CANCEL_ANNOTATION
from flux_api.timefmt import parse_time

from flux_operator.execution import timing, waiting
from flux_operator.payloads import LABELS_CUT

# Stopping: a slot held only while the runner is still there (its cleanup uses what the slot stands for).
STOPPING_PHASES = frozenset({Phase.CANCELLING, Phase.SUSPENDING})
# An execution that reaches one of these has left its slot (Waiting once its pod is gone): the next in line may
# start.
SLOT_FREED = frozenset({*TERMINAL_PHASES, Phase.SUSPENDED, Phase.WAITING})
_EPOCH = datetime.fromtimestamp(0).astimezone()


@dataclass(frozen=True)
class Member:
    """What a limit needs to know of one execution."""

    name: str
    labels: Mapping[str, str]
    created: datetime
    child: bool  # made by the operator for a parent it can see (not merely labelled as one)
    labels_cut: bool  # too many labels to keep (payloads.LABELS_CUT): every limit counts it
    holds: bool  # has a runner, so holds a slot
    ready: bool  # holds none, but would start now were there room
    ready_at: datetime | None = None  # from when it would (None: not while the object stays as it is)

    @property
    def line(self) -> tuple[datetime, str]:
        return self.created, self.name

    def at(self, now: datetime) -> Member:
        """The same execution as the clock now has it: a start time, a backoff or a wait may have come due."""
        ready = not self.holds and self.ready_at is not None and self.ready_at <= now
        return self if ready == self.ready else replace(self, ready=ready)


@dataclass(frozen=True)
class Queued:
    """The first full limit an execution waits on, and how full it is."""

    limit: str
    active: int
    max: int

    @property
    def message(self) -> str:
        return f"{WAITING_PREFIX}{self.active} of {self.max} running under limit {self.limit}"


# The names of the limits that count a member. Injected so that the shell (queues.py) may work it out once per
# distinct labels and set of limits rather than once per pass: each answer weighs every term of every selector.
Counted = Callable[[Member], frozenset[str]]


def counts(limit: ConcurrencyLimit, member: Member) -> bool:
    return (limit.spec.includeChildren or not member.child) and (member.labels_cut or
                                                                   selects(limit.spec.selector, member.labels))


def counted_by(limits: Iterable[ConcurrencyLimit]) -> Counted:
    """Counted worked out afresh on every call: each of `limits`' selectors against the member's labels."""
    limits = list(limits)
    return lambda m: frozenset(lim.name for lim in limits if counts(lim, m))


@dataclass(frozen=True)
class Lineup:
    """One pass down a namespace's line (lineup()): who is admitted, who is held back and by which limit."""

    admitted: list[str]  # in line order: the ones to wake when a slot frees (none that no limit counts)
    held_back: dict[str, ConcurrencyLimit]  # name -> the first full limit, by name, of those counting it
    holding: dict[str, int]  # limit name -> executions holding one of its slots
    counted: dict[str, frozenset[str]]  # name of each one in line -> the limits that count it

    def queued(self, name: str) -> Queued | None:
        full = self.held_back.get(name)
        if full is None:
            return None
        return Queued(full.name, max(self.holding[full.name], full.spec.max), full.spec.max)

    def usage(self, limit: ConcurrencyLimit) -> tuple[int, int]:
        """(active, queued) as the limit's status shows them: those holding one of its slots, and those it
        counts that are held back (by it or by another of their limits). Every one in line that a limit counts
        is either admitted or held back, so the held back are all that wait."""
        return self.holding[limit.name], sum(1 for n in self.held_back if limit.name in self.counted[n])


def lineup(limits: Iterable[ConcurrencyLimit], members: Iterable[Member], counted: Counted | None = None) -> Lineup:
    """Goes down the line once, in creation order: an execution is admitted when every limit counting it has a
    free slot left, and takes one in each. One held back by a full limit blocks no one behind it in another
    limit (no head-of-line blocking), and no one behind it in its own (that one is full for them too).
    `counted`: which limits count a member (counted_by(limits) unless given), asked once per member."""
    limits, members = sorted(limits, key=lambda lim: lim.name), list(members)
    counted = counted if counted is not None else counted_by(limits)
    held = Counter(name for m in members if m.holds for name in counted(m))
    holding = {lim.name: held[lim.name] for lim in limits}
    free = {lim.name: lim.spec.max - holding[lim.name] for lim in limits}
    admitted: list[str] = []
    held_back: dict[str, ConcurrencyLimit] = {}
    line = sorted((m for m in members if m.ready and not m.holds), key=lambda m: m.line)
    sets = {m.name: counted(m) for m in line}
    limits_of: dict[frozenset[str], list[ConcurrencyLimit]] = {}  # a few distinct sets, each listed once
    for m in line:
        mine = limits_of.get(sets[m.name])
        if mine is None:
            mine = limits_of[sets[m.name]] = [lim for lim in limits if lim.name in sets[m.name]]
        full = next((lim for lim in mine if free[lim.name] <= 0), None)
        if full is not None:
            held_back[m.name] = full
        elif mine:
            admitted.append(m.name)
            for lim in mine:
                free[lim.name] -= 1
    return Lineup(admitted, held_back, holding, sets)


def verdict(subject: Member, limits: Iterable[ConcurrencyLimit], members: Iterable[Member],
            counted: Counted | None = None) -> Queued | None:
    """None when `subject` (about to start: it is put in line as ready) may start now; else the first full
    limit, by name, among those that count it."""
    everyone = [*(m for m in members if m.name != subject.name), replace(subject, ready=True, holds=False)]
    return lineup(limits, everyone, counted).queued(subject.name)


def member(raw: Mapping[str, Any], has_pod: bool, parents: Mapping[str, set[str]], now: datetime) -> Member | None:
    """A watched (trimmed) execution as a limit sees it; None when finished. `parents`: the UID of each
    execution of the namespace -> the names it asked for or recorded as children."""
    meta, spec, status = raw.get("metadata") or {}, raw.get("spec") or {}, raw.get("status") or {}
    phase = status.get("phase") or Phase.PENDING
    if phase in TERMINAL_PHASES:
        return None
    name = meta.get("name", "")
    labels = meta.get("labels") or {}
    # Waiting holds too while its pod is there: a workflow may write a Waiting checkpoint and run on through the
    # tenant's grace period (up to an hour), and the limit counts runners, not phases.
    holds = phase == Phase.RUNNING or (phase in (Phase.PENDING, Phase.WAITING, *STOPPING_PHASES) and has_pod)
    return Member(name=name, labels=labels, created=parse_time(meta.get("creationTimestamp")) or _EPOCH,
                  child=_child(meta, labels, parents), labels_cut=meta.get(LABELS_CUT) is True, holds=holds,
                  ready=False, ready_at=None if holds else _ready_at(phase, raw, has_pod)).at(now)


def could_start_now(ex: Execution, cancelling: bool, now: datetime) -> bool:
    """Whether a decision now might create a runner (machine.py), so that a limit's verdict, a pass down the
    namespace's line, is worked out only then: a thousand suspended or scheduled executions cost a line each,
    not a pass each. Errs towards True: anything it rules out the machine never starts now."""
    if cancelling or ex.spec.suspend:
        return False
    if ex.phase == Phase.WAITING:
        return waiting.due(ex, None, now)
    return timing.waiting_until(ex, now) is None


def keepable(raw: Mapping[str, Any]) -> bool:
    """Whether member() of this very object (with the same pod) depends on nothing else but the clock (which
    Member.at applies): no parent label to check against the other executions. Such a Member may be kept until
    the object changes (queues.py), which spares a thousand queued executions a parse on every pass."""
    return not ((raw.get("metadata") or {}).get("labels") or {}).get(PARENT_LABEL)


def _child(meta: Mapping[str, Any], labels: Mapping[str, str], parents: Mapping[str, set[str]]) -> bool:
    """Labelled with a parent that owns it and asked for it by name: a tenant's label alone is not enough."""
    if not labels.get(PARENT_LABEL):
        return False
    return any(ref.get("kind") == "Execution" and meta.get("name") in parents.get(ref.get("uid", ""), ())
               for ref in meta.get("ownerReferences") or [] if isinstance(ref, dict))


def _ready_at(phase: str, raw: Mapping[str, Any], has_pod: bool) -> datetime | None:
    """From when nothing but a limit holds it back, as the machine decides it (timing.py, waiting.py): Pending
    (or resumed) once its start time or retry backoff has come, or Waiting once its wake time has come or its
    signal arrived and its last pod is gone. None for a suspend, a cancel, or any other phase."""
    meta, spec = raw.get("metadata") or {}, raw.get("spec") or {}
    if phase not in (Phase.PENDING, Phase.SUSPENDED, Phase.WAITING) or spec.get("suspend") is True \
            or spec.get("cancel") is not None or CANCEL_ANNOTATION in (meta.get("annotations") or {}):
        return None
    if phase == Phase.WAITING and has_pod:
        return None
    try:  # parsed once per change of the object: queues.py keeps the Member until it changes
        ex = Execution.model_validate(raw)
    except pydantic.ValidationError:
        return None
    if phase == Phase.WAITING:
        return waiting.ends_at(ex)
    return timing.may_start_at(ex) or _EPOCH
