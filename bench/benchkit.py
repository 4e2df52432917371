"""What every part of the benchmark suite (bench/run.py) shares: the operator as a process, a
request-counting proxy in front of the API server, watches that time phases, and small helpers.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

from flux_api import GROUP, PLURAL, VERSION  # noqa: E402
from kubernetes import client, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402
from localcluster.layout import Layout  # noqa: E402
from localcluster.procs import free_port, stop  # noqa: E402
from urllib3.exceptions import HTTPError  # noqa: E402

RUNNER_UID = 65532
# `make operator-venv`: the api and operator distributions alone, as the operator image has them. The
# dev venv also holds the `kubernetes` package (hack/, tests, this suite), which kopf imports when it
# is installed: ~40 MB that the operator in production never carries, and RSS is one of the figures.
OPERATOR_VENV = REPO / ".venv-operator"
TERMINAL = ("Cancelled", "Succeeded", "Failed")
# Flags given to every operator the suite starts (run.py --operator-args), e.g. "--qps 0" to see what
# the client-side rate limit costs. Empty: the operator's defaults, which the targets are about.
OPERATOR_EXTRA: list[str] = []


class BenchError(RuntimeError):
    pass


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return value


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between sorted samples (p in 0..100)."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "mean": statistics.fmean(values) if values else float("nan"),
            "min": min(values, default=float("nan")), "max": max(values, default=float("nan"))}


def parallel(fn: Callable, items: Iterable, workers: int = 16) -> list:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def proc_status_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set) and VmRSS of a process, in MB (MiB)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024
    return out


# --- namespaces -----------------------------------------------------------------------------------

@contextmanager
def bench_namespace(core: client.CoreV1Api, prefix: str = "bench", keep: bool = False) -> Iterator[str]:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"flux.dev/bench": "true"}}})

    def default_account_exists() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    try:
        wait_until(default_account_exists, 60, f"the default ServiceAccount in {name}")
        yield name
    finally:
        if not keep:
            try:
                core.delete_namespace(name, propagation_policy="Background")
            except ApiException as err:
                if err.status != 404:
                    raise


# --- the operator as a process ----------------------------------------------------------------------

def operator_command() -> list[str]:
    """The operator-only venv's entry point; this interpreter's module (dev packages and all) without it."""
    exe = OPERATOR_VENV / "bin" / "flux-operator"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "flux_operator"]


def ensure_operator_venv() -> list[str]:
    """Builds .venv-operator if it is missing (the Makefile's bench targets already did); its command."""
    if not (OPERATOR_VENV / "bin" / "flux-operator").exists():
        log("building .venv-operator (make operator-venv) so the operators run without the dev packages")
        subprocess.run(["make", "-s", "operator-venv"], cwd=REPO, check=True)
    return operator_command()


@dataclass
class Operator:
    """One replica of this checkout's operator, watching only the given namespaces."""

    layout: Layout
    namespaces: list[str]
    label: str
    extra: tuple[str, ...] = ()
    kubeconfig: Path | None = None  # default: the cluster's; the counting proxy passes its own
    lease_id: str = ""
    command: tuple[str, ...] = ()  # default: this checkout's operator (operator_command())
    proc: subprocess.Popen | None = None
    metrics_port: int = 0
    health_port: int = 0
    log_path: Path = field(default=Path("/dev/null"))

    def start(self) -> "Operator":
        self.metrics_port, self.health_port = free_port(), free_port()
        self.log_path = self.layout.logs / f"operator-{self.label}.log"
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig or self.layout.kubeconfig)}
        if self.layout.real_node:  # runner pods from the example workflow image (hack/build-images.sh)
            env.setdefault("FLUX_RUNNER_IMAGE", "localhost/flux-examples:dev")
        # Each part has a Lease of its own unless it means to share one (failover).
        lease_id = self.lease_id or f"flux-bench-{self.label}"
        # Plain /metrics on loopback: HTTPS would need a token, and its TokenReviews would add to the
        # requests the counting proxy counts.
        argv = [*(self.command or operator_command()), "--metrics-port", str(self.metrics_port), "--no-metrics-secure",
                "--health-port", str(self.health_port), "--leader-election-id", lease_id,
                *(arg for ns in self.namespaces for arg in ("--namespace", ns)), *OPERATOR_EXTRA, *self.extra]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_until(self._healthy_or_dead, 90, f"operator {self.label} to answer /healthz", interval=0.2)
        return self

    def _healthy_or_dead(self) -> bool:
        if self.proc.poll() is not None:
            raise BenchError(f"operator {self.label} exited with {self.proc.returncode}; see {self.log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def metrics(self) -> dict[str, float]:
        """The unlabelled samples of /metrics (flux_leader, flux_api_requests, ...)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out

    def leading(self) -> bool:
        try:
            return self.metrics().get("flux_leader") == 1.0
        except (urllib.error.URLError, OSError):
            return False

    def api_requests(self) -> float:
        return self.metrics().get("flux_api_requests", float("nan"))

    def memory(self) -> dict[str, float]:
        return proc_status_mb(self.pid)

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=15)


@contextmanager
def running_operator(layout: Layout, namespaces: list[str], label: str, extra: Iterable[str] = (),
                     kubeconfig: Path | None = None) -> Iterator[Operator]:
    op = Operator(layout, namespaces, label, tuple(extra), kubeconfig)
    try:
        yield op.start()
    finally:
        op.stop()


# --- a counting proxy: every request the operator makes, by verb and resource --------------------

@dataclass
class Request:
    at: float  # time.monotonic() when it arrived
    method: str
    resource: str  # e.g. pods, executions/status, leases, events
    kind: str  # write, read (get or list), watch
    status: int = 0


def classify(method: str, path_qs: str) -> tuple[str, str]:
    """(resource[/subresource], write|read|watch) of one API request."""
    parts = urlsplit(path_qs)
    segments = [s for s in parts.path.split("/") if s]
    query = parse_qs(parts.query)
    if segments[:1] == ["api"]:
        rest = segments[2:]  # /api/v1/...
    elif segments[:1] == ["apis"]:
        rest = segments[3:]  # /apis/group/version/...
    else:
        rest = []
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    resource = "/".join([rest[0]] + rest[2:3]) if rest else (parts.path or "/")
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        return resource, "write"
    watching = query.get("watch", ["false"])[0].lower() in ("true", "1")
    return resource, "watch" if watching else "read"


_HOP_HEADERS = {"host", "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                "upgrade", "content-length"}


class CountingProxy:
    """Plain HTTP on 127.0.0.1 in, the cluster's TLS apiserver (as admin) out; notes every request.

    The operator is given a kubeconfig pointing here. Watches stream through unchanged.
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.port = free_port()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counting-proxy", daemon=True)
        self.kubeconfig = layout.root / f"proxy-{self.port}.kubeconfig"

    def start(self) -> "CountingProxy":
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
            "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy", "namespace": "default"}}],
        }))
        self._thread.start()
        if not self._ready.wait(20):
            raise BenchError("the counting proxy did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()

    async def _serve(self) -> None:
        import aiohttp
        from aiohttp import web

        ctx = ssl.create_default_context(cafile=str(self.layout.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.layout.pki / "admin.crt"), str(self.layout.pki / "admin.key"))
        self._session = aiohttp.ClientSession(
            auto_decompress=False, connector=aiohttp.TCPConnector(ssl=ctx, limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        upstream = self.layout.server

        async def handle(request: web.Request) -> web.StreamResponse:
            resource, kind = classify(request.method, request.path_qs)
            entry = Request(time.monotonic(), request.method, resource, kind)
            with self._lock:
                self.requests.append(entry)
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
            async with self._session.request(request.method, upstream + request.path_qs, data=body or None,
                                             headers=headers, allow_redirects=False) as up:
                entry.status = up.status
                response = web.StreamResponse(status=up.status, reason=up.reason, headers={
                    k: v for k, v in up.headers.items() if k.lower() not in _HOP_HEADERS})
                await response.prepare(request)
                try:
                    async for chunk in up.content.iter_any():
                        await response.write(chunk)
                    await response.write_eof()
                except (ConnectionResetError, aiohttp.ClientError, asyncio.CancelledError):
                    pass  # the operator hung up (a watch it restarts): nothing to forward any more
                return response

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handle)
        # A watch the operator drops must drop its upstream stream too, not wait for the server's timeout.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._ready.set()

    def mark(self) -> int:
        with self._lock:
            return len(self.requests)

    def since(self, mark: int, until: int | None = None) -> list[Request]:
        with self._lock:
            return list(self.requests[mark:until])

    def between(self, start: float, end: float) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if start <= r.at < end]

    def stop(self) -> None:
        async def close() -> None:
            await self._session.close()  # ends every upstream stream, so no handler waits on one
            await asyncio.wait_for(self._runner.cleanup(), 10)

        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=15)
            except (TimeoutError, asyncio.TimeoutError):
                pass  # a daemon thread: it goes with the process
            self._loop.call_soon_threadsafe(self._loop.stop)
        self.kubeconfig.unlink(missing_ok=True)


def tally(requests: Iterable[Request]) -> dict[str, int]:
    """Counts by 'kind verb resource', e.g. 'write PATCH executions/status'."""
    out: dict[str, int] = {}
    for r in requests:
        key = f"{r.kind} {r.method} {r.resource}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


# --- watches that note when each object reached each phase -----------------------------------------

class PhaseBook:
    """Watches every Execution of a namespace; notes, per name, when (monotonic and wall clock) each
    phase was first delivered. Survives watch expiry by resuming from the last resourceVersion."""

    def __init__(self, api: client.ApiClient, namespace: str, keep_objects: bool = False) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.keep_objects = keep_objects
        self.phase: dict[str, str | None] = {}
        self.first: dict[str, dict[str, tuple[float, float]]] = {}  # name -> phase -> (monotonic, wall)
        self.objects: dict[str, dict] = {}
        self.gone: set[str] = set()
        self._changed = threading.Condition()
        self._stopped = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name=f"phases-{namespace}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        version = None
        while not self._stopped.is_set():
            self._watch = watch.Watch()
            try:
                kwargs = {"resource_version": version} if version else {}
                for event in self._watch.stream(self.custom.list_namespaced_custom_object, GROUP, VERSION,
                                                self.namespace, PLURAL, timeout_seconds=1800, **kwargs):
                    now, wall = time.monotonic(), time.time()
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        version = None
                        break
                    meta = obj.get("metadata") or {}
                    name = meta.get("name")
                    version = meta.get("resourceVersion") or version
                    with self._changed:
                        if event["type"] == "DELETED":
                            self.gone.add(name)
                            self.phase.pop(name, None)
                            self.objects.pop(name, None)
                        else:
                            phase = (obj.get("status") or {}).get("phase")
                            self.phase[name] = phase
                            self.first.setdefault(name, {}).setdefault(phase, (now, wall))
                            if self.keep_objects or phase in TERMINAL:
                                self.objects[name] = obj
                        self._changed.notify_all()
            except (ApiException, HTTPError, OSError, ValueError):
                time.sleep(0.5)
            finally:
                self._watch.stop()

    def count(self, phases: Iterable[str], names: Iterable[str] | None = None) -> int:
        wanted = set(phases)
        with self._changed:
            if names is None:
                return sum(1 for p in self.phase.values() if p in wanted)
            return sum(1 for n in names if self.phase.get(n) in wanted)

    def wait_count(self, phases: Iterable[str], n: int, timeout: float, what: str,
                   names: Iterable[str] | None = None) -> float:
        """Waits until `n` executions (of `names`, or all) are in one of `phases`; returns monotonic()."""
        wanted = tuple(phases)
        name_list = list(names) if names is not None else None
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                have = (sum(1 for p in self.phase.values() if p in wanted) if name_list is None
                        else sum(1 for x in name_list if self.phase.get(x) in wanted))
                if have >= n:
                    return time.monotonic()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}: {have}/{n}; phases now "
                                     f"{self.histogram()}")
                self._changed.wait(min(left, 1.0))

    def wait_gone(self, names: Iterable[str], timeout: float) -> None:
        names = set(names)
        wait_until(lambda: names <= self.gone or not (names & set(self.phase)), timeout, "executions to be deleted",
                   interval=0.2)

    def histogram(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in list(self.phase.values()):
            out[str(p)] = out.get(str(p), 0) + 1
        return out

    def reached(self, name: str, phase: str) -> tuple[float, float] | None:
        with self._changed:
            return (self.first.get(name) or {}).get(phase)

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()


class PodBook:
    """Watches the pods of a namespace (optionally by label): phase, and when each was seen gone."""

    def __init__(self, api: client.ApiClient, namespace: str, selector: str = "") -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.selector = namespace, selector
        self.phase: dict[str, str] = {}
        self.running_at: dict[str, float] = {}
        self.gone_at: dict[str, float] = {}
        self._changed = threading.Condition()
        self._stopped = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name=f"pods-{namespace}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        version = None
        while not self._stopped.is_set():
            self._watch = watch.Watch()
            try:
                kwargs = {"resource_version": version} if version else {}
                for event in self._watch.stream(self.core.list_namespaced_pod, self.namespace,
                                                label_selector=self.selector, timeout_seconds=1800, **kwargs):
                    now = time.monotonic()
                    if event["type"] == "ERROR":
                        version = None
                        break
                    pod = event["object"]
                    name = pod.metadata.name
                    version = pod.metadata.resource_version or version
                    with self._changed:
                        if event["type"] == "DELETED":
                            self.phase.pop(name, None)
                            self.gone_at.setdefault(name, now)
                        else:
                            self.phase[name] = pod.status.phase
                            self.gone_at.pop(name, None)
                            if pod.status.phase == "Running":
                                self.running_at.setdefault(name, now)
                        self._changed.notify_all()
            except (ApiException, HTTPError, OSError, ValueError):
                time.sleep(0.5)
            finally:
                self._watch.stop()

    def wait(self, predicate: Callable[["PodBook"], bool], timeout: float, what: str) -> float:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}; pods now "
                                     f"{self.histogram()}")
                self._changed.wait(min(left, 1.0))
            return time.monotonic()

    def running(self) -> int:
        return sum(1 for p in self.phase.values() if p == "Running")

    def histogram(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in list(self.phase.values()):
            out[p] = out.get(p, 0) + 1
        return out

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()


# --- objects ----------------------------------------------------------------------------------------

def execution(name: str, workflow: str, input_: dict, grace: int, labels: dict | None = None,
              deadline: int | None = None) -> dict:
    spec = {"workflow": workflow, "input": input_, "gracePeriodSeconds": grace}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution",
            "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def create_executions(custom: client.CustomObjectsApi, namespace: str, bodies: list[dict], workers: int = 16) -> None:
    def create(body: dict) -> None:
        for attempt in range(5):
            try:
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
                return
            except ApiException as err:
                if err.status == 409:
                    return
                if err.status and err.status < 500 and err.status != 429:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise BenchError(f"could not create {body['metadata']['name']}")

    parallel(create, bodies, workers)


def patch_cancel(custom: client.CustomObjectsApi, namespace: str, name: str, reason: str = "bench") -> None:
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                          {"spec": {"cancel": {"reason": reason}}})


def kubectl(layout: Layout, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    # The kubectl of the cluster first on PATH; kubectl-flux (the plugin) from this virtualenv.
    env = {**os.environ, "KUBECONFIG": str(layout.kubeconfig),
           "PATH": f"{layout.bin}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    result = subprocess.run([str(layout.bin / "kubectl"), *args], env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise BenchError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result
