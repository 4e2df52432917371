"""What decisions read off an execution: the cancel asked for, its deadline, when it was requested."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flux_api import CANCEL_ANNOTATION, CancelSource, Execution, Phase
from flux_api.cancel import CancelIntent, cancel_of
from flux_api.names import DEADLINE_REASON
from flux_api.timefmt import parse_time


# --- observing --------------------------------------------------------------------------------------

def cancel_intent(ex: Execution, now: datetime) -> CancelIntent | None:
    """The cancel asked for, from whichever way in came first; None when nobody asked."""
    found = cancel_of(ex)
    if found is not None:
        return found
    if ex.status.unscheduleRequest is not None:  # the workflow asked: ctx.unschedule(reason)
        return CancelIntent(ex.status.unscheduleRequest.reason, CancelSource.UNSCHEDULE)
    deadline = deadline_at(ex)
    if deadline is not None and now >= deadline:
        return CancelIntent(DEADLINE_REASON, CancelSource.DEADLINE)
    return None


def deadline_at(ex: Execution) -> datetime | None:
    if ex.spec.activeDeadlineSeconds is None:
        return None
    start = ex.status.startedAt or parse_time(ex.metadata.get("creationTimestamp"))
    return start + timedelta(seconds=ex.spec.activeDeadlineSeconds) if start else None


# Where a cancel request lands in managedFields.
_CANCEL_FIELD_PATHS = (("f:spec", "f:cancel"), ("f:metadata", "f:annotations", f"f:{CANCEL_ANNOTATION}"))


def first_cancel_time(managed_fields: list[dict[str, Any]] | None) -> datetime | None:
    """When a cancel request first reached the API: the managedFields entry that set it (second precision)."""
    times = []
    for entry in managed_fields or []:
        for path in _CANCEL_FIELD_PATHS:
            node: Any = entry.get("fieldsV1") or {}
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            moment = parse_time(entry.get("time")) if node is not None else None
            if moment is not None:
                times.append(moment)
    return min(times, default=None)


def requested_at(ex: Execution, intent: CancelIntent, now: datetime, asked: datetime | None = None) -> datetime:
    """When the cancel was asked for. `asked` is what the watch cache read off managedFields (which its trimmed
    copy does not keep); an object that still has them is read directly."""
    if intent.source == CancelSource.DEADLINE:
        return deadline_at(ex) or now
    if intent.source == CancelSource.UNSCHEDULE:
        return ex.status.unscheduleRequest.requestedAt or now
    return asked or first_cancel_time(ex.metadata.get("managedFields")) or now


def checkpoint_state(ex: Execution) -> Phase | None:
    """The runner's own word on how its run stands; None also for a state this version does not know."""
    return ex.status.checkpoint.state if ex.status.checkpoint else None
