"""The Execution API: the one definition that the operator, the runner and the plugin share."""

from flux_api.events import EventReason
from flux_api.names import (
    API_VERSION,
    CANCEL_ANNOTATION,
    EXECUTION_LABEL,
    GROUP,
    KIND,
    PARENT_LABEL,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from flux_api.types import (
    TERMINAL_PHASES,
    Cancellation,
    CancelRequest,
    CancelSource,
    Checkpoint,
    ChildRef,
    ChildStatus,
    Condition,
    Execution,
    ExecutionSpec,
    ExecutionStatus,
    Outcome,
    Phase,
    SpawnRequest,
    StepLedger,
    StepRecord,
    StepRun,
    Suspension,
)
from flux_api.writes import StatusWrite

__all__ = [
    "EventReason", "API_VERSION", "CANCEL_ANNOTATION", "EXECUTION_LABEL", "GROUP", "KIND", "PARENT_LABEL",
    "PLURAL", "SHORT_NAMES", "SINGULAR", "VERSION", "TERMINAL_PHASES", "CancelRequest",
    "CancelSource", "Cancellation", "Checkpoint", "ChildRef", "ChildStatus", "Condition", "Execution",
    "ExecutionSpec", "ExecutionStatus", "Outcome", "Phase", "SpawnRequest", "StatusWrite", "StepLedger", "StepRecord", "StepRun",
    "Suspension",
]
