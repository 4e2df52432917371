"""An in-memory API server holding one Execution: test workflows and the runner without a cluster.

    api = FakeExecutionApi(new_execution("demo", "flux_examples.quick:main"))
    exit_code = await run(api.client(token_file))
    assert api.checkpoint["state"] == "Succeeded"

It serves exactly what the runner's RBAC allows (get the Execution, merge-patch its status; with
`progress=True` the same for the ExecutionProgress the operator makes) and answers 403 to anything else, as
the API server would. Without `progress` it is an operator that made none: the runner's one look for it is
answered 403 and not recorded, so the requests a test counts are the Execution's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from flux_api import API_VERSION, KIND
from flux_api.mergepatch import merge_patch
from flux_api.progress import KIND as PROGRESS_KIND
from flux_api.progress import PLURAL as PROGRESS_PLURAL

from flux_runner.client import MERGE_PATCH, ExecutionClient, RetryPolicy, TokenFile, execution_path

FAST_RETRY = RetryPolicy(attempts=4, first_delay=0.001, max_delay=0.01)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: str = ""  # e.g. resourceVersion=0: a poll served from the API server's cache


# Runs after each served request, before the answer: plays the operator or a user.
Hook = Callable[["FakeExecutionApi", Recorded], None]


def new_execution(name: str, workflow: str, input: Any = None, namespace: str = "default", **spec: Any) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1},
        "spec": {"workflow": workflow, "input": {} if input is None else input, **spec},
        "status": {},
    }


class FakeExecutionApi:
    def __init__(self, execution: dict[str, Any], progress: bool = False) -> None:
        self.execution = copy.deepcopy(execution)
        meta = self.execution["metadata"]
        self.path = execution_path(meta["namespace"], meta["name"])
        self.progress_path = execution_path(meta["namespace"], meta["name"], PROGRESS_PLURAL)
        owner = {"apiVersion": API_VERSION, "kind": KIND, "name": meta["name"], "uid": meta.get("uid"),
                 "controller": True}
        self.progress: dict[str, Any] | None = {
            "apiVersion": API_VERSION, "kind": PROGRESS_KIND, "status": {},
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "ownerReferences": [owner]},
        } if progress else None
        self.progress_deleted = False  # set: the ExecutionProgress is gone (404), as after a `kubectl delete`
        self.requests: list[Recorded] = []
        # Answered in order before normal service resumes: an HTTP status code, or an
        # exception to raise (e.g. httpx.ConnectError) from the MockTransport.
        self.failures: list[int | Exception] = []
        self.hooks: list[Hook] = []

    @property
    def status(self) -> dict[str, Any]:
        return self.execution.setdefault("status", {})

    @property
    def checkpoint(self) -> dict[str, Any] | None:
        return self.status.get("checkpoint")

    @property
    def checkpoints(self) -> list[dict[str, Any]]:
        """Every checkpoint the runner patched, in order."""
        return [r.body["status"]["checkpoint"] for r in self.requests
                if r.method == "PATCH" and "checkpoint" in (r.body or {}).get("status", {})]

    @property
    def progress_checkpoint(self) -> dict[str, Any] | None:
        return ((self.progress or {}).get("status") or {}).get("checkpoint")

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes,
               query: str = "") -> tuple[int, dict[str, Any]]:
        if self.progress is None and path.startswith(self.progress_path):
            return 403, _status_body(403, f"{method} {path} is forbidden")
        record = Recorded(method, path, {k.lower(): v for k, v in headers.items()}, json.loads(body) if body else None,
                          query)
        self.requests.append(record)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure, _status_body(failure, "injected failure")
        if method == "GET" and path == self.path:
            pass
        elif self.progress is not None and path.startswith(self.progress_path):
            return self._progress(method, path, record)
        elif method == "PATCH" and path == f"{self.path}/status":
            if record.headers.get("content-type") != MERGE_PATCH:
                return 415, _status_body(415, f"unsupported media type {record.headers.get('content-type')}")
            # The status subresource ignores everything but status, as the API server does.
            self.execution["status"] = merge_patch(self.status, (record.body or {}).get("status") or {})
        else:
            return 403, _status_body(403, f"{method} {path} is forbidden")
        for hook in list(self.hooks):
            hook(self, record)
        return 200, copy.deepcopy(self.execution)

    def _progress(self, method: str, path: str, record: Recorded) -> tuple[int, dict[str, Any]]:
        assert self.progress is not None
        if self.progress_deleted:
            return 404, _status_body(404, f"{PROGRESS_KIND} {self.execution['metadata']['name']} not found")
        if method == "PATCH" and path == f"{self.progress_path}/status":
            if record.headers.get("content-type") != MERGE_PATCH:
                return 415, _status_body(415, f"unsupported media type {record.headers.get('content-type')}")
            self.progress["status"] = merge_patch(self.progress.get("status") or {},
                                                  (record.body or {}).get("status") or {})
        elif not (method == "GET" and path == self.progress_path):
            return 403, _status_body(403, f"{method} {path} is forbidden")
        for hook in list(self.hooks):
            hook(self, record)
        return 200, copy.deepcopy(self.progress)

    def transport(self) -> httpx.MockTransport:
        def serve(request: httpx.Request) -> httpx.Response:
            code, body = self.handle(request.method, request.url.path, dict(request.headers), request.content,
                                     request.url.query.decode())
            return httpx.Response(code, json=body)

        return httpx.MockTransport(serve)

    def client(self, token: Path | TokenFile, retry: RetryPolicy = FAST_RETRY) -> ExecutionClient:
        meta = self.execution["metadata"]
        token_file = token if isinstance(token, TokenFile) else TokenFile(token)
        http = httpx.AsyncClient(base_url="https://fake-apiserver", transport=self.transport())
        return ExecutionClient(http, token_file, meta["namespace"], meta["name"], retry)


def operator_finishes_children(phase: str = "Succeeded", result: Callable[[dict], Any] | None = None,
                               error: str | None = None) -> Hook:
    """A hook that plays the operator: every spawn request ends at once in `phase`."""

    def finish(api: FakeExecutionApi, _: Recorded) -> None:
        children = api.status.setdefault("children", [])
        known = {child["name"] for child in children}
        for request in api.status.get("spawnRequests") or []:
            if request["name"] not in known:
                value = result(request) if result else {"echo": request["input"]}
                children.append({"name": request["name"], "phase": phase, "result": value, "error": error})

    return finish


def _status_body(code: int, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
