"""Starts on a busy cluster (process node): create -> Running of a new execution while `--busy-executions`
(50) others step every `--busy-step` seconds (0.1), against the same starts on an idle cluster.

Blocks alternate, idle first: `--busy-starts` (5) starts one after another on the idle cluster; then the busy
executions come up (each runner in its steps), the same number of starts among them, and they are cancelled
and deleted. `--busy-blocks` (4) of each: N = blocks x starts per condition. One operator for the whole part,
its CPU over each block recorded beside the latencies.

`--busy-load` says where the busy executions' traffic comes from. `runners`: their own runners
stepping. `generator` (the default): their runners sit in one idle step and a load generator in this
process sends what coalesced runners stepping that fast send the API server, one checkpoint write a second per execution
(`--checkpoint-interval`'s default; `bench.traffic` builds the checkpoint) and the step-boundary cancel
check, a GET, as often. The operator sees the same traffic; the machine is spared the runners' own step
loops, which on 2 cores starve the control plane before the operator is measured at all.

    .venv/bin/python -m bench.run --parts busy
    .venv/bin/python -m bench.run --parts busy --busy-blocks 2 --busy-starts 10
"""

from __future__ import annotations

import contextlib
import time

from flux_operator.builders import RunnerSettings
from kubernetes import client
from localcluster.layout import Layout

from bench.benchkit import bench_namespace, create_executions, execution, kubectl, log, percentile, running_operator
from bench.books import PhaseBook
from bench.process_parts import FIRST_STEP, LONGRUN, ONE_LONG_STEP, _delete_all_executions, _wait_logs, _wait_no_pods
from bench.traffic import LoadGenerator, cpu_seconds

# A runner's coalesced checkpoint writes: at most one per interval (the operator's default).
WRITE_INTERVAL_S = RunnerSettings().checkpoint_interval


def _starts(custom: client.CustomObjectsApi, book: PhaseBook, ns: str, prefix: str, n: int) -> list[float]:
    """n executions created one after another, each timed from its create to the watch seeing it Running."""
    took = []
    for i in range(n):
        name = f"{prefix}-{i}"
        t0 = time.monotonic()
        create_executions(custom, ns, [execution(name, LONGRUN, ONE_LONG_STEP, 5, labels={"bench": "start"})])
        took.append(book.wait_count(["Running"], 1, 300, f"{name} Running", names=[name]) - t0)
    return took


def run_busy(layout: Layout, api: client.ApiClient, args) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    n_busy, step, runners = args.busy_executions, args.busy_step, args.busy_load == "runners"
    out: dict = {"source": "process node", "busyExecutions": n_busy, "stepSeconds": step, "load": args.busy_load,
                 "generated": [],
                 "start_s": {"idle": [], "busy": []}, "operator_cpu_s": {"idle": [], "busy": []},
                 "busyWrites": []}
    with bench_namespace(core, "busy") as ns, running_operator(layout, [ns], f"busy-{ns}") as op:
        log(f"busy: namespace {ns}, operator log {op.log_path}")
        book = PhaseBook(api, ns, keep_objects=True)
        try:
            for b in range(1, args.busy_blocks + 1):
                cpu0 = cpu_seconds(op.pid)
                out["start_s"]["idle"] += _starts(custom, book, ns, f"idle-{b}", args.busy_starts)
                out["operator_cpu_s"]["idle"].append(cpu_seconds(op.pid) - cpu0)
                _delete_all_executions(layout, ns, book)
                _wait_no_pods(core, ns)

                names = [f"busy-{b}-{i:02}" for i in range(n_busy)]
                stepping = {"steps": 10_000_000, "stepSeconds": step} if runners else ONE_LONG_STEP
                create_executions(custom, ns, [execution(x, LONGRUN, stepping, 5, labels={"bench": "busy"})
                                               for x in names])
                book.wait_count(["Running"], n_busy, 600, f"the {n_busy} busy executions Running", names=names)
                _wait_logs(layout, ns, FIRST_STEP, n_busy, 300, f"busy-{b}-")
                load = None if runners else LoadGenerator(custom, ns, names, n_busy / WRITE_INTERVAL_S)
                with load or contextlib.nullcontext():
                    time.sleep(5)  # every runner past its first checkpoint writes
                    cpu0, t0 = cpu_seconds(op.pid), time.monotonic()
                    out["start_s"]["busy"] += _starts(custom, book, ns, f"among-{b}", args.busy_starts)
                    out["operator_cpu_s"]["busy"].append(cpu_seconds(op.pid) - cpu0)
                    if load is not None:
                        out["generated"].append({"requests": load.sent, "failed": load.failed,
                                                 "seconds": round(time.monotonic() - t0 + 5, 1)})
                kubectl(layout, "flux", "cancel", "-l", "bench=busy", "-n", ns, "--reason", "bench busy",
                        timeout=300, check=False)
                book.wait_count(["Cancelled", "Succeeded"], n_busy, 300, "the busy executions stopped", names=names)
                out["busyWrites"].append(sorted(
                    ((book.objects[x].get("status") or {}).get("checkpoint") or {}).get("sequence", 0) for x in names))
                log(f"  [{b}/{args.busy_blocks}] starts idle {_fmt(out['start_s']['idle'][-args.busy_starts:])}, "
                    f"among {n_busy} stepping {_fmt(out['start_s']['busy'][-args.busy_starts:])}")
                _delete_all_executions(layout, ns, book)
                _wait_no_pods(core, ns)
        finally:
            book.stop()
    out["p50"] = {k: percentile(v, 50) for k, v in out["start_s"].items()}
    out["p95"] = {k: percentile(v, 95) for k, v in out["start_s"].items()}
    return out


def _fmt(xs: list[float]) -> str:
    return "[" + ", ".join(f"{x:.2f}" for x in xs) + "] s"
