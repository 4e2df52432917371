"""Cancel decisions and their outcome, without I/O: what to patch, what to report, which exit code."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flux_api import CancelRequest, Phase
from pydantic import ValidationError

from flux_cli import objects
from flux_cli.durations import format_duration
from flux_cli.errors import ArgumentError, ExitCode
from flux_cli.executions.family import Node
from flux_cli.objects import GONE

DEFAULT_REASON = "Cancelled by user"
# Worst first: with several targets the command exits with the worst of their codes.
SEVERITY = (ExitCode.ERROR, ExitCode.TIMEOUT, ExitCode.ALREADY_FINISHED, ExitCode.OK)


def worst(codes: Iterable[ExitCode]) -> ExitCode:
    """The most severe code; OK for none."""
    return min(codes, key=SEVERITY.index, default=ExitCode.OK)


def build_cancel_patch(reason: str, cascade: bool = True, force: bool = False) -> dict[str, Any]:
    """The JSON merge patch that asks the operator to cancel."""
    reason = reason.strip()
    if not reason:
        raise ArgumentError("--reason must not be empty")
    try:
        request = CancelRequest(reason=reason, cascade=cascade, force=force)
    except ValidationError as error:
        raise ArgumentError(f"--reason is too long ({len(reason)} characters, at most {_max_reason_length()})") from error
    return {"spec": {"cancel": request.model_dump(mode="json")}}


def _max_reason_length() -> int | None:
    # Read from the model so the message follows the API if the limit changes.
    limits = [m.max_length for m in CancelRequest.model_fields["reason"].metadata if hasattr(m, "max_length")]
    return limits[0] if limits else None


class Verdict(StrEnum):
    CANCEL = "cancel"
    ALREADY_CANCELLING = "already-cancelling"
    ALREADY_FINISHED = "already-finished"


def verdict(obj: dict[str, Any]) -> Verdict:
    """Finished wins over cancelling: a finished execution has nothing left to stop.

    spec.cancel is immutable once set, so it is never patched a second time.
    """
    if objects.is_terminal(obj):
        return Verdict.ALREADY_FINISHED
    if objects.spec_cancel(obj) is not None:
        return Verdict.ALREADY_CANCELLING
    return Verdict.CANCEL


@dataclass
class CancelResult:
    """What happened to one targeted execution; rendered as a text block or a JSON object."""

    name: str
    namespace: str
    phase: str | None = None
    accepted: bool = False
    already_finished: bool = False
    already_cancelling: bool = False
    cancelled_count: int = 0
    reason: str | None = None
    children: list[str] = field(default_factory=list)
    message: str = ""
    error: bool = False
    timed_out: bool = False
    dry_run: bool = False
    tree: Node | None = None  # dry run only: the executions and pods the cancel would touch

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def exit_code(self) -> ExitCode:
        if self.error:
            return ExitCode.ERROR
        if self.timed_out:
            return ExitCode.TIMEOUT
        if self.already_finished:
            return ExitCode.ALREADY_FINISHED
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "phase": self.phase,
            "accepted": self.accepted,
            "alreadyFinished": self.already_finished,
            "alreadyCancelling": self.already_cancelling,
            "cancelledCount": self.cancelled_count,
            "reason": self.reason,
            "children": list(self.children),
            "message": self.message,
            "error": self.error,
            "timedOut": self.timed_out,
            "dryRun": self.dry_run,
        }
        if self.tree is not None:
            data["tree"] = self.tree.to_json(with_pods=True)
        return data


def plan(obj: dict[str, Any], tree: Node | None, reason: str, cascade: bool, dry_run: bool = False) -> CancelResult:
    """The result as if the patch (if any) succeeds; `tree` is the execution with its descendants."""
    result = CancelResult(name=objects.name_of(obj), namespace=objects.namespace_of(obj), phase=objects.phase_of(obj))
    result.dry_run = dry_run
    action = verdict(obj)
    if action is Verdict.ALREADY_FINISHED:
        result.already_finished = True
        result.reason = objects.reason_of(obj)
        result.message = f"already finished ({result.phase})"
    elif action is Verdict.ALREADY_CANCELLING:
        result.already_cancelling = True
        result.reason = (objects.spec_cancel(obj) or {}).get("reason")
        result.message = "already cancelling (a cancel cannot be changed once requested)"
    else:
        result.accepted = True
        result.reason = reason
        if cascade and tree is not None:
            result.children = [node.name for node in tree.cascade_reach()]
        result.cancelled_count = 1 + len(result.children)
        result.message = "would cancel (dry run)" if dry_run else "cancel requested"
    return result


def mark_failed(result: CancelResult, message: str) -> None:
    """The patch (or the lookup) failed: nothing was cancelled."""
    result.accepted = False
    result.error = True
    result.cancelled_count = 0
    result.children = []
    result.message = message


def drop_covered(results: list[CancelResult]) -> tuple[list[CancelResult], list[CancelResult]]:
    """(kept, dropped): a target that is the cascaded child of another accepted target is
    reported inside that target's block instead of being cancelled (and shown) twice."""
    dropped: set[tuple[str, str]] = set()
    for result in results:
        covering = {
            (other.namespace, child)
            for other in results
            if other is not result and other.accepted and other.key not in dropped
            for child in other.children
        }
        if result.key in covering:
            dropped.add(result.key)
    kept = [result for result in results if result.key not in dropped]
    return kept, [result for result in results if result.key in dropped]


def waits_for(result: CancelResult) -> list[tuple[str, str]]:
    """Executions --wait waits on for this result: the target and what its cancel cascaded to."""
    if result.error or result.already_finished:
        return []
    return [result.key] + [(result.namespace, child) for child in result.children]


def apply_wait(result: CancelResult, phases: Mapping[tuple[str, str], str | None], timeout_seconds: float) -> None:
    """Fold the phases seen when waiting ended into the result (GONE = deleted meanwhile)."""
    keys = waits_for(result)
    if not keys:
        return
    result.phase = phases.get(result.key, result.phase)
    running = [name for (namespace, name) in keys if not is_over(phases.get((namespace, name)))]
    if running:
        result.timed_out = True
        result.message = f"timed out after {format_duration(timeout_seconds)}: still running: {', '.join(running)}"
    elif result.phase == GONE:
        result.message = "deleted while waiting"
    elif result.phase == Phase.CANCELLED:
        result.message = "cancelled"
    else:
        # The workflow finished on its own before the cancel took effect.
        result.message = f"finished as {result.phase} before the cancel took effect"


def is_over(phase: str | None) -> bool:
    """Terminal, or deleted."""
    return phase == GONE or objects.is_terminal_phase(phase)
