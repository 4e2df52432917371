"""flux-runner: runs one workflow inside an Execution's pod and checkpoints it into the status."""

from importlib.metadata import PackageNotFoundError, version

from flux_runner.cancel import StopReason
from flux_runner.context import WorkflowContext
from flux_runner.errors import (
    ApiError,
    ApiUnavailable,
    ChildFailed,
    ChildResultNotMirrored,
    DuplicateStep,
    NotJsonSerialisable,
    SignalTimeout,
    SpawnConflict,
    SpawnLimit,
    WorkflowLoadError,
)

try:
    __version__ = version("flux-runner")
except PackageNotFoundError:
    __version__ = "0.0.0+unknown"

__all__ = [
    "ApiError", "ApiUnavailable", "ChildFailed", "ChildResultNotMirrored", "DuplicateStep", "NotJsonSerialisable",
    "SignalTimeout", "SpawnConflict", "SpawnLimit", "StopReason", "WorkflowContext", "WorkflowLoadError",
    "__version__",
]
