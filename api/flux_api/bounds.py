"""Cutting a value to the bounds a model declares, so a write built from it is never refused for its size.

The schema bounds every list and string of status (the CRD is generated from the same models). A decision
builds its lists within those bounds itself, with a count of what it left out; `fit` is the backstop for
whatever a decision copies from the object it read (an admin may write more than the operator would).
"""

from __future__ import annotations

from typing import Annotated, Any, get_args, get_origin

from annotated_types import MaxLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, through `X | None` and `list[X]`; None for plain values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None


def _max_length(metadata: list[Any]) -> int | None:
    for item in metadata:
        if isinstance(item, MaxLen):
            return item.max_length
        if isinstance(item, FieldInfo):
            found = _max_length(item.metadata)
            if found is not None:
                return found
    return None


def _limit(field: FieldInfo) -> int | None:
    """The field's max_length, also when it sits inside `Annotated[...] | None`."""
    found = _max_length(field.metadata)
    if found is not None:
        return found
    for arg in get_args(field.annotation):
        if get_origin(arg) is Annotated:
            found = _max_length(list(get_args(arg)[1:]))
            if found is not None:
                return found
    return None


def _item_limit(field: FieldInfo) -> int | None:
    """For `list[Annotated[str, max_length]]`: the bound of each item."""
    for arg in get_args(field.annotation):
        for inner in (arg, *get_args(arg)):
            if get_origin(inner) is Annotated:
                found = _max_length(list(get_args(inner)[1:]))
                if found is not None:
                    return found
    return None


def fit(model: type[BaseModel], data: Any) -> Any:
    """`data` with every list and string cut to what `model` allows (first items kept); unknown keys pass."""
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            out[key] = value
            continue
        limit, inner = _limit(field), model_in(field.annotation)
        if isinstance(value, list):
            value = value[:limit] if limit is not None else value
            if inner is not None:
                value = [fit(inner, item) for item in value]
            elif (each := _item_limit(field)) is not None:
                value = [item[:each] if isinstance(item, str) else item for item in value]
        elif isinstance(value, str) and limit is not None:
            value = value[:limit]
        elif isinstance(value, dict) and inner is not None:
            value = fit(inner, value)
        out[key] = value
    return out
