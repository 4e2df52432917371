"""From spec to callable: validate the Execution's spec and import its workflow function."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from flux_api import ExecutionSpec, nesting
from pydantic import ValidationError

from flux_runner.errors import InvalidSpec, WorkflowLoadError
from flux_runner.jsonvalue import json_type

WorkflowFunction = Callable[[Any, dict[str, Any]], Awaitable[Any]]


def parse_spec(execution: dict[str, Any]) -> ExecutionSpec:
    spec = execution.get("spec")
    if not isinstance(spec, dict):
        raise InvalidSpec("the Execution has no spec")
    # Checked first: pydantic's "Input should be a valid dictionary" would hide the field's meaning.
    given = spec.get("input", {})
    if given is not None and not isinstance(given, dict):
        raise InvalidSpec(f"spec.input must be a JSON object, got {json_type(given)}")
    if (problem := nesting.nesting_problem(given, "spec.input")) is not None:
        raise InvalidSpec(problem)
    try:
        return ExecutionSpec.model_validate(spec)
    except ValidationError as exc:
        raise InvalidSpec(f"invalid spec: {_describe(exc)}") from exc


def load_workflow(ref: str) -> WorkflowFunction:
    """Imports "package.module:function", which must be `async def function(ctx, input)`."""
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise WorkflowLoadError(f"workflow {ref!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WorkflowLoadError(f"workflow {ref!r}: cannot import module {module_name!r}: {exc}") from exc
    function = getattr(module, attribute, None)
    if function is None:
        raise WorkflowLoadError(f"workflow {ref!r}: module {module_name!r} has no attribute {attribute!r}")
    if not inspect.iscoroutinefunction(function):
        raise WorkflowLoadError(
            f"workflow {ref!r} must be an async function (async def {attribute}(ctx, input)), "
            f"got {type(function).__name__}"
        )
    _check_signature(ref, function)
    return function


def _check_signature(ref: str, function: Callable[..., Any]) -> None:
    try:
        inspect.signature(function).bind(None, None)
    except TypeError as exc:
        raise WorkflowLoadError(f"workflow {ref!r} must accept two arguments (ctx, input): {exc}") from exc


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"spec.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
