"""Children by request: the runner may not create Executions, so it asks the operator.

The runner appends {name, workflow, input} to its own status.spawnRequests; the operator creates
the child and mirrors its phase and result into status.children, which the waiting runner follows (a watch of
its Execution, client.ExecutionClient.changed).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any

from flux_api import TERMINAL_PHASES, ChildStatus, Phase, SpawnRequest
from flux_api.types import MAX_CHILDREN, ChildRefused
from pydantic import ValidationError

from flux_runner.cancel import CancelSwitch
from flux_runner.client import ExecutionClient
from flux_runner.errors import ChildFailed, ChildResultNotMirrored, SpawnConflict, SpawnLimit
from flux_runner.jsonvalue import json_value

POLL_INTERVAL = 0.5
# A child is an Execution: its name must be a DNS-1123 subdomain.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

log = logging.getLogger("flux.runner")


def requested_children(execution: dict[str, Any]) -> list[SpawnRequest]:
    status = execution.get("status") or {}
    return [SpawnRequest.model_validate(item) for item in status.get("spawnRequests") or []]


def child_statuses(execution: dict[str, Any]) -> dict[str, ChildStatus]:
    status = execution.get("status") or {}
    children = (ChildStatus.model_validate(item) for item in status.get("children") or [])
    return {child.name: child for child in children}


class Spawner:
    def __init__(
        self,
        api: ExecutionClient,
        switch: CancelSwitch,
        requested: list[SpawnRequest],
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self._api = api
        self._switch = switch
        self._poll_interval = poll_interval
        self._requests = list(requested)  # the runner is the only writer: its copy is the truth
        self._count = 0
        self._lock = asyncio.Lock()

    @property
    def poll_interval(self) -> float:
        return self._poll_interval

    async def spawn(self, workflow: str, input: Mapping[str, Any] | None, name: str | None) -> Any:
        # Counting every call keeps default names deterministic across restarts.
        self._count += 1
        request = self._build(workflow, input, name or f"child-{self._count}")
        await self._ensure_requested(request)
        return await self._wait(request.name)

    def _build(self, workflow: str, input: Mapping[str, Any] | None, name: str) -> SpawnRequest:
        full_name = f"{self._api.name}-{name}"
        # 63, not 253: the name is a label value on the child's pod and on its own children.
        if not _DNS_SUBDOMAIN.match(full_name) or len(full_name) > 63:
            raise ValueError(
                f"child name {full_name!r} is not a valid Execution name "
                "(lowercase letters, digits, '-' and '.', at most 63 characters)"
            )
        if input is not None and not isinstance(input, Mapping):
            raise TypeError(f"spawn input must be a dict (a JSON object), got {type(input).__name__}")
        payload = json_value(dict(input or {}), f"input of child {full_name!r}")
        try:
            return SpawnRequest(name=full_name, workflow=workflow, input=payload)
        except ValidationError as exc:
            raise ValueError(
                f"invalid spawn of {full_name!r}: workflow must look like 'package.module:function' "
                f"({exc.errors()[0]['msg']})"
            ) from exc

    async def _ensure_requested(self, request: SpawnRequest) -> None:
        existing = next((r for r in self._requests if r.name == request.name), None)
        if existing is not None:
            if existing != request:
                raise SpawnConflict(
                    f"child {request.name!r} was already requested with another workflow or input; "
                    "pass a distinct name="
                )
            log.info("child %s: already requested, waiting for it", request.name)
            return
        if len(self._requests) >= MAX_CHILDREN:
            raise SpawnLimit(f"cannot spawn {request.name!r}: an execution may have at most {MAX_CHILDREN} children")
        self._requests.append(request)
        log.info("child %s: requesting %s", request.name, request.workflow)
        # A merge patch replaces the whole list: send the full list, one patch at a time.
        async with self._lock:
            body = [r.model_dump(mode="json") for r in self._requests]
            response = await self._api.patch_status({"spawnRequests": body})
        await self._switch.enforce(response)

    async def _wait(self, name: str) -> Any:
        while True:
            execution = await self._api.poll()
            await self._switch.enforce(execution)
            child = child_statuses(execution).get(name)
            if child is not None and child.phase in TERMINAL_PHASES:
                return self._outcome(child)
            await self._api.changed(execution, self._poll_interval)

    @staticmethod
    def _outcome(child: ChildStatus) -> Any:
        log.info("child %s: %s", child.name, child.phase)
        if child.reason == ChildRefused.NAME_TAKEN:  # never made: the name is another Execution's
            raise SpawnConflict(f"cannot spawn {child.name!r}: {child.error or 'the name is taken'}")
        if child.phase != Phase.SUCCEEDED:
            raise ChildFailed(child.name, child.phase or "unknown", child.error)
        if child.resultOmitted is not None:
            raise ChildResultNotMirrored(child.name, child.resultOmitted)
        return child.result
