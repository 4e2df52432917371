"""The one reader of a cancel request: operator, runner and plugin all ask it, so they agree.

A request arrives as `spec.cancel` or as the cancel annotation; a cancellation the operator
already recorded in status wins over both (the request cannot change once acted on).
Works on raw objects as read from the API, so a caller never needs a fully valid spec, and on a parsed
Execution (`cancel_of`) by the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flux_api.names import CANCEL_ANNOTATION, CANCELLED_BY_ANNOTATION, REPLACED_BY_ANNOTATION
from flux_api.timefmt import parse_time
from flux_api.types import MAX_REASON, CancelRequest, CancelSource, Execution

__all__ = ["MAX_REASON", "CancelIntent", "cancel_of", "first_cancel_time", "recorded_or_requested", "requested_cancel"]


@dataclass(frozen=True)
class CancelIntent:
    reason: str
    source: CancelSource
    cascade: bool = True
    force: bool = False


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _asked(cancel: CancelRequest | None, annotations: Mapping[str, Any]) -> CancelIntent | None:
    """The one rule: spec.cancel first (its source told by the annotations a parent or a Schedule sets),
    then a non-blank cancel annotation."""
    if cancel is not None:
        source = CancelSource.PARENT if annotations.get(CANCELLED_BY_ANNOTATION) else \
            CancelSource.REPLACED if annotations.get(REPLACED_BY_ANNOTATION) else CancelSource.SPEC
        return CancelIntent((cancel.reason or "spec.cancel")[:MAX_REASON], source, cancel.cascade, cancel.force)
    annotated = str(annotations.get(CANCEL_ANNOTATION) or "").strip()
    if annotated:
        return CancelIntent(annotated[:MAX_REASON], CancelSource.ANNOTATION)
    return None


def _or_recorded(requested: CancelIntent | None, reason: str, source: CancelSource) -> CancelIntent:
    # The recorded reason and source stand; cascade and force are only ever on the request.
    return CancelIntent(reason, source, requested.cascade if requested else True,
                        requested.force if requested else False)


def requested_cancel(obj: Mapping[str, Any]) -> CancelIntent | None:
    """The cancel asked for on the object itself (spec first, then the annotation); None if nobody asked.

    A blank annotation is no request. Deadlines are not requests: the operator decides those.
    """
    raw = _mapping(obj.get("spec")).get("cancel")
    # Not validated (a caller may hold any object): each field read as leniently as ever.
    cancel = CancelRequest.model_construct(reason=str(raw.get("reason") or ""), cascade=bool(raw.get("cascade", True)),
                                           force=bool(raw.get("force", False))) if isinstance(raw, Mapping) else None
    return _asked(cancel, _mapping(_mapping(obj.get("metadata")).get("annotations")))


def recorded_or_requested(obj: Mapping[str, Any]) -> CancelIntent | None:
    """What the operator recorded in status.cancellation if anything, else the request on the object."""
    requested = requested_cancel(obj)
    recorded = _mapping(_mapping(obj.get("status")).get("cancellation"))
    if recorded.get("reason") and recorded.get("source") in CancelSource.__members__.values():
        return _or_recorded(requested, str(recorded["reason"]), CancelSource(recorded["source"]))
    return requested


def cancel_of(ex: Execution) -> CancelIntent | None:
    """`recorded_or_requested` of a parsed Execution, read off the model itself."""
    requested = _asked(ex.spec.cancel, _mapping(ex.metadata.get("annotations")))
    recorded = ex.status.cancellation
    if recorded is not None and recorded.reason:
        return _or_recorded(requested, recorded.reason, recorded.source)
    return requested


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
