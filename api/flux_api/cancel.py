"""The one reader of a cancel request: operator, runner and plugin all ask it, so they agree.

A request arrives as `spec.cancel` or as the cancel annotation; a cancellation the operator
already recorded in status wins over both (the request cannot change once acted on).
Works on raw objects as read from the API, so a caller never needs a fully valid spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flux_api.names import CANCEL_ANNOTATION, CANCELLED_BY_ANNOTATION, REPLACED_BY_ANNOTATION
from flux_api.types import MAX_REASON, CancelSource

__all__ = ["MAX_REASON", "CancelIntent", "recorded_or_requested", "requested_cancel"]


@dataclass(frozen=True)
class CancelIntent:
    reason: str
    source: CancelSource
    cascade: bool = True
    force: bool = False


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def requested_cancel(obj: Mapping[str, Any]) -> CancelIntent | None:
    """The cancel asked for on the object itself (spec first, then the annotation); None if nobody asked.

    A blank annotation is no request. Deadlines are not requests: the operator decides those.
    """
    spec_cancel = _mapping(obj.get("spec")).get("cancel")
    annotations = _mapping(_mapping(obj.get("metadata")).get("annotations"))
    if isinstance(spec_cancel, Mapping):
        source = CancelSource.PARENT if annotations.get(CANCELLED_BY_ANNOTATION) else \
            CancelSource.REPLACED if annotations.get(REPLACED_BY_ANNOTATION) else CancelSource.SPEC
        reason = str(spec_cancel.get("reason") or "spec.cancel")[:MAX_REASON]
        return CancelIntent(reason, source, bool(spec_cancel.get("cascade", True)),
                            bool(spec_cancel.get("force", False)))
    annotated = str(annotations.get(CANCEL_ANNOTATION) or "").strip()
    if annotated:
        return CancelIntent(annotated[:MAX_REASON], CancelSource.ANNOTATION)
    return None


def recorded_or_requested(obj: Mapping[str, Any]) -> CancelIntent | None:
    """What the operator recorded in status.cancellation if anything, else the request on the object."""
    requested = requested_cancel(obj)
    recorded = _mapping(_mapping(obj.get("status")).get("cancellation"))
    if recorded.get("reason") and recorded.get("source") in CancelSource.__members__.values():
        cascade = requested.cascade if requested else True
        force = requested.force if requested else False
        return CancelIntent(str(recorded["reason"]), CancelSource(recorded["source"]), cascade, force)
    return requested
