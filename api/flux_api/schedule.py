"""Pydantic models of the Schedule resource: a cron expression that starts Executions.

Like types.py these are the single source of truth for the Schedule CRD (`make crds`).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from flux_api.types import Condition, ExecutionSpec, PodMetadata, Stamp, _Model


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


class Schedule(_Model):
    apiVersion: str | None = None
    kind: str | None = None
    metadata: dict = Field(default_factory=dict)
    spec: ScheduleSpec
    status: ScheduleStatus = Field(default_factory=ScheduleStatus)

    @property
    def name(self) -> str:
        return self.metadata.get("name", "")

    @property
    def namespace(self) -> str:
        return self.metadata.get("namespace", "")
