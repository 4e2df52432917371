"""Cancel-latency benchmark: from `spec.cancel` to the runner's SIGTERM, and to phase Cancelled.

Each of N rounds measures, one right after the other:
  cancel  an Execution of flux_examples.longrun (one-hour steps, so only the signal can stop it) runs
          until its runner logged that it runs the workflow (its SIGTERM handler is in place; step 1
          starts right after); t0 is taken right before the PATCH of spec.cancel.
          patch->SIGTERM:   t0 until "received SIGTERM" arrives in the runner's container log, followed
                            through the API server (`kubectl logs -f`; the log's own timestamps have
                            whole seconds).
          patch->Cancelled: t0 until a watch on the Execution delivers phase Cancelled.
  floor   a bare pod on the same node, same user and grace period, running a tiny Python that prints
          a line on SIGTERM (on the real node from localhost/flux-runner:dev); t0 right before the
          DELETE of the pod, stopped like the first measure. It is what Kubernetes alone costs: the
          operator's share is the difference.

Uses the local cluster at $KUBECONFIG (hack/localcluster, either node) or brings up its own in
$FLUX_BENCH_DIR (default .cluster-bench/; FLUX_NODE=real for the real node), and always runs its own
operator, limited to a fresh namespace. Raw samples and the summary go to
bench/results/cancel_latency-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from flux_api import GROUP, PLURAL, VERSION
from fluxtest.operators import OperatorProcess
from fluxtest.podlogs import LogFollower
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import cluster as localcluster
from localcluster.kube import api_client
from localcluster.layout import Layout
from localcluster.nodes import choice
from localcluster.nodes.protocol import Node
from localcluster.probes import wait_for

from bench.benchkit import bench_namespace, install_crd
from bench.observe import BenchError, PhaseWatch  # noqa: F401 - BenchError is part of this module's API

SIGTERM_MARK = "received SIGTERM"
# Logged once the runner's SIGTERM handler is in place, right before the workflow's first step.
# (Step starts are logged at DEBUG only, so they cannot be the mark.)
FIRST_STEP_MARK = "flux.runner: running flux_examples.longrun:main"
FLOOR_READY_MARK = "floor: ready"
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


def python_container(node: Node, program: str, **fields) -> dict:
    """A container running `program` in Python: on a node that runs images from our runner image (its
    python3); on the process node, which ignores images, with this interpreter."""
    if node.python_image:
        return {"image": node.python_image, "imagePullPolicy": "Never", "command": ["python3", "-c", program],
                **fields}
    return {"image": "flux-bench-floor", "command": [sys.executable, "-c", program], **fields}



# --- the cluster, the namespace, the operator ----------------------------------------------------

@contextmanager
def bench_cluster() -> Iterator[Layout]:
    """The cluster at $KUBECONFIG, or one of our own that is taken down again at the end."""
    if os.environ.get("KUBECONFIG"):
        kubeconfig = Path(os.environ["KUBECONFIG"]).resolve()
        layout = Layout.load(kubeconfig.parent)
        if layout is None or not localcluster.is_up(layout):
            raise BenchError(f"KUBECONFIG={kubeconfig} is not a running local cluster (python -m localcluster up)")
        yield layout
        return
    root = Path(os.environ.get("FLUX_BENCH_DIR", REPO / ".cluster-bench")).resolve()
    was_up = localcluster.is_up(Layout.load(root))
    layout = localcluster.up(root)
    try:
        yield layout
    finally:
        if not was_up:
            localcluster.down(root)


@contextmanager
def running_operator(layout: Layout, namespace: str) -> Iterator[Path]:
    """The operator of this checkout (this interpreter's), watching only the bench namespace, no /metrics."""
    env = {**os.environ, "KUBECONFIG": str(layout.kubeconfig)}
    image = choice.of(layout).runner_image
    if image:
        env.setdefault("FLUX_RUNNER_IMAGE", image)
    op = OperatorProcess(env, layout.logs, [sys.executable, "-m", "flux_operator"], base_args=(),
                         log_path=layout.logs / f"operator-bench-{namespace}.log", serve_metrics=False)
    try:
        op.start("--namespace", namespace, timeout=60, interval=0.2, error=BenchError)
        yield op.log_path
    finally:
        op.stop()


# --- one round: a cancel and a floor --------------------------------------------------------------

@dataclass
class Bench:
    core: client.CoreV1Api
    custom: client.CustomObjectsApi
    namespace: str
    node: Node
    grace: int

    def log_of(self, pod_name: str, container: str) -> LogFollower:
        """The container's log through the API server, as it arrives (followed from its first 400 on)."""
        return LogFollower(self.core, self.namespace, pod_name, container, wait_start=False)

    def settle(self) -> None:
        """A kubelet's pod worker, right after it started a container, waits for its next PLEG relist before
        it acts on the pod again: each t0 comes once the pod is settled as any pod running a while."""
        time.sleep(self.node.settle_seconds)

    def measure_cancel(self, index: int) -> dict:
        name = f"cancel-{index}"
        phases = PhaseWatch(self.custom, self.namespace, name)
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution", "metadata": {"name": name},
            "spec": {"workflow": "flux_examples.longrun:main", "input": {"steps": 2, "stepSeconds": 3600},
                     "gracePeriodSeconds": self.grace}})
        phases.wait_for("Running", 60)
        log = self.log_of(phases.latest["status"]["podName"], "runner")
        log.arrival(FIRST_STEP_MARK, 60, BenchError)  # the SIGTERM handler is in place by now
        self.settle()
        t0 = time.perf_counter()
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name,
                                                   {"spec": {"cancel": {"reason": "bench"}}})
        sigterm = log.arrival(SIGTERM_MARK, self.grace + 30, BenchError)
        cancelled = phases.wait_for("Cancelled", self.grace + 30)
        outcome = (phases.latest["status"].get("cancellation") or {}).get("outcome")
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        return {"patch_to_sigterm": sigterm - t0, "patch_to_cancelled": cancelled - t0, "outcome": outcome}

    def measure_floor(self, index: int) -> float:
        name = f"floor-{index}"
        container = python_container(self.node, FLOOR_PROGRAM, name="runner",
                                     env=[{"name": "PYTHONUNBUFFERED", "value": "1"}])
        self.core.create_namespaced_pod(self.namespace, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "OnFailure", "terminationGracePeriodSeconds": self.grace,
                     "enableServiceLinks": False, "automountServiceAccountToken": False,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": RUNNER_UID, "runAsGroup": RUNNER_UID},
                     "containers": [container]}})
        wait_for(lambda: self.pod_phase(name) == "Running", 60, 0.05, f"pod {name} to run", BenchError)
        log = self.log_of(name, "runner")
        log.arrival(FLOOR_READY_MARK, 60, BenchError)
        self.settle()
        t0 = time.perf_counter()
        self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=self.grace)
        sigterm = log.arrival(SIGTERM_MARK, self.grace + 30, BenchError)
        wait_for(lambda: self.pod_phase(name) is None, self.grace + 30, 0.05, f"pod {name} to be gone", BenchError)
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


def print_table(summary: dict, ratios: dict, n: int, grace: int, node: str = "process") -> None:
    columns = ("p50", "p95", "p99", "mean", "min", "max")
    print(f"\ncancel latency in ms on the {node} node, N={n}, grace period {grace}s")
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
                with bench_namespace(core, keep=args.keep) as namespace, running_operator(layout, namespace) as op_log:
                    print(f"cluster {layout.root}, namespace {namespace}, operator log {op_log}")
                    bench = Bench(core, custom, namespace, choice.of(layout), args.grace)
                    samples = run_rounds(bench, args.n)
    except BenchError as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 1
    summary = {metric: summarize(samples[metric]) for metric in METRICS}
    ratios = ratios_to_floor(summary)
    node = layout.node
    print_table(summary, ratios, args.n, args.grace, node)
    not_graceful = [o for o in samples["outcome"] if o != "Graceful"]
    if not_graceful:
        print(f"\nwarning: {len(not_graceful)} cancels were not Graceful: {sorted(set(map(str, not_graceful)))}")
    config = {"n": args.n, "grace": args.grace, "cluster": str(layout.root), "node": node,
              "logs": "followed through the API server"}
    print(f"\nraw samples and summary: {write_results(samples, summary, ratios, config).relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
