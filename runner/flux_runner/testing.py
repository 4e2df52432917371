"""An in-memory API server holding one Execution: test workflows and the runner without a cluster.

    api = FakeExecutionApi(new_execution("demo", "flux_examples.quick:main"))
    exit_code = await run(api.client(token_file))
    assert api.checkpoint["state"] == "Succeeded"

It serves exactly what the runner's RBAC allows (get the Execution, merge-patch its status; with
`progress=True` the same for the ExecutionProgress the operator makes; with `watch=True` a watch of the
Execution alone) and answers 403 to anything else, as the API server would. Without `progress` it is an
operator that made none: the runner's one look for it is answered 403 and not recorded, so the requests a test
counts are the Execution's. Without `watch` it is an operator whose Role has no watch: the runner's tries are
answered 403 and not recorded either, and a waiting runner polls.

A watch sends the Execution whenever a request (or a hook) changed it; a test that changes `execution`
itself calls `touch()`.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

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
    def __init__(self, execution: dict[str, Any], progress: bool = False, watch: bool = False) -> None:
        self.execution = copy.deepcopy(execution)
        meta = self.execution["metadata"]
        meta.setdefault("resourceVersion", "1")
        self.path = execution_path(meta["namespace"], meta["name"])
        self.collection_path = self.path.rpartition("/")[0]
        self.watch = watch
        self._watchers: list[asyncio.Queue] = []
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
        self.failures: list[int | tuple[int, str] | Exception] = []
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

    def touch(self) -> None:
        """A new resourceVersion, sent to every open watch: after a test changed `execution` itself."""
        meta = self.execution["metadata"]
        meta["resourceVersion"] = str(int(meta.get("resourceVersion") or 0) + 1)
        for queue in self._watchers:
            queue.put_nowait({"type": "MODIFIED", "object": copy.deepcopy(self.execution)})

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes,
               query: str = "") -> tuple[int, dict[str, Any]]:
        if self.progress is None and path.startswith(self.progress_path):
            return 403, _status_body(403, f"{method} {path} is forbidden")
        if path == self.collection_path and not self.watch:
            return 403, _status_body(403, f"{method} {path} is forbidden")
        version = self.execution["metadata"]["resourceVersion"]
        watched = json.dumps(self.execution, sort_keys=True) if self._watchers else None  # to tell a change
        record = self._record(method, path, headers, json.loads(body) if body else None, query)
        if (failure := self._injected()) is not None:
            code, message = failure if isinstance(failure, tuple) else (failure, "injected failure")
            return code, _status_body(code, message)
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
        changed = watched is not None and json.dumps(self.execution, sort_keys=True) != watched
        # A write always gives a new version, as etcd does.
        if changed or (method == "PATCH" and self.execution["metadata"]["resourceVersion"] == version):
            self.touch()
        return 200, copy.deepcopy(self.execution)

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any, query: str) -> Recorded:
        record = Recorded(method, path, {k.lower(): v for k, v in headers.items()}, body, query)
        self.requests.append(record)
        return record

    def _injected(self) -> int | tuple[int, str] | None:
        """The next injected failure's status code, or (code, message) (an injected exception is raised), or None."""
        if not self.failures:
            return None
        failure = self.failures.pop(0)
        if isinstance(failure, Exception):
            raise failure
        return failure

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
            query = request.url.query.decode()
            if request.url.path == self.collection_path and self.watch:
                return self._open_watch(request, query)
            code, body = self.handle(request.method, request.url.path, dict(request.headers), request.content, query)
            return httpx.Response(code, json=body)

        return httpx.MockTransport(serve)

    def _open_watch(self, request: httpx.Request, query: str) -> httpx.Response:
        self._record(request.method, request.url.path, dict(request.headers), None, query)
        if (failure := self._injected()) is not None:
            return httpx.Response(failure, json=_status_body(failure, "injected failure"))
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        name = self.execution["metadata"]["name"]
        if params.get("watch") != "true" or params.get("fieldSelector") != f"metadata.name={name}":
            return httpx.Response(403, json=_status_body(403, f"{request.method} {request.url.path} is forbidden"))
        queue: asyncio.Queue = asyncio.Queue()
        self._watchers.append(queue)
        if int(params.get("resourceVersion") or 0) < int(self.execution["metadata"]["resourceVersion"]):
            queue.put_nowait({"type": "MODIFIED", "object": copy.deepcopy(self.execution)})
        return httpx.Response(200, stream=_WatchStream(queue, lambda: queue in self._watchers and
                                                       self._watchers.remove(queue)))

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


class _WatchStream(httpx.AsyncByteStream):
    def __init__(self, queue: asyncio.Queue, closed: Callable[[], None]) -> None:
        self._queue, self._closed = queue, closed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (event := await self._queue.get()) is not None:
            yield json.dumps(event).encode() + b"\n"

    async def aclose(self) -> None:
        self._closed()


def _status_body(code: int, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
