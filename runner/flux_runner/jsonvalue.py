"""Everything the runner stores in the status must survive a JSON round trip."""

from __future__ import annotations

import json
from typing import Any

from flux_api import nesting

from flux_runner.errors import NotJsonSerialisable


def json_value(value: Any, what: str) -> Any:
    """Returns `value` as it reads back from the API server (tuples become lists, ...).

    Returning the round-tripped value makes a first run and a replay after restart see the same thing.
    """
    if (problem := nesting.nesting_problem(value, what)) is not None:
        raise NotJsonSerialisable(problem)  # before json.dumps, which would recurse as deep as the value
    try:
        # allow_nan=False: NaN and Infinity are not JSON and the API server rejects them.
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise NotJsonSerialisable(
            f"{what} is not JSON-serialisable ({exc}); use dict, list, str, int, float, bool or None"
        ) from exc


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
