"""The runner's whole view of the API server: GET and watch its Execution, GET its ExecutionProgress,
merge-patch their status.

RBAC grants nothing else (get on the own two objects, watch on the Execution, patch on their status), so
nothing else is here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from flux_api import GROUP, PLURAL, VERSION, nesting, progress
from flux_api.errors import FORBIDDEN_KINDS, Failure, classify, is_transient

from flux_runner.errors import (
    ApiError,
    ApiUnavailable,
    ConfigError,
    CredentialsError,
    Forbidden,
    Invalid,
    NotFound,
    TooLarge,
    Unauthorized,
)
from flux_runner.follow import LIVE_WAIT_LIMIT, Follower
from flux_runner.settings import Settings

log = logging.getLogger("flux.runner.client")

MERGE_PATCH = "application/merge-patch+json"
# The API server ends each watch after this long; the Follower opens the next from where it stopped.
WATCH_SECONDS = 240
# A watch quiet for longer is taken for dead: bookmarks come about once a minute, and the end at WATCH_SECONDS.
WATCH_QUIET_LIMIT = WATCH_SECONDS + 30.0
_ERRORS_BY_KIND: dict[Failure, type[ApiError]] = {
    Failure.UNAUTHORIZED: Unauthorized, **{kind: Forbidden for kind in FORBIDDEN_KINDS},
    Failure.NOT_FOUND: NotFound,
    Failure.INVALID: Invalid,
}


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: long enough to ride out an API server restart."""

    attempts: int = 7
    first_delay: float = 0.25
    max_delay: float = 8.0
    # Writes refused as too early (before the operator has recorded the runner's pod): waited out this many times,
    # from 0.1 s apart doubling to 2 s, about two minutes in all (an operator's failover fits).
    early_waits: int = 70
    early_max_delay: float = 2.0

    def early_delay(self, wait: int) -> float:
        return min(self.early_max_delay, 0.1 * 2 ** (wait - 1))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        backoff = min(self.max_delay, self.first_delay * 2 ** (attempt - 1))
        if retry_after is not None:
            return min(self.max_delay, max(backoff, retry_after))
        # Jitter keeps many runners from hammering a recovering API server in step.
        return backoff * random.uniform(0.5, 1.0)


class TokenFile:
    """The projected service account token: kubelet rotates it, so read it on every request."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> str:
        try:
            token = self.path.read_text().strip()
        except OSError as exc:
            raise CredentialsError(f"cannot read service account token {self.path}: {exc.strerror}") from exc
        if not token:
            raise CredentialsError(f"service account token {self.path} is empty")
        return token


def ssl_context(ca_path: Path) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(ca_path))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the cluster CA {ca_path}: {exc}") from exc


def execution_path(namespace: str, name: str, plural: str = PLURAL) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}/{name}"


class ExecutionClient:
    """Reads and patches one Execution; retries what is worth retrying."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token: TokenFile,
        namespace: str,
        name: str,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._http = http
        self._token = token
        self._retry = retry
        self.namespace = namespace
        self.name = name
        self.path = execution_path(namespace, name)
        self.collection_path = self.path.rpartition("/")[0]
        self.progress_path = execution_path(namespace, name, progress.PLURAL)
        self._follower = Follower(self._cached_get, self.events, self._retry.delay)

    @classmethod
    def in_cluster(cls, settings: Settings, retry: RetryPolicy = RetryPolicy()) -> ExecutionClient:
        http = httpx.AsyncClient(
            base_url=settings.api_url,
            verify=ssl_context(settings.ca_path),
            timeout=httpx.Timeout(15.0, connect=5.0),
        )
        return cls(http, TokenFile(settings.token_path), settings.namespace, settings.name, retry)

    async def __aenter__(self) -> ExecutionClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._follower.close()
        await self._http.aclose()

    async def get(self) -> dict[str, Any]:
        return await self._request("GET", self.path)

    async def poll(self) -> dict[str, Any]:
        """The Execution as a waiter looks at it: the latest its watch sent while one is open (follow.py), else
        from the API server's cache (resourceVersion=0), no etcd read. It may be a moment old; a waiter looks
        only for what never goes away once there (a cancel, a signal, a child's end), so it sees it next time."""
        return await self._follower.read()

    async def changed(self, seen: dict[str, Any], poll: float, at_most: float = LIVE_WAIT_LIMIT) -> None:
        """Waits until the Execution may have changed since `seen` (the watch, opened by the first wait, says so
        as it happens), `poll` without a watch, never longer than `at_most`."""
        await self._follower.changed(seen, poll, at_most)

    async def _cached_get(self) -> dict[str, Any]:
        return await self._request("GET", self.path, params={"resourceVersion": "0"})

    async def events(self, resource_version: str) -> AsyncIterator[dict[str, Any] | None]:
        """Watches the Execution alone from `resource_version` (one try: the Follower retries): None once the
        watch is open, then each event as the API server sends it."""
        params = {"watch": "true", "fieldSelector": f"metadata.name={self.name}", "allowWatchBookmarks": "true",
                  "resourceVersion": resource_version, "timeoutSeconds": str(WATCH_SECONDS)}
        timeout = httpx.Timeout(15.0, connect=5.0, read=WATCH_QUIET_LIMIT)
        try:
            async with self._http.stream("GET", self.collection_path, params=params, headers=self._headers(None),
                                         timeout=timeout) as response:
                if not response.is_success:
                    await response.aread()
                    raise _error("WATCH", self.collection_path, response)
                yield None
                async for line in response.aiter_lines():
                    if line.strip():
                        event = nesting.loads(line)  # never RecursionError, whatever the object's nesting
                        yield event if isinstance(event, dict) else {}
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"WATCH {self.collection_path}: {type(exc).__name__}: {exc}".rstrip(": ")) from exc

    async def patch_status(self, status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patches `status` (keys set to None are removed); returns the whole object."""
        return await self._request("PATCH", f"{self.path}/status", {"status": status})

    async def get_progress(self) -> dict[str, Any] | None:
        """The ExecutionProgress the operator made for this runner; None while there is none. Forbidden: the
        runner's Role has no right to one (an operator older than it), and never will."""
        try:
            return await self._request("GET", self.progress_path)
        except NotFound:
            return None

    async def patch_progress(self, status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patches the ExecutionProgress's `status`; returns it."""
        return await self._request("PATCH", f"{self.progress_path}/status", {"status": status})

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                       params: dict[str, str] | None = None) -> dict[str, Any]:
        content = None if body is None else json.dumps(body).encode()
        early = 0  # answers "not recorded yet": waited out apart from the attempts (the operator is on its way)
        attempt = 0
        while attempt < self._retry.attempts:
            attempt += 1
            headers = self._headers(content_type=MERGE_PATCH if body is not None else None)
            try:
                response = await self._http.request(method, path, content=content, headers=headers, params=params)
            except httpx.TransportError as exc:
                problem, retry_after = f"{type(exc).__name__}: {exc}".rstrip(": "), None
            else:
                if response.is_success:
                    return _json_object(response)
                kind = classify(response.status_code, _message(response))
                if kind is Failure.NOT_YET:
                    # The operator records the pod it made moments after the pod starts: waited out apart
                    # from the attempts, as it is on its way; for a bounded time, as it may never come.
                    if early == self._retry.early_waits:
                        raise _error(method, path, response)
                    early += 1
                    attempt -= 1
                    if early == 1:
                        log.info("%s %s: %s; waiting", method, path, _message(response))
                    await asyncio.sleep(self._retry.early_delay(early))
                    continue
                if kind is Failure.TOO_LARGE:
                    raise _error(method, path, response, TooLarge)  # retrying cannot make it smaller
                if not is_transient(kind):
                    raise _error(method, path, response)
                problem, retry_after = f"HTTP {response.status_code}", _retry_after(response)
            if attempt == self._retry.attempts:
                raise ApiUnavailable(f"{method} {path} failed {attempt} times, last: {problem}")
            delay = self._retry.delay(attempt, retry_after)
            log.warning("%s %s: %s; retry %d in %.1fs", method, path, problem, attempt, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._token.read()}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        return headers



def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = nesting.loads(response.content)  # never RecursionError, whatever the object's nesting
    except ValueError as exc:
        raise ApiError(f"the API server answered with invalid JSON: {exc}", response.status_code) from exc
    if not isinstance(body, dict):
        raise ApiError("the API server answered with JSON that is not an object", response.status_code)
    return body


def _message(response: httpx.Response) -> str:
    """The API server explains itself in a metav1.Status; else the raw text."""
    try:
        return str(nesting.loads(response.content).get("message") or response.text)
    except (ValueError, AttributeError):
        return response.text


def _error(method: str, path: str, response: httpx.Response, error_type: type[ApiError] | None = None) -> ApiError:
    reason = _message(response)
    error_type = error_type or _ERRORS_BY_KIND.get(classify(response.status_code, str(reason)), ApiError)
    return error_type(f"{method} {path}: HTTP {response.status_code}: {reason}".strip(), response.status_code)
