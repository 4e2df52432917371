"""Pydantic models of the Schedule resource: a cron expression that starts Executions.

Like types.py these are the single source of truth for the Schedule CRD (`make crds`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from flux_api.types import Condition, ExecutionSpec, PodMetadata, Stamp, _Model, _Object


class ConcurrencyPolicy(StrEnum):
    ALLOW = "Allow"  # runs may overlap
    FORBID = "Forbid"  # skip a run while the previous one is still active
    REPLACE = "Replace"  # cancel the active run, then start the new one


class ExecutionTemplate(_Model):
    metadata: PodMetadata | None = Field(None, description="Labels and annotations of each Execution.")
    spec: ExecutionSpec


class ScheduleSpec(_Model):
    schedule: str = Field(min_length=1, max_length=128,
                          description='Cron expression, 5 fields ("*/5 * * * *") or @hourly, @daily, ...')
    timeZone: str | None = Field(None, max_length=64, description="IANA time zone of the schedule; default UTC.")
    concurrencyPolicy: ConcurrencyPolicy = Field(ConcurrencyPolicy.ALLOW, description="Allow, Forbid or Replace.")
    suspend: bool = Field(False, description="No new runs while true; running ones carry on.")
    startingDeadlineSeconds: int | None = Field(
        None, ge=1, le=31536000, description="A run missed by more than this is skipped.")
    successfulExecutionsHistoryLimit: int = Field(3, ge=0, le=1000)
    failedExecutionsHistoryLimit: int = Field(1, ge=0, le=1000)
    cancelledExecutionsHistoryLimit: int = Field(1, ge=0, le=1000)
    executionTemplate: ExecutionTemplate


class ActiveRef(_Model):
    name: str


class LastUnschedule(_Model):
    execution: str | None = None
    reason: str
    at: Stamp | None = None


# The record of runs holds every run the history limits keep (3 x 1,000 at most) plus the active ones:
# 40 bytes of JSON a UID, 160 kB when full. A Schedule whose record is full starts no run until one goes.
MAX_RECORDED_RUNS = 4000
MAX_STARTING = 3
Uid = Annotated[str, Field(max_length=36)]


class StartingRun(_Model):
    """A run about to be created, written before the create: after a crash between the two, the run found
    with a matching proof is the operator's own, and any other object of that name is not."""

    scheduledAt: Stamp = Field(description="The cron time of the run.")
    proof: str = Field(min_length=64, max_length=64,
                       description="sha256 of the run's name and of the secret token it carries as an annotation.")
    since: Stamp = Field(description="When the operator wrote this.")


class ScheduleStatus(_Model):
    observedGeneration: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    lastScheduleTime: Stamp | None = None
    nextScheduleTime: Stamp | None = None
    lastSuccessfulTime: Stamp | None = None
    active: list[ActiveRef] = Field(default_factory=list)
    lastUnschedule: LastUnschedule | None = None
    resumedAt: Stamp | None = Field(None, description="When it was last resumed: runs missed before are not made up.")
    message: str | None = None
    runs: list[Uid] = Field(default_factory=list, max_length=MAX_RECORDED_RUNS,
                            description="UIDs of the runs the operator created that still exist: only an Execution "
                                        "listed here, with a controller ownerReference to this Schedule, is its run.")
    starting: list[StartingRun] = Field(default_factory=list, max_length=MAX_STARTING,
                                        description="Runs being created (the operator's crash-safe intent).")


class Schedule(_Object):
    spec: ScheduleSpec
    status: ScheduleStatus = Field(default_factory=ScheduleStatus)
