"""Writing status: a merge patch checked against the models (flux_api.types, flux_api.schedule), so a misspelt
or ill-typed field raises where it is written and no value is longer than the schema admits (bounds.fit)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from flux_api.bounds import fit, model_in
from flux_api.schedule import ScheduleStatus
from flux_api.types import ExecutionStatus


# A status as a decision writes it: only the fields assigned are written (a merge patch); a None removes the
# field. Every field is checked as it is set, nested keys too, so a misspelt or ill-typed one raises where it is
# written, and each value is first cut to the schema's bounds (bounds.fit): no length makes a write refused.
_WRITE = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class _Writes:
    read_model: ClassVar[type[BaseModel]]  # the status model the object is read with

    def set(self, **fields: Any) -> None:
        fields = {name: _plain(value) for name, value in fields.items()}
        _reject_unknown(self.read_model, fields, "status.")
        for name, value in fit(self.read_model, fields).items():
            setattr(self, name, value)

    def patch(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)  # type: ignore[attr-defined]


class StatusWrite(_Writes, ExecutionStatus):
    """An execution's status as a decision writes it."""

    model_config = _WRITE
    read_model: ClassVar[type[BaseModel]] = ExecutionStatus


class ScheduleStatusWrite(_Writes, ScheduleStatus):
    """A Schedule's status as a decision writes it."""

    model_config = _WRITE
    read_model: ClassVar[type[BaseModel]] = ScheduleStatus


def _plain(value: Any) -> Any:
    # A nested part built as a model is written as what was set on it, then checked and cut like any other.
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _reject_unknown(model: type[BaseModel], data: Any, path: str) -> None:
    # Reading ignores unknown fields (newer servers); writing must not: the schema would drop them silently.
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            raise ValueError(f"{path}{key}: {model.__name__} has no such field")
        inner = model_in(field.annotation)
        if inner is None:
            continue
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            _reject_unknown(inner, item, f"{path}{key}[{i}]." if isinstance(value, list) else f"{path}{key}.")


def status_patch(fields: dict[str, Any], model: type[BaseModel] | None = None) -> dict[str, Any]:
    """A merge patch of status from a dict of fields, through the write model of `model` (ExecutionStatus
    unless given): only the fields given, checked and cut to the schema's bounds."""
    write = ScheduleStatusWrite() if model is ScheduleStatus else StatusWrite()
    write.set(**fields)
    return write.patch()
