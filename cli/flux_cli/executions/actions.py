"""What each command does, joining API calls (kube.Kube) with the pure logic.

The functions take the Kube object and return plain data; nothing here prints, so cluster
tests can call them directly, e.g.
`cancel(connect(kubeconfig=p), Selection(names=("x",)), "default", CancelOptions())`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flux_api import progress

from flux_cli import objects
from flux_cli.durations import format_duration
from flux_cli.errors import ExitCode
from flux_cli.executions.cancelling import (
    DEFAULT_REASON,
    CancelResult,
    Verdict,
    apply_wait,
    build_cancel_patch,
    drop_covered,
    is_over,
    mark_failed,
    plan,
    verdict,
    waits_for,
    worst,
)
from flux_cli.executions.family import Node, attach_pods, build_tree, prune
from flux_cli.executions.selection import Selection, is_stale, split_finished, split_stale
from flux_cli.kube import Kube, KubeError, NotFoundError, RejectedError, concerns_one_object
from flux_cli.objects import GONE

# Above this many executions to watch in one namespace, one list call beats many gets.
_GET_EACH_LIMIT = 10
_NAMES_IN_NOTE = 10


@dataclass
class CancelOptions:
    reason: str = DEFAULT_REASON
    cascade: bool = True
    force: bool = False
    dry_run: bool = False
    stale_seconds: float | None = None
    wait: bool = False
    timeout_seconds: float = 60.0
    poll_seconds: float = 1.0


@dataclass
class CancelRun:
    results: list[CancelResult]
    notes: list[str] = field(default_factory=list)  # what was skipped and why; for stderr

    @property
    def exit_code(self) -> ExitCode:
        # Nothing left to cancel (all finished, or no match) is the "already finished" case.
        if not self.results:
            return ExitCode.ALREADY_FINISHED
        return worst(result.exit_code for result in self.results)


def cancel(
    kube: Kube,
    selection: Selection,
    namespace: str,
    options: CancelOptions,
    *,
    now: datetime | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> CancelRun:
    patch = build_cancel_patch(options.reason, options.cascade, options.force)
    now = now or datetime.now(UTC)
    run = CancelRun(results=[])

    candidates, known, lookup_errors = _resolve(kube, selection, namespace, run.notes)
    if options.stale_seconds is not None:  # a running one's progress is in its ExecutionProgress
        found = kube.progress_of([objects.key_of(obj) for obj in candidates if not objects.is_terminal(obj)])
        candidates = [progress.with_progress(obj, found.get(objects.key_of(obj))) for obj in candidates]
    candidates, fresh = split_stale(candidates, options.stale_seconds, now)
    if fresh and options.stale_seconds is not None:
        run.notes.append(
            f"skipped {len(fresh)} execution(s) with progress in the last "
            f"{format_duration(options.stale_seconds)}: {_names(fresh)}"
        )

    # --all already listed every execution (of the namespace, or of all): no need to ask again.
    complete = selection.everything and not selection.selector
    trees, family = _trees(kube, candidates, known, options.cascade, complete)
    planned = [
        plan(obj, trees[objects.key_of(obj)], options.reason, options.cascade, options.dry_run) for obj in candidates
    ]
    if options.stale_seconds is not None:
        planned = _spare_the_living(kube, planned, family, options.stale_seconds, now, run.notes)
    planned, _ = drop_covered(planned)

    if options.dry_run:
        _show_what_would_be_touched(kube, planned, trees, options.cascade, run.notes)
    else:
        planned = [_patch(kube, result, patch) if result.accepted else result for result in planned]
        if options.wait:
            _wait(kube, planned, options, clock, sleep)

    run.results = lookup_errors + planned
    if selection.by_name:
        # Report in the order the names were given.
        order = {name: index for index, name in enumerate(selection.names)}
        run.results.sort(key=lambda result: order.get(result.name, len(order)))
    return run


def _resolve(
    kube: Kube, selection: Selection, namespace: str, notes: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[CancelResult]]:
    """(targets, every execution already fetched, per-name lookup failures)."""
    if selection.by_name:
        found, errors = [], []
        for name in selection.names:
            try:
                found.append(kube.get_execution(namespace, name))
            except KubeError as error:
                if not concerns_one_object(error):
                    raise
                errors.append(CancelResult(name=name, namespace=namespace, error=True, message=str(error)))
        return found, found, errors
    listed = kube.list_executions(None if selection.all_namespaces else namespace, selection.selector)
    # Finished executions are not targets of -l/--all: they would drown the report and the exit code.
    active, finished = split_finished(listed)
    if finished:
        notes.append(f"skipped {len(finished)} matching execution(s) that already finished")
    if not listed:
        where = "in any namespace" if selection.all_namespaces else f'in namespace "{namespace}"'
        what = f'matches "{selection.selector}"' if selection.selector else "exists"
        notes.append(f"no execution {what} {where}")
    return active, listed, []


def _trees(
    kube: Kube, candidates: list[dict[str, Any]], known: list[dict[str, Any]], cascade: bool, complete: bool
) -> tuple[dict[tuple[str, str], Node], dict[tuple[str, str], dict[str, Any]]]:
    """Each target with its descendants (only itself without cascade), and every execution they were built from."""
    if not cascade:
        return {objects.key_of(obj): build_tree(obj, []) for obj in candidates}, {}
    family = {objects.key_of(obj): obj for obj in known}
    if not complete:
        by_namespace: dict[str, list[str]] = defaultdict(list)
        for obj in candidates:
            by_namespace[objects.namespace_of(obj)].append(objects.name_of(obj))
        for namespace, names in by_namespace.items():
            family.update((objects.key_of(obj), obj) for obj in kube.list_descendants(namespace, names))
    return {objects.key_of(obj): build_tree(obj, family.values()) for obj in candidates}, family


def _spare_the_living(kube: Kube, planned: list[CancelResult], family: dict[tuple[str, str], dict[str, Any]],
                      threshold: float, now: datetime, notes: list[str]) -> list[CancelResult]:
    """--stale cancels what went quiet: a stale target whose cascade would stop a descendant with recent
    progress (a parent waiting on a busy child) is left alone, and said so."""
    reached = {r.key: [(r.namespace, child) for child in r.children] for r in planned if r.accepted}
    below = sorted({key for keys in reached.values() for key in keys if key in family})
    found = kube.progress_of(below) if below else {}
    alive = {key for key in below
             if not is_stale(progress.with_progress(family[key], found.get(key)), threshold, now)}
    spared = [r for r in planned if any(key in alive for key in reached.get(r.key, []))]
    if spared:
        notes.append(f"skipped {len(spared)} execution(s) whose cancel would stop a descendant with progress in "
                     f"the last {format_duration(threshold)}: {', '.join(r.name for r in spared)}")
    left_out = {id(r) for r in spared}
    return [r for r in planned if id(r) not in left_out]


def _show_what_would_be_touched(
    kube: Kube, results: list[CancelResult], trees: dict[tuple[str, str], Node], cascade: bool, notes: list[str]
) -> None:
    for result in results:
        if not result.accepted:
            continue
        # Only what the cancel reaches: unfinished descendants (and finished ones leading to them).
        tree = prune(trees[result.key], lambda node: cascade and not node.terminal)
        try:
            attach_pods(tree, kube.list_pods(result.namespace, [node.name for node in tree.walk()]))
        except KubeError as error:
            if not concerns_one_object(error):
                raise
            notes.append(f"pods not shown: {error}")
        result.tree = tree


def _patch(kube: Kube, result: CancelResult, patch: dict[str, Any]) -> CancelResult:
    try:
        result.phase = objects.phase_of(kube.patch_execution(result.namespace, result.name, patch))
    except RejectedError as error:
        # Someone else may have cancelled it (or it finished) since we looked: report that instead.
        current = _get_or_none(kube, result.namespace, result.name)
        if current is not None and verdict(current) is not Verdict.CANCEL:
            return plan(current, None, result.reason or DEFAULT_REASON, cascade=False)
        mark_failed(result, str(error))
    except KubeError as error:
        if not concerns_one_object(error):
            raise
        mark_failed(result, str(error))
    return result


def _get_or_none(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return kube.get_execution(namespace, name)
    except KubeError as error:
        if not concerns_one_object(error):
            raise
        return None


def _wait(
    kube: Kube,
    results: list[CancelResult],
    options: CancelOptions,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    deadline = clock() + options.timeout_seconds
    keys = {key for result in results for key in waits_for(result)}
    phases: dict[tuple[str, str], str | None] = {}
    while True:
        pending = [key for key in keys if not is_over(phases.get(key))]
        phases.update(_current_phases(kube, pending))
        pending = [key for key in pending if not is_over(phases.get(key))]
        remaining = deadline - clock()
        if not pending or remaining <= 0:
            break
        sleep(min(options.poll_seconds, remaining))
    for result in results:
        apply_wait(result, phases, options.timeout_seconds)


def _current_phases(kube: Kube, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    by_namespace: dict[str, list[str]] = defaultdict(list)
    for namespace, name in keys:
        by_namespace[namespace].append(name)
    phases: dict[tuple[str, str], str] = {}
    for namespace, names in by_namespace.items():
        if len(names) > _GET_EACH_LIMIT:
            listed = {objects.name_of(obj): objects.phase_of(obj) for obj in kube.list_executions(namespace)}
            phases.update({(namespace, name): listed.get(name, GONE) for name in names})
            continue
        for name in names:
            try:
                phases[(namespace, name)] = objects.phase_of(kube.get_execution(namespace, name))
            except NotFoundError:
                phases[(namespace, name)] = GONE
    return phases


def _names(objs: list[dict[str, Any]]) -> str:
    names = [objects.name_of(obj) for obj in objs]
    shown = ", ".join(names[:_NAMES_IN_NOTE])
    return shown + (f" and {len(names) - _NAMES_IN_NOTE} more" if len(names) > _NAMES_IN_NOTE else "")


# Read-only views


@dataclass
class StatusView:
    execution: dict[str, Any]
    children: list[dict[str, Any]]  # direct children: the parent label and its controlling reference


def status(kube: Kube, namespace: str, name: str) -> StatusView:
    execution = kube.get_with_progress(namespace, name)
    children = [c for c in kube.list_children(namespace, [name]) if objects.is_child_of(c, execution)]
    return StatusView(execution, children)


def tree(kube: Kube, namespace: str, name: str) -> Node:
    root = kube.get_execution(namespace, name)
    return build_tree(root, kube.list_descendants(namespace, [name]))


def list_executions(
    kube: Kube, namespace: str | None, selector: str | None = None, phase: str | None = None
) -> list[dict[str, Any]]:
    """Sorted by namespace, then name (like kubectl get)."""
    found = kube.list_executions(namespace, selector)
    if phase is not None:
        found = [obj for obj in found if objects.phase_of(obj) == phase]
    return sorted(found, key=objects.key_of)


__all__ = [
    "CancelOptions",
    "CancelRun",
    "KubeError",
    "StatusView",
    "cancel",
    "list_executions",
    "status",
    "tree",
]
