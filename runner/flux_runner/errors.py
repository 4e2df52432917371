"""The runner's own errors, so workflows and tests can catch them by type. A misused `ctx` (a bad step or
child name, a non-dict input, a bad unschedule reason) raises plain ValueError or TypeError instead."""

from __future__ import annotations

from flux_api.types import MIRRORED_RESULTS_BUDGET


class ConfigError(Exception):
    """The pod's environment is incomplete: nothing can run (exit non-zero)."""


# --- The API server. Any ApiError that ends a workflow is treated as infrastructure
# trouble: the runner exits non-zero and the pod restarts, reusing completed steps.


class ApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiUnavailable(ApiError):
    """Connection errors, 5xx or 429 persisted through every retry."""


class CredentialsError(ApiError):
    """The service account token cannot be read."""


class Unauthorized(ApiError):
    """401: the token was rejected."""


class Forbidden(ApiError):
    """403: RBAC allows only get on the own Execution and patch on its status."""


class NotFound(ApiError):
    """404: the Execution is gone (deleted while running)."""


class Invalid(ApiError):
    """422: the API server's schema rejected a status patch."""


# --- The workflow. These end the workflow as Failed (exit 0: retrying cannot help).


class TooLarge(ApiError):
    """The API server (or etcd behind it) refused the object as too large."""


class WorkflowError(Exception):
    """Base of the errors a workflow sees from its context."""


class WorkflowLoadError(WorkflowError):
    """spec.workflow is not an importable `async def main(ctx, input)`."""


class InvalidSpec(WorkflowError):
    """spec (or spec.input) is not what the runner can run."""


class NotJsonSerialisable(WorkflowError, TypeError):
    """A step result, checkpoint data, spawn input or workflow result is not JSON."""


class DuplicateStep(WorkflowError, ValueError):
    """Step names identify recorded results across restarts, so they must be unique."""


class CheckpointRejected(WorkflowError):
    """The API server refused a checkpoint (e.g. a result too large or off-schema)."""


class SpawnConflict(WorkflowError, ValueError):
    """A child name was already requested with a different workflow or input."""


class CheckpointTooLarge(WorkflowError):
    """The checkpoint would outgrow its budget (flux_api.types.CHECKPOINT_BUDGET); the error's type name
    is the reason the execution reports."""


class SpawnLimit(WorkflowError):
    """The workflow asked for more children than one execution may have."""


class ChildResultNotMirrored(WorkflowError):
    """A child succeeded, but its result did not fit the budget of results mirrored into the parent's status
    (flux_api.types.MIRRORED_RESULTS_BUDGET). Nothing is lost: the result stays on the child."""

    def __init__(self, name: str, size: int) -> None:
        super().__init__(
            f"child execution {name} succeeded, but its result ({size:,} bytes) was not mirrored: the results of "
            f"one execution's children are mirrored within {MIRRORED_RESULTS_BUDGET:,} bytes in all; it stays on "
            f"the child (status.checkpoint.result of Execution {name}): return less, or store it elsewhere")
        self.name, self.size = name, size


class ChildFailed(WorkflowError):
    """A spawned child ended Failed or Cancelled."""

    def __init__(self, name: str, phase: str, error: str | None) -> None:
        detail = f": {error}" if error else ""
        super().__init__(f"child execution {name} ended {phase}{detail}")
        self.name = name
        self.phase = phase
        self.error = error


class NotScheduled(WorkflowError, RuntimeError):
    """ctx.unschedule() in an execution no Schedule started: there is nothing to unschedule."""


class SignalTimeout(WorkflowError, TimeoutError):
    """ctx.wait_for_signal: no such signal arrived before the timeout."""
