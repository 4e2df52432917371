"""What every part of the benchmark suite (bench/run.py) shares: the operator as a process, a
request-counting proxy in front of the API server, and small helpers (the watches that time phases: books.py).

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from flux_api import GROUP, PLURAL, VERSION
from fluxtest.namespaces import fresh_namespace
from fluxtest.operators import OperatorProcess
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.layout import Layout
from localcluster.nodes import choice

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

RUNNER_UID = 65532
# `make operator-venv`: the api and operator distributions alone, as the operator image has them. The
# dev venv also holds the `kubernetes` package (hack/, tests, this suite), which kopf imports when it
# is installed: ~40 MB that the operator in production never carries, and RSS is one of the figures.
OPERATOR_VENV = REPO / ".venv-operator"
TERMINAL = ("Cancelled", "Succeeded", "Failed")
# Flags given to every operator the suite starts (run.py --operator-args), e.g. "--qps 0" to see what
# the client-side rate limit costs. Empty: the operator's defaults, which the targets are about.
OPERATOR_EXTRA: list[str] = []


BENCH_LABELS = {"flux.dev/bench": "true"}


class BenchError(RuntimeError):
    pass



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

def bench_namespace(core: client.CoreV1Api, prefix: str = "bench", keep: bool = False):
    """A namespace of the benchmark's own (fluxtest.namespaces), watched by its operators by name."""
    return fresh_namespace(core, enabled=False, prefix=prefix, labels=BENCH_LABELS, keep=keep, timeout=60,
                           error=BenchError)


def install_crd(layout: Layout) -> None:
    """The CRDs, and the TenancyPolicy that names the kubeconfig's user as the operator."""
    kubectl = str(layout.bin / "kubectl")
    env = {**os.environ, "KUBECONFIG": str(layout.kubeconfig)}
    for args in (["apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds")],
                 ["wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}", f"crd/tenancypolicies.{GROUP}",
                  "--timeout=60s"]):
        subprocess.run([kubectl, *args], env=env, check=True, stdout=subprocess.DEVNULL)
    # The admission policies exempt the operator, which runs here as the kubeconfig's user.
    me = subprocess.run([kubectl, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"], env=env,
                        check=True, capture_output=True, text=True).stdout
    policy = subprocess.run([sys.executable, "-m", "flux_api.tenancy", "--operator", me], check=True,
                            capture_output=True, text=True).stdout
    subprocess.run([kubectl, "apply", "--server-side", "--force-conflicts", "-f", "-"], env=env, input=policy,
                   check=True, stdout=subprocess.DEVNULL, text=True)


# --- the operator as a process ----------------------------------------------------------------------

# The operator every part starts when run.py --operator-from REV says so (another commit's code); empty: this checkout's.
OPERATOR_FROM: list[str] = []


def operator_command() -> list[str]:
    """The operator-only venv's entry point; this interpreter's module (dev packages and all) without it."""
    if OPERATOR_FROM:
        return list(OPERATOR_FROM)
    exe = OPERATOR_VENV / "bin" / "flux-operator"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "flux_operator"]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def this_code() -> dict[str, Any]:
    """Which code a result measured: the commit, and whether the checkout had uncommitted changes."""
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", ".", ":!bench/data"))}


def operator_at(rev: str, keep: list) -> dict[str, Any]:
    """The operator of commit `rev`, run from a git archive of its api and operator with the operator venv's
    interpreter (same dependencies); `keep` holds the temporary tree alive for as long as it is needed."""
    python = OPERATOR_VENV / "bin" / "python"
    python = python if python.exists() else Path(sys.executable)
    tree = tempfile.TemporaryDirectory(prefix="flux-before-")
    keep.append(tree)
    archive = subprocess.run(["git", "archive", rev, "api", "operator"], cwd=REPO, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", tree.name], input=archive, check=True)
    path = f"PYTHONPATH={tree.name}/operator:{tree.name}/api"
    where = subprocess.run(["env", path, str(python), "-c", "import flux_operator; print(flux_operator.__file__)"],
                           check=True, capture_output=True, text=True).stdout.strip()
    if not where.startswith(tree.name):
        raise BenchError(f"the operator of {rev} would import {where}, not the archive of {rev}")
    return {"commit": git("rev-parse", rev), "dirty": False, "command": ["env", path, str(python), "-m", "flux_operator"]}


def ensure_operator_venv() -> list[str]:
    """Builds .venv-operator if it is missing (the Makefile's bench targets already did); its command."""
    if not (OPERATOR_VENV / "bin" / "flux-operator").exists():
        log("building .venv-operator (make operator-venv) so the operators run without the dev packages")
        subprocess.run(["make", "-s", "operator-venv"], cwd=REPO, check=True)
    return operator_command()


def operator_codes(before: str | None, keep: list, before_first: bool = False) -> dict[str, dict[str, Any]]:
    """The operator codes a part compares: this checkout ('after'), and with `before` that commit's too."""
    codes = {"after": {**this_code(), "command": operator_command()}}
    if before:
        earlier = {"before": operator_at(before, keep)}
        codes = {**earlier, **codes} if before_first else {**codes, **earlier}
    return codes


class Operator(OperatorProcess):
    """One replica of this checkout's operator (fluxtest.operators), watching only the given namespaces, with
    a Lease of its own unless it means to share one (failover)."""

    def __init__(self, layout: Layout, namespaces: list[str], label: str, extra: tuple[str, ...] = (),
                 kubeconfig: Path | None = None, lease_id: str = "", command: tuple[str, ...] = ()) -> None:
        env = {**os.environ, "KUBECONFIG": str(kubeconfig or layout.kubeconfig)}  # the counting proxy has its own
        image = choice.of(layout).runner_image
        if image:  # a node that runs images: runner pods from the example workflow image (hack/build-images.sh)
            env.setdefault("FLUX_RUNNER_IMAGE", image)
        super().__init__(env, layout.logs, list(command) or None, base_args=(),
                         log_path=layout.logs / f"operator-{label}.log")
        self.layout, self.namespaces, self.label, self.extra = layout, namespaces, label, extra
        self.lease_id = lease_id or f"flux-bench-{label}"

    def start(self) -> "Operator":
        # Resolved only now: padded_memory --operator swaps operator_command() for another checkout's.
        self.command = self.command or operator_command()
        # Plain /metrics on loopback: HTTPS would need a token, and its TokenReviews would add to the
        # requests the counting proxy counts.
        super().start("--no-metrics-secure", "--leader-election-id", self.lease_id,
                      *(arg for ns in self.namespaces for arg in ("--namespace", ns)), *OPERATOR_EXTRA, *self.extra,
                      timeout=90, interval=0.2, error=BenchError)
        return self

    def leading(self) -> bool:
        try:
            return self.samples().get("flux_leader") == 1.0
        except (urllib.error.URLError, OSError):
            return False

    def api_requests(self) -> float:
        return self.samples().get("flux_api_requests", float("nan"))

    def memory(self) -> dict[str, float]:
        return proc_status_mb(self.pid)


@contextmanager
def running_operator(layout: Layout, namespaces: list[str], label: str, extra: Iterable[str] = (),
                     kubeconfig: Path | None = None) -> Iterator[Operator]:
    op = Operator(layout, namespaces, label, tuple(extra), kubeconfig)
    try:
        yield op.start()
    finally:
        op.stop()
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
        for attempt in range(10):
            try:
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
                return
            except ApiException as err:
                if err.status == 409:
                    return
                # Just after the CRDs are installed, the admission policies may not see the TenancyPolicy kind yet.
                settling = err.status == 422 and "paramKind" in str(err.body)
                if err.status and err.status < 500 and err.status != 429 and not settling:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise BenchError(f"could not create {body['metadata']['name']}")

    parallel(create, bodies, workers)


def patch_cancel(custom: client.CustomObjectsApi, namespace: str, name: str, reason: str = "bench") -> None:
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                          {"spec": {"cancel": {"reason": reason}}})


def kubectl(layout: Layout, *args: str, timeout: float = 300, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess:
    # The kubectl of the cluster first on PATH; kubectl-flux (the plugin) from this virtualenv.
    env = {**os.environ, "KUBECONFIG": str(layout.kubeconfig),
           "PATH": f"{layout.bin}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    result = subprocess.run([str(layout.bin / "kubectl"), *args], env=env, capture_output=True, text=True,
                            timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise BenchError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result
