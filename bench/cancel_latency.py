"""Cancel-latency benchmark: from `spec.cancel` to the runner's SIGTERM, and to phase Cancelled.

Each of N rounds measures, one right after the other:
  cancel  an Execution of flux_examples.longrun (one-hour steps, so only the signal can stop it) runs
          until its runner logged that it runs the workflow (its SIGTERM handler is in place; step 1
          starts right after); t0 is taken right before the PATCH of spec.cancel.
          patch->SIGTERM:   t0 until this process first reads "received SIGTERM" in the runner's
                            container log (polled every 5 ms; the log's own timestamps have whole seconds).
          patch->Cancelled: t0 until a watch on the Execution delivers phase Cancelled.
  floor   a bare pod on the same process node, same user and grace period, running a tiny Python
          that prints a line on SIGTERM; t0 right before the DELETE of the pod, stopped like the
          first measure. It is what Kubernetes alone costs: the operator's share is the difference.

Uses the cluster at $KUBECONFIG (a local cluster of hack/localcluster: the runner logs are read from
its process node) or brings up its own in .cluster-bench/, and always runs its own operator, limited
to a fresh namespace. Raw samples and the summary go to bench/results/cancel_latency-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from flux_api import GROUP, PLURAL, VERSION
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from localcluster import cluster as localcluster
from localcluster.kube import api_client
from localcluster.layout import Layout
from localcluster.procs import free_port, stop
from urllib3.exceptions import HTTPError

SIGTERM_MARK = "received SIGTERM"
# Logged once the runner's SIGTERM handler is in place, right before the workflow's first step.
# (Step starts are logged at DEBUG only, so they cannot be the mark.)
FIRST_STEP_MARK = "flux.runner: running flux_examples.longrun:main"
FLOOR_READY_MARK = "floor: ready"
LOG_POLL_SECONDS = 0.005
RUNNER_UID = 65532  # the user the operator gives runner pods
TERMINAL = ("Cancelled", "Succeeded", "Failed")
METRICS = ("floor", "patch_to_sigterm", "patch_to_cancelled")
LABELS = {"floor": "floor: delete pod -> SIGTERM", "patch_to_sigterm": "patch -> SIGTERM",
          "patch_to_cancelled": "patch -> Cancelled"}

# The floor's container: the least a process can do to notice SIGTERM.
FLOOR_PROGRAM = f"""
import signal, sys, time
def on_term(signum, frame):
    print("floor: {SIGTERM_MARK}", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("{FLOOR_READY_MARK}", flush=True)
while True:
    time.sleep(3600)
"""


class BenchError(RuntimeError):
    pass


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return value


# --- the cluster, the namespace, the operator ----------------------------------------------------

@contextmanager
def bench_cluster() -> Iterator[Layout]:
    """The cluster at $KUBECONFIG, or one of our own that is taken down again at the end."""
    if os.environ.get("KUBECONFIG"):
        kubeconfig = Path(os.environ["KUBECONFIG"]).resolve()
        layout = Layout.load(kubeconfig.parent)
        if layout is None or not localcluster.is_up(layout):
            raise BenchError(f"KUBECONFIG={kubeconfig} is not a running local cluster (python -m localcluster up); "
                             "the runner logs are read from its process node")
        yield layout
        return
    root = REPO / ".cluster-bench"
    was_up = localcluster.is_up(Layout.load(root))
    layout = localcluster.up(root)
    try:
        yield layout
    finally:
        if not was_up:
            localcluster.down(root)


def install_crd(layout: Layout) -> None:
    kubectl = str(layout.bin / "kubectl")
    env = {**os.environ, "KUBECONFIG": str(layout.kubeconfig)}
    for args in (["apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds")],
                 ["wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}", "--timeout=60s"]):
        subprocess.run([kubectl, *args], env=env, check=True, stdout=subprocess.DEVNULL)


@contextmanager
def bench_namespace(core: client.CoreV1Api, keep: bool) -> Iterator[str]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
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
        # Pods are refused until the controller-manager has made the default ServiceAccount.
        wait_until(default_account_exists, 30, f"the default ServiceAccount in {name}")
        yield name
    finally:
        if keep:
            print(f"keeping namespace {name}")
        else:
            core.delete_namespace(name, propagation_policy="Background")


@contextmanager
def running_operator(layout: Layout, namespace: str) -> Iterator[Path]:
    """The operator of this checkout, watching only the bench namespace."""
    health_port = free_port()
    log_path = layout.logs / f"operator-bench-{namespace}.log"
    env = {**os.environ, "KUBECONFIG": str(layout.kubeconfig)}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "flux_operator", "--namespace", namespace,
                                 "--metrics-port", "0", "--health-port", str(health_port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"the operator exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=1) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_until(healthy, 60, "the operator's liveness endpoint", interval=0.2)
        yield log_path
    finally:
        stop(proc, timeout=15)


# --- observing: a container log and an Execution's phases ----------------------------------------

class LogTail:
    """Reads a container log as it grows; the file appears only once the container has started."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = ""
        self._file = None

    def _read(self) -> str:
        if self._file is None:
            try:
                self._file = open(self.path, encoding="utf-8", errors="replace")
            except FileNotFoundError:
                return self.text
        self.text += self._file.read()
        return self.text

    def wait_for(self, mark: str, timeout: float, interval: float = LOG_POLL_SECONDS) -> float:
        """perf_counter() of the first read that contains `mark`."""
        deadline = time.perf_counter() + timeout
        while True:
            if mark in self._read():
                return time.perf_counter()
            if time.perf_counter() > deadline:
                raise BenchError(f"{mark!r} not in {self.path} after {timeout:.0f}s; last lines:\n"
                                 + "\n".join(self.text.splitlines()[-5:]))
            time.sleep(interval)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class PhaseWatch:
    """Watches one Execution and notes when each phase was first delivered (perf_counter())."""

    def __init__(self, custom: client.CustomObjectsApi, namespace: str, name: str) -> None:
        self.name = name
        self.seen: dict[str, float] = {}
        self.latest: dict = {}
        self.error: Exception | None = None
        self._changed = threading.Condition()
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(custom, namespace), daemon=True)
        self._thread.start()

    def _run(self, custom: client.CustomObjectsApi, namespace: str) -> None:
        try:
            for event in self._watch.stream(custom.list_namespaced_custom_object, GROUP, VERSION, namespace,
                                            PLURAL, field_selector=f"metadata.name={self.name}",
                                            timeout_seconds=600):
                delivered = time.perf_counter()
                phase = (event["object"].get("status") or {}).get("phase")
                with self._changed:
                    self.latest = event["object"]
                    self.seen.setdefault(phase, delivered)
                    self._changed.notify_all()
                if phase in TERMINAL:
                    return
        except (ApiException, HTTPError, OSError) as err:
            with self._changed:
                self.error = err
                self._changed.notify_all()
        finally:
            self._watch.stop()

    def wait_for(self, phase: str, timeout: float) -> float:
        def reached() -> bool:
            return phase in self.seen or self.error is not None or any(p in self.seen for p in TERMINAL)

        with self._changed:
            self._changed.wait_for(reached, timeout)
            if phase in self.seen:
                return self.seen[phase]
            ended = [p for p in TERMINAL if p in self.seen]
            raise BenchError(f"execution {self.name} never reached {phase}: "
                             + (f"watch failed: {self.error}" if self.error else
                                f"it ended {ended[0]}" if ended else f"not within {timeout:.0f}s"))


# --- one round: a cancel and a floor --------------------------------------------------------------

@dataclass
class Bench:
    core: client.CoreV1Api
    custom: client.CustomObjectsApi
    namespace: str
    node_logs: Path
    grace: int

    def log_of(self, pod_name: str, container: str) -> LogTail:
        uid = self.core.read_namespaced_pod(pod_name, self.namespace).metadata.uid
        return LogTail(self.node_logs / f"{self.namespace}_{pod_name}_{uid[:8]}_{container}.log")

    def measure_cancel(self, index: int) -> dict:
        name = f"cancel-{index}"
        phases = PhaseWatch(self.custom, self.namespace, name)
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution", "metadata": {"name": name},
            "spec": {"workflow": "flux_examples.longrun:main", "input": {"steps": 2, "stepSeconds": 3600},
                     "gracePeriodSeconds": self.grace}})
        phases.wait_for("Running", 60)
        log = self.log_of(phases.latest["status"]["podName"], "runner")
        try:
            log.wait_for(FIRST_STEP_MARK, 60, interval=0.02)  # the SIGTERM handler is in place by now
            t0 = time.perf_counter()
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name,
                                                       {"spec": {"cancel": {"reason": "bench"}}})
            sigterm = log.wait_for(SIGTERM_MARK, self.grace + 30)
        finally:
            log.close()
        cancelled = phases.wait_for("Cancelled", self.grace + 30)
        outcome = (phases.latest["status"].get("cancellation") or {}).get("outcome")
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        return {"patch_to_sigterm": sigterm - t0, "patch_to_cancelled": cancelled - t0, "outcome": outcome}

    def measure_floor(self, index: int) -> float:
        name = f"floor-{index}"
        container = {"name": "runner", "image": "flux-bench-floor", "command": [sys.executable, "-c", FLOOR_PROGRAM],
                     "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}]}
        self.core.create_namespaced_pod(self.namespace, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "OnFailure", "terminationGracePeriodSeconds": self.grace,
                     "enableServiceLinks": False, "automountServiceAccountToken": False,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": RUNNER_UID, "runAsGroup": RUNNER_UID},
                     "containers": [container]}})
        wait_until(lambda: self.pod_phase(name) == "Running", 60, f"pod {name} to run")
        log = self.log_of(name, "runner")
        try:
            log.wait_for(FLOOR_READY_MARK, 60, interval=0.02)
            t0 = time.perf_counter()
            self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=self.grace)
            sigterm = log.wait_for(SIGTERM_MARK, self.grace + 30)
        finally:
            log.close()
        wait_until(lambda: self.pod_phase(name) is None, self.grace + 30, f"pod {name} to be gone")
        return sigterm - t0

    def pod_phase(self, name: str) -> str | None:
        try:
            return self.core.read_namespaced_pod(name, self.namespace).status.phase
        except ApiException as err:
            if err.status == 404:
                return None
            raise


def run_rounds(bench: Bench, n: int) -> dict[str, list]:
    """Alternates a cancel and a floor, so both see the same state of the machine."""
    samples: dict[str, list] = {metric: [] for metric in METRICS}
    samples["outcome"] = []
    for index in range(1, n + 1):
        cancel = bench.measure_cancel(index)
        floor = bench.measure_floor(index)
        for metric in METRICS[1:]:
            samples[metric].append(cancel[metric])
        samples["floor"].append(floor)
        samples["outcome"].append(cancel["outcome"])
        print(f"  [{index:>3}/{n}] patch->SIGTERM {cancel['patch_to_sigterm'] * 1e3:7.1f} ms   "
              f"patch->Cancelled {cancel['patch_to_cancelled'] * 1e3:7.1f} ms   "
              f"floor {floor * 1e3:6.1f} ms   {cancel['outcome']}", flush=True)
    return samples


# --- summary ---------------------------------------------------------------------------------------

def summarize(seconds: list[float]) -> dict[str, float]:
    """Milliseconds; percentiles interpolate linearly between the sorted samples."""
    ms = [s * 1e3 for s in seconds]
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "mean": statistics.fmean(ms),
            "min": min(ms), "max": max(ms)}


def ratios_to_floor(summary: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    floor = summary["floor"]
    return {metric: {p: summary[metric][p] / floor[p] for p in ("p50", "p95", "p99")} for metric in METRICS[1:]}


def print_table(summary: dict, ratios: dict, n: int, grace: int) -> None:
    columns = ("p50", "p95", "p99", "mean", "min", "max")
    print(f"\ncancel latency in ms, N={n}, grace period {grace}s")
    print(f"{'':30}" + "".join(f"{c:>9}" for c in columns))
    for metric in METRICS:
        print(f"{LABELS[metric]:30}" + "".join(f"{summary[metric][c]:9.1f}" for c in columns))
    print()
    for metric in METRICS[1:]:
        label = f"{LABELS[metric]} / floor"
        print(f"{label:30}" + "".join(f"{ratios[metric][c]:8.2f}x" for c in columns[:3]))


def write_results(samples: dict, summary: dict, ratios: dict, config: dict) -> Path:
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"cancel_latency-{stamp}.json"
    raw = {metric: [round(s * 1e3, 3) for s in samples[metric]] for metric in METRICS}
    path.write_text(json.dumps({
        "benchmark": "cancel_latency", "finishedAt": stamp, "config": config,
        "samplesMs": raw, "outcomes": samples["outcome"],
        "summaryMs": {m: {k: round(v, 3) for k, v in s.items()} for m, s in summary.items()},
        "ratiosToFloor": {m: {k: round(v, 3) for k, v in r.items()} for m, r in ratios.items()},
    }, indent=2) + "\n")
    return path


# --- main --------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Cancel latency of Flux Executions against a bare-pod floor.")
    p.add_argument("--n", type=int, default=50, help="rounds: each one cancel and one floor sample (default 50)")
    p.add_argument("--grace", type=int, default=30,
                   help="gracePeriodSeconds of the Executions and of the floor pods' deletion (default 30)")
    p.add_argument("--keep", action="store_true", help="keep the bench namespace (and its objects) afterwards")
    args = p.parse_args(argv)
    if args.n < 2:
        p.error("--n must be at least 2 (percentiles need two samples)")
    if not 1 <= args.grace <= 3600:
        p.error("--grace must be between 1 and 3600 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Runner pods find `flux-runner` on the PATH of whoever started the process node.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        with bench_cluster() as layout:
            install_crd(layout)
            with api_client(layout.kubeconfig) as api:
                core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
                with bench_namespace(core, args.keep) as namespace, running_operator(layout, namespace) as op_log:
                    print(f"cluster {layout.root}, namespace {namespace}, operator log {op_log}")
                    bench = Bench(core, custom, namespace, layout.root / "node" / "logs", args.grace)
                    samples = run_rounds(bench, args.n)
    except BenchError as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 1
    summary = {metric: summarize(samples[metric]) for metric in METRICS}
    ratios = ratios_to_floor(summary)
    print_table(summary, ratios, args.n, args.grace)
    not_graceful = [o for o in samples["outcome"] if o != "Graceful"]
    if not_graceful:
        print(f"\nwarning: {len(not_graceful)} cancels were not Graceful: {sorted(set(map(str, not_graceful)))}")
    config = {"n": args.n, "grace": args.grace, "cluster": str(layout.root), "logPollSeconds": LOG_POLL_SECONDS}
    print(f"\nraw samples and summary: {write_results(samples, summary, ratios, config).relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
