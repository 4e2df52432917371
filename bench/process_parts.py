"""The figures measured on the process node: real runner processes, real SIGTERMs.

Each run_<part>(layout, api, args) makes a fresh namespace and its own operator (own Lease) and
returns a dict of raw figures; bench/report.py turns them into rows with ratios and targets.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

from bench import cancel_latency as cl
from flux_api import GROUP, PLURAL, VERSION
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.layout import Layout
from localcluster.nodes import choice
from localcluster.nodes.protocol import Node
from localcluster.probes import wait_for

from bench.benchkit import (REPO, RUNNER_UID, BenchError, Operator, bench_namespace, create_executions, execution,
                            kubectl, log, parallel, patch_cancel, running_operator, summary)
from bench.books import PhaseBook, PodBook
from bench.proxy import CountingProxy, tally

LONGRUN = "flux_examples.longrun:main"
ONE_LONG_STEP = {"steps": 1, "stepSeconds": 3600}
FIRST_STEP = cl.FIRST_STEP_MARK  # the runner runs the workflow, its SIGTERM handler in place
RUNNING_MARK = "flux.runner: running "  # the same, for any workflow
WORKFLOWS_DIR = REPO / "bench" / "workflows"

# The baselines' container for the 200-pod figures: it imports what the runner imports (so starting
# it costs the node about what starting a runner does), then waits for SIGTERM and exits at once.
COMPARABLE_PROGRAM = "import flux_runner.main\n" + cl.FLOOR_PROGRAM


# --- helpers -------------------------------------------------------------------------------------

def _pod_spec(grace: int, program: str, restart: str, node: Node) -> dict:
    env = [{"name": "PYTHONUNBUFFERED", "value": "1"}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}]
    return {"restartPolicy": restart, "terminationGracePeriodSeconds": grace,
            "enableServiceLinks": False, "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": RUNNER_UID, "runAsGroup": RUNNER_UID},
            "containers": [cl.python_container(node, program, name="runner", env=env)]}


def _job(name: str, grace: int, program: str, labels: dict, node: Node) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels},
            "spec": {"backoffLimit": 0, "completions": 1, "parallelism": 1,
                     "template": {"metadata": {"labels": labels},
                                  "spec": _pod_spec(grace, program, "Never", node)}}}


def _logs_with(layout: Layout, namespace: str, mark: str, pod_prefix: str = "") -> int:
    """How many runner container logs of the namespace (pods named pod_prefix*) contain `mark`."""
    found = 0
    for path in (layout.root / "node" / "logs").glob(f"{namespace}_{pod_prefix}*_runner.log"):
        try:
            if mark in path.read_text(errors="replace"):
                found += 1
        except OSError:
            pass
    return found


def _wait_logs(layout: Layout, namespace: str, mark: str, n: int, timeout: float, pod_prefix: str = "") -> None:
    wait_for(lambda: _logs_with(layout, namespace, mark, pod_prefix) >= n,
             timeout, 0.25, f"{n} runner logs in {namespace} with {mark!r}", BenchError)


def _outcomes(book: PhaseBook, names) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in names:
        status = (book.objects.get(name) or {}).get("status") or {}
        key = f"{status.get('phase')}/{(status.get('cancellation') or {}).get('outcome')}"
        out[key] = out.get(key, 0) + 1
    return out


def _delete_all_executions(layout: Layout, namespace: str, book: PhaseBook, timeout: float = 300) -> None:
    kubectl(layout, "delete", f"{PLURAL}.{GROUP}", "--all", "-n", namespace, "--wait=false")
    wait_for(lambda: not book.phase, timeout, 0.5, f"every execution in {namespace} to be deleted", BenchError)


def _wait_no_pods(core: client.CoreV1Api, namespace: str, timeout: float = 300) -> None:
    wait_for(lambda: not core.list_namespaced_pod(namespace).items,
             timeout, 0.5, f"no pods left in {namespace}", BenchError)


# --- 1. cancel latency: patch->SIGTERM and patch->Cancelled against their baselines --------------------

def measure_job_delete(bench: cl.Bench, batch: client.BatchV1Api, index: int) -> float:
    """A Job whose pod runs the floor program: DELETE (foreground propagation) -> its pod gone."""
    name = f"job-{index}"
    batch.create_namespaced_job(bench.namespace, _job(name, bench.grace, cl.FLOOR_PROGRAM, {"bench-job": name},
                                                      bench.node))
    pods = PodBook(bench.core.api_client, bench.namespace, f"bench-job={name}")
    try:
        pods.wait(lambda b: b.running() == 1, 60, f"the pod of job {name} to run")
        pod_name = next(iter(pods.phase))
        bench.log_of(pod_name, "runner").arrival(cl.FLOOR_READY_MARK, 60, BenchError)
        bench.settle()
        t0 = time.monotonic()
        batch.delete_namespaced_job(name, bench.namespace, propagation_policy="Foreground")
        gone = pods.wait(lambda b: pod_name in b.gone_at, bench.grace + 30, f"the pod of job {name} to be gone")
        gone = pods.gone_at[pod_name]
    finally:
        pods.stop()
    wait_for(lambda: _absent(lambda: batch.read_namespaced_job(name, bench.namespace)),
             60, 0.05, f"job {name} gone", BenchError)
    return gone - t0


def _absent(read) -> bool:
    try:
        read()
    except ApiException as err:
        if err.status == 404:
            return True
        raise
    return False


def run_cancel(layout: Layout, api: client.ApiClient, args) -> dict:
    core, custom, batch = client.CoreV1Api(api), client.CustomObjectsApi(api), client.BatchV1Api(api)
    samples: dict[str, list] = {"patch_to_sigterm": [], "patch_to_cancelled": [], "floor": [], "job_delete": [],
                                "outcome": []}
    with bench_namespace(core, "cancel") as ns, running_operator(layout, [ns], f"cancel-{ns}") as op:
        log(f"cancel: namespace {ns}, operator log {op.log_path}")
        bench = cl.Bench(core, custom, ns, choice.of(layout), args.grace)
        for i in range(1, args.rounds + 1):
            c = bench.measure_cancel(i)
            f = bench.measure_floor(i)
            j = measure_job_delete(bench, batch, i)
            samples["patch_to_sigterm"].append(c["patch_to_sigterm"])
            samples["patch_to_cancelled"].append(c["patch_to_cancelled"])
            samples["outcome"].append(c["outcome"])
            samples["floor"].append(f)
            samples["job_delete"].append(j)
            log(f"  [{i:>2}/{args.rounds}] patch->SIGTERM {c['patch_to_sigterm'] * 1e3:7.1f} ms  "
                f"pod delete->SIGTERM {f * 1e3:6.1f} ms  patch->Cancelled {c['patch_to_cancelled'] * 1e3:7.1f} ms  "
                f"job delete->pod gone {j * 1e3:7.1f} ms  {c['outcome']}")
    ms = {k: [round(x * 1e3, 3) for x in v] for k, v in samples.items() if k != "outcome"}
    source = f"{layout.node} node"
    return {"source": source, "samplesMs": ms, "summaryMs": {k: summary(v) for k, v in ms.items()},
            "outcomes": samples["outcome"], "grace": args.grace}


# --- 2. start throughput and bulk cancel, against Jobs and bare pods ---------------------------------

def run_throughput(layout: Layout, api: client.ApiClient, args) -> dict:
    core, custom, batch = client.CoreV1Api(api), client.CustomObjectsApi(api), client.BatchV1Api(api)
    n, grace = args.bulk, args.grace
    out: dict = {"source": "process node", "n": n}
    with bench_namespace(core, "bulk") as ns:
        book = PhaseBook(api, ns)
        try:
            with running_operator(layout, [ns], f"bulk-{ns}") as op:
                log(f"throughput: namespace {ns}, operator log {op.log_path}")
                names = [f"start-{i:03d}" for i in range(n)]
                bodies = [execution(x, LONGRUN, ONE_LONG_STEP, grace, labels={"bench": "bulk"}) for x in names]
                t0 = time.monotonic()
                create_executions(custom, ns, bodies)
                done = book.wait_count(["Running"], n, 900, f"{n} executions Running")
                out["executions_all_running_s"] = done - t0
                log(f"  {n} executions all Running after {done - t0:.1f}s")
                _wait_logs(layout, ns, FIRST_STEP, n, 600, "start-")  # every runner in its step: truly running
                time.sleep(2)
                t0 = time.monotonic()
                result = kubectl(layout, "flux", "cancel", "-l", "bench=bulk", "-n", ns, "--reason", "bench bulk",
                                 timeout=300, check=False)
                cli_s = time.monotonic() - t0
                if result.returncode != 0:
                    raise BenchError(f"kubectl flux cancel -l failed ({result.returncode}): {result.stderr[-1000:]}")
                done = book.wait_count(["Cancelled"], n, grace + 600, f"{n} executions Cancelled")
                out["bulk_cancel_all_cancelled_s"] = done - t0
                out["bulk_cancel_cli_s"] = cli_s
                out["bulk_cancel_outcomes"] = _outcomes(book, names)
                log(f"  kubectl flux cancel -l: returned after {cli_s:.1f}s, all Cancelled after {done - t0:.1f}s "
                    f"{out['bulk_cancel_outcomes']}")
                _delete_all_executions(layout, ns, book)
            _wait_no_pods(core, ns)

            # Baseline: n Jobs, created at once, each one pod running the comparable program.
            pods = PodBook(api, ns, "bench=jobs")
            labels = {"bench": "jobs"}
            t0 = time.monotonic()
            parallel(lambda i: batch.create_namespaced_job(ns, _job(f"job-{i:03d}", grace, COMPARABLE_PROGRAM, labels,
                                                                            choice.of(layout))),
                     range(n))
            done = pods.wait(lambda b: b.running() >= n, 900, f"{n} job pods Running")
            out["jobs_all_running_s"] = done - t0
            log(f"  {n} Jobs: all pods Running after {done - t0:.1f}s")
            pods.stop()
            kubectl(layout, "delete", "jobs", "--all", "-n", ns, "--wait=false", "--cascade=background")
            _wait_no_pods(core, ns, grace + 300)

            # Baseline: n bare pods deleted by one selector.
            pods = PodBook(api, ns, "bench=bare")
            parallel(lambda i: core.create_namespaced_pod(ns, {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"bare-{i:03d}", "labels": {"bench": "bare"}},
                "spec": _pod_spec(grace, COMPARABLE_PROGRAM, "OnFailure", choice.of(layout))}), range(n))
            pods.wait(lambda b: b.running() >= n, 900, f"{n} bare pods Running")
            _wait_logs(layout, ns, cl.FLOOR_READY_MARK, n, 600, "bare-")
            time.sleep(2)
            t0 = time.monotonic()
            kubectl(layout, "delete", "pods", "-l", "bench=bare", "-n", ns, "--wait=false")
            cli_s = time.monotonic() - t0
            done = pods.wait(lambda b: len(b.gone_at) >= n and not b.phase, grace + 600, f"{n} bare pods gone")
            out["bare_delete_all_gone_s"] = done - t0
            out["bare_delete_cli_s"] = cli_s
            log(f"  kubectl delete pods -l: returned after {cli_s:.1f}s, all gone after {done - t0:.1f}s")
            pods.stop()
        finally:
            book.stop()
    return out


# --- 4. the operator's API requests per leaf cancel ----------------------------------------------------------

def run_writes(layout: Layout, api: client.ApiClient, args) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    proxy = CountingProxy(layout).start()
    per_cancel: list[dict[str, int]] = []
    per_start: list[dict[str, int]] = []
    try:
        with bench_namespace(core, "writes") as ns, \
                running_operator(layout, [ns], f"writes-{ns}", kubeconfig=proxy.kubeconfig) as op:
            log(f"writes: namespace {ns}, operator log {op.log_path}, counting proxy :{proxy.port}")
            book = PhaseBook(api, ns)
            try:
                for i in range(1, args.writes_rounds + 1):
                    name = f"leaf-{i}"
                    mark = proxy.mark()
                    create_executions(custom, ns, [execution(name, LONGRUN, ONE_LONG_STEP, args.grace)])
                    book.wait_count(["Running"], 1, 120, f"{name} Running", names=[name])
                    _wait_logs(layout, ns, FIRST_STEP, 1, 120, f"{name}-")
                    time.sleep(2)  # the start's last writes (its Event) have landed
                    per_start.append(_operator_requests(proxy.since(mark)))
                    mark = proxy.mark()
                    patch_cancel(custom, ns, name)
                    book.wait_count(["Cancelled"], 1, args.grace + 120, f"{name} Cancelled", names=[name])
                    time.sleep(3)  # anything the operator does after Cancelled counts too
                    per_cancel.append(_operator_requests(proxy.since(mark)))
                    log(f"  [{i}/{args.writes_rounds}] {per_cancel[-1]}")
                    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
            finally:
                book.stop()
    finally:
        proxy.stop()
    writes = [c["writes"] for c in per_cancel]
    reads = [c["reads"] for c in per_cancel]
    return {"source": "process node", "perCancel": per_cancel, "perStart": per_start,
            "writes": {"median": statistics.median(writes), "max": max(writes)},
            "reads": {"median": statistics.median(reads), "max": max(reads)}}


def _operator_requests(requests) -> dict:
    """Requests of one window, leaving out the leader Lease (renewed on a timer, not per cancel)."""
    mine = [r for r in requests if r.resource != "leases"]
    return {"writes": sum(1 for r in mine if r.kind == "write"), "reads": sum(1 for r in mine if r.kind == "read"),
            "refusedWrites": sum(1 for r in mine if r.kind == "write" and r.status >= 400),  # e.g. a Conflict
            "watches": sum(1 for r in mine if r.kind == "watch"),
            "leaseRequests": sum(1 for r in requests if r.resource == "leases"), "byKind": tally(mine)}


# --- 5. failover: the leader killed -9 in the middle of 20 cancels ---------------------------------------------

class LeaseLog:
    """Polls a Lease every 50 ms: who held it, and when (this process's clock) that changed."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.coord = client.CoordinationV1Api(api)
        self.namespace, self.name = namespace, name
        self.changes: list[tuple] = []  # (monotonic, holder, acquireTime, renewTime)
        self.last: dict = {}
        self._stopped = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        holder = None
        while not self._stopped.wait(0.05):
            try:
                lease = self.coord.read_namespaced_lease(self.name, self.namespace)
            except ApiException:
                continue
            spec = lease.spec
            self.last[spec.holder_identity] = spec.renew_time
            if spec.holder_identity != holder:
                holder = spec.holder_identity
                self.changes.append((time.monotonic(), holder or "", spec.acquire_time, spec.renew_time))

    def stop(self) -> None:
        self._stopped.set()


def run_failover(layout: Layout, api: client.ApiClient, args) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    n, lease = args.failover_n, args.failover_lease
    out: dict = {"source": "process node", "n": n, "leaseSeconds": lease}
    with bench_namespace(core, "failover") as ns:
        lease_id = f"flux-bench-failover-{ns}"
        extra = ("--lease-seconds", str(lease), "--leader-election-namespace", ns)
        a = Operator(layout, [ns], f"failover-a-{ns}", extra, lease_id=lease_id)
        b = Operator(layout, [ns], f"failover-b-{ns}", extra, lease_id=lease_id)
        book = PhaseBook(api, ns)
        leases = None
        try:
            a.start()
            wait_for(a.leading, 60, 0.1, "replica a to lead", BenchError)
            b.start()
            leases = LeaseLog(api, ns, lease_id)
            log(f"failover: namespace {ns}, leader a pid {a.pid}, standby b pid {b.pid}, lease {lease}s")
            names = [f"fo-{i:02d}" for i in range(n)]
            create_executions(custom, ns, [execution(x, LONGRUN, ONE_LONG_STEP, args.grace) for x in names])
            book.wait_count(["Running"], n, 600, f"{n} executions Running")
            _wait_logs(layout, ns, FIRST_STEP, n, 300, "fo-")
            time.sleep(1)
            leader, standby = (a, b) if a.leading() else (b, a)
            t0 = time.monotonic()
            kill_at = None
            for i, name in enumerate(names):
                patch_cancel(custom, ns, name, "bench failover")
                if i == n // 2 - 1:
                    kill_at = time.monotonic()
                    leader.kill9()
                time.sleep(0.1)
            taken = wait_for(lambda: standby.leading() and time.monotonic(),
                             lease * 3 + 30, 0.05, "the standby to lead", BenchError)
            done = book.wait_count(["Cancelled"], n, args.grace + lease + 300, f"{n} executions Cancelled")
            out.update(takeover_after_kill_s=taken - kill_at, all_cancelled_after_first_patch_s=done - t0,
                       cancelled=book.count(["Cancelled"], names), outcomes=_outcomes(book, names))
            # From the old leader's last renewal to the new holder's acquireTime, both stamped by the operators.
            old_id = next((c[1] for c in leases.changes if str(leader.pid) in c[1]), None)
            new = next((c for c in leases.changes if str(standby.pid) in c[1]), None)
            renewed, acquired = leases.last.get(old_id), new[2] if new else None
            if renewed is not None and acquired is not None:
                out["takeover_after_last_renewal_s"] = (acquired - renewed).total_seconds()
            out["leaseChanges"] = leases.changes
            log(f"  takeover {out['takeover_after_kill_s']:.2f}s after kill -9 "
                f"({out.get('takeover_after_last_renewal_s', float('nan')):.2f}s after the last renewal); "
                f"{out['cancelled']}/{n} Cancelled {out['outcomes']}")
        finally:
            if leases:
                leases.stop()
            book.stop()
            a.stop()
            b.stop()
    return out


__all__ = ["run_cancel", "run_throughput", "run_writes", "run_failover", "Path"]
