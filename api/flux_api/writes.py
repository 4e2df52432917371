"""Writing status: a merge patch checked against the models (flux_api.types), so a misspelt or ill-typed field
raises where it is written and no value is longer than the schema admits (bounds.fit)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from flux_api.bounds import fit, model_in
from flux_api.types import ExecutionStatus


class StatusWrite(ExecutionStatus):
    """An execution's status as a decision writes it: a merge patch of only the fields assigned (`patch`).

    Each field is checked against the schema as it is set, so a misspelt or ill-typed one raises where it is
    written; a None removes the field, as merge patch says.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    def set(self, **fields: Any) -> None:
        # The backstop first: a value copied from the object read is cut to the schema's bounds (bounds.fit),
        # so no length can make a status write raise or be refused.
        for name, value in fit(ExecutionStatus, fields).items():
            setattr(self, name, value)

    def patch(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


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
    """A merge patch of status from a dict of changed fields (a Schedule's status is decided as a diff of
    two dicts), checked against the models: a misspelt or ill-typed field raises. An execution's status
    is built as a `StatusWrite` instead.

    Only the fields given are written (a None removes the field, as merge patch says); strings and lists
    longer than the schema allows are cut to its bounds. `model` is the status model (ExecutionStatus
    unless given).
    """
    model = model or ExecutionStatus
    _reject_unknown(model, fields, "status.")
    # Decisions bound their lists and texts first (with counts); this is the backstop that keeps any value
    # within the schema's bounds, so no length can make a status write raise or be refused.
    return model.model_validate(fit(model, fields)).model_dump(mode="json", exclude_unset=True)
