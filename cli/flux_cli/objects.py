"""Facts about Executions (and the pods and Schedules next to them) as the API server returns them.

Spec and status are read through the flux_api models, leniently: the plugin must still show an object
written by a newer operator or a half-reconciled one, so an unknown field is ignored and a field that does
not validate reads as absent, never as an exception. Something that is not an object at all is a
BadObjectError (one line, exit code 1). Metadata stays a plain mapping, as in the models.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Annotated, Any, TypeVar, get_args, get_origin

from flux_api import EXECUTION_LABEL, PARENT_LABEL, TERMINAL_PHASES, Condition, ExecutionStatus, Phase
from flux_api.cancel import recorded_or_requested
from flux_api.conditions import FINISHED, STARTED, WAITING_PREFIX, WAITING_REASONS
from flux_api.names import SCHEDULE_LABEL, SCHEDULED_AT_ANNOTATION
from flux_api.timefmt import parse_time
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from flux_cli.errors import BadObjectError

# Seen while waiting: the execution was deleted, so it is certainly no longer running.
GONE = "Deleted"

Model = TypeVar("Model", bound=BaseModel)
_INVALID = object()


# Reading through the models


def lenient(model: type[Model], data: Any) -> Model:
    """`model` from data as the server returned it: a field that does not validate reads as its default
    (None when it has none), a list keeps the items that do, unknown fields are ignored."""
    raw = data if isinstance(data, Mapping) else {}
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        value = _validated(model, name, info, raw[name]) if name in raw else _INVALID
        if value is not _INVALID:
            values[name] = value
        elif info.is_required():
            values[name] = None
    return model.model_construct(**values)


def _validated(model: type[BaseModel], name: str, info: FieldInfo, value: Any) -> Any:
    try:
        return _adapter(model, name).validate_python(value)
    except ValidationError:
        pass
    item_type = _list_item(info.annotation)
    if item_type is None or not isinstance(value, list):
        return _INVALID
    kept = []
    for item in value:
        try:
            kept.append(_item_adapter(item_type).validate_python(item))
        except ValidationError:
            continue  # one odd entry does not hide the others
    return kept


@cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = model.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info])  # type: ignore[name-defined]


@cache
def _item_adapter(item_type: Any) -> TypeAdapter[Any]:
    return TypeAdapter(item_type)


def _list_item(annotation: Any) -> Any:
    return get_args(annotation)[0] if get_origin(annotation) is list and get_args(annotation) else None


def _section(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise BadObjectError(f"the API server returned {type(obj).__name__} where an object was expected")
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def status_model(obj: Mapping[str, Any]) -> ExecutionStatus:
    return lenient(ExecutionStatus, _section(obj, "status"))


# Raw sections, for what is shown as the server has it (status -o json)


def metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    return _section(obj, "metadata")


def spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    return _section(obj, "spec")


def status(obj: Mapping[str, Any]) -> dict[str, Any]:
    return _section(obj, "status")


# Metadata


def name_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("name", ""))


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("namespace", ""))


def key_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name): names are only unique within a namespace."""
    return namespace_of(obj), name_of(obj)


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    labels = metadata(obj).get("labels")
    return labels if isinstance(labels, dict) else {}


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    annotations = metadata(obj).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def parent_of(obj: Mapping[str, Any]) -> str | None:
    return labels_of(obj).get(PARENT_LABEL) or None


def is_child_of(child: Mapping[str, Any], parent: Mapping[str, Any]) -> bool:
    """The operator's own test: labelled with the parent's name and controlled by it, by UID. Anyone may set the
    label, and a child orphaned from a deleted namesake keeps it (`--cascade=orphan` only drops the reference)."""
    if parent_of(child) != name_of(parent) or namespace_of(child) != namespace_of(parent):
        return False
    uid = metadata(parent).get("uid")
    owners = metadata(child).get("ownerReferences")
    return not uid or any(isinstance(o, dict) and o.get("controller") is True and o.get("uid") == uid
                          for o in (owners if isinstance(owners, list) else []))


def execution_label_of(obj: Mapping[str, Any]) -> str | None:
    """For pods: the execution that owns them."""
    return labels_of(obj).get(EXECUTION_LABEL) or None


def created_at(obj: Mapping[str, Any]) -> datetime | None:
    return parse_time(metadata(obj).get("creationTimestamp"))


# Phase, reasons, progress


def phase_of(obj: Mapping[str, Any]) -> Phase | str:
    """The phase; no status yet means Pending. A value this version does not know is shown as it is."""
    known = status_model(obj).phase
    if known is not None:
        return known
    raw = status(obj).get("phase")
    return str(raw) if raw else Phase.PENDING


def is_terminal_phase(phase: str | None) -> bool:
    return phase in TERMINAL_PHASES


def is_terminal(obj: Mapping[str, Any]) -> bool:
    return is_terminal_phase(phase_of(obj))


def spec_cancel(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """spec.cancel as written (its presence alone means a cancel was asked for)."""
    value = spec(obj).get("cancel")
    return value if isinstance(value, dict) else None


def cancellation(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    value = status(obj).get("cancellation")
    return value if isinstance(value, dict) else None


def checkpoint(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    value = status(obj).get("checkpoint")
    return value if isinstance(value, dict) else None


def conditions(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """As written, for display: a condition the model would refuse is still shown."""
    value = status(obj).get("conditions")
    return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []


def condition(obj: Mapping[str, Any], type_: str) -> Condition | None:
    return next((c for c in status_model(obj).conditions if c.type == type_), None)


def reason_of(obj: Mapping[str, Any]) -> str | None:
    """Why it is (being) stopped: the cancel reason first, else the suspend's, else why it waits, else why it
    finished."""
    intent = recorded_or_requested(obj)
    if intent is not None:
        return intent.reason
    if phase_of(obj) == Phase.WAITING:
        return status_model(obj).message  # what it waits for: "sleeping until <time>"
    if phase_of(obj) in (Phase.SUSPENDING, Phase.SUSPENDED):
        suspension = status_model(obj).suspension
        return f"{suspension.reason} ({suspension.outcome})" if suspension and suspension.outcome else \
            (suspension.reason if suspension else None)
    waiting = waiting_reason(obj)
    if waiting:
        return waiting
    if is_terminal(obj):
        finished = condition(obj, FINISHED)
        if finished is not None and finished.reason:
            return finished.reason
    return None


def waiting_reason(obj: Mapping[str, Any]) -> str | None:
    """Why a Pending execution has no runner yet: a retry's backoff, its start time, a quota or a refusal.
    Decided by status.nextRetryAt and the Started condition's reason, never by the message's wording."""
    if phase_of(obj) != Phase.PENDING:
        return None
    st = status_model(obj)
    if st.nextRetryAt:  # shown as the operator wrote it
        return f"retry {st.retries} at {status(obj).get('nextRetryAt')}"
    started = condition(obj, STARTED)
    if started is None or started.status != "False" or started.reason not in WAITING_REASONS:
        return None
    return started.message.removeprefix(WAITING_PREFIX) or started.reason


def last_progress(obj: Mapping[str, Any], now: datetime | None = None) -> datetime | None:
    """When the execution last showed life: checkpoint, else start, else creation. A checkpoint time after
    `now` is the runner's word against the clock (it writes it): not taken."""
    st = status_model(obj)
    for value in (st.checkpoint.updatedAt if st.checkpoint else None, st.startedAt,
                  metadata(obj).get("creationTimestamp")):
        moment = parse_time(value)
        if moment is not None and (now is None or moment <= now):
            return moment
    return None


def seconds_since(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else (now - moment).total_seconds()


def scheduling(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of delayed start, retries, retention and Schedules, as `status` shows them."""
    sp, st = spec(obj), status(obj)
    retry = sp.get("retry") if isinstance(sp.get("retry"), dict) else None
    return {
        "schedule": labels_of(obj).get(SCHEDULE_LABEL),
        "scheduledAt": annotations_of(obj).get(SCHEDULED_AT_ANNOTATION),
        "startAt": sp.get("startAt"),
        "retry": retry,
        "retries": st.get("retries"),
        "nextRetryAt": st.get("nextRetryAt"),
        "ttlSecondsAfterFinished": sp.get("ttlSecondsAfterFinished"),
        "unscheduleRequest": st.get("unscheduleRequest"),
    }



# What no listing reads, and what makes an object big: a tenant's padded input or template, a checkpoint's data.
_UNLISTED_SPEC = ("input", "seed", "podTemplate")
_UNLISTED_CHECKPOINT = ("data", "results")


def listed(obj: dict[str, Any]) -> dict[str, Any]:
    """An object of a LIST as the commands that list keep it: without what none of them reads (a command that
    needs the whole object GETs it), so a namespace of padded objects costs the caller little memory."""
    spec, status = obj.get("spec"), obj.get("status")
    if isinstance(spec, dict):
        for key in _UNLISTED_SPEC:
            spec.pop(key, None)
    checkpoint = status.get("checkpoint") if isinstance(status, dict) else None
    if isinstance(checkpoint, dict):
        for key in _UNLISTED_CHECKPOINT:
            checkpoint.pop(key, None)
    return obj
