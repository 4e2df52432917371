"""Is it up yet: HTTP health probes and the one polling loop, shared by the cluster, tests and benchmarks."""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def apiserver_ok(server: str, pki: Path, path: str = "/readyz") -> bool:
    """The API server's health as the admin sees it (its endpoints need a client certificate)."""
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return http_ok(f"{server}{path}", ctx)


def wait_for(predicate: Callable[[], T], timeout: float = 30, interval: float = 0.1, what: str = "condition",
             error: type[Exception] = AssertionError) -> T:
    """Polls until `predicate` returns something truthy and returns it; `error` says whose timeout it is
    (a test's assertion, a benchmark's BenchError, the fault injector's TimeoutError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
