"""Checkpoint traffic (process node): what 1,000 runner checkpoint writes cost the operator, in CPU.

`--traffic-executions` executions run one long step each (real runners, idle). A load generator then
writes their checkpoints as runners do (a growing ledger, the recent steps, data, a new sequence and time)
and where that operator's runners write them: for an operator that makes ExecutionProgress objects (this
checkout) to those, for an older one (`--traffic-before`) to the Execution's status.checkpoint.
`--traffic-writes` writes in all at `--traffic-rate` a second, and the operator's CPU time
(utime + stime of its process, /proc/<pid>/stat) over the writes and 2 s after is compared with its CPU
time over an idle window of the same length just before (the baseline). The figure is the difference
per 1,000 writes.

With `--traffic-before REV` the same is measured for the operator of commit REV, rounds interleaved
(before, this checkout, before, ...), each round with a fresh operator over the same executions.

    .venv/bin/python -m bench.run --parts traffic --traffic-before 2b586b2
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

from flux_api import API_VERSION, GROUP, KIND, PLURAL, VERSION, progress
from kubernetes import client
from localcluster.layout import Layout

from bench.benchkit import Operator, bench_namespace, create_executions, execution, log, operator_codes
from bench.books import PhaseBook

LONGRUN = "flux_examples.longrun:main"
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _checkpoint(step: int) -> dict:
    """What a runner writes after `step` steps: the shape and growth of the real thing."""
    recent = [{"name": f"step-{i}", "completedAt": "2026-12-03T12:00:00.000Z"} for i in range(max(0, step - 20), step)]
    return {"state": "Running", "sequence": step, "stepCount": step, "steps": recent,
            "done": {"runs": [{"prefix": "step-", "first": 0, "last": step - 1}], "names": []},
            "results": {}, "data": {"progress": step, "note": "x" * 200},
            "updatedAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}


def write_checkpoint(custom: client.CustomObjectsApi, ns: str, name: str, step: int, to_progress: bool) -> bool:
    """One runner checkpoint write: to the ExecutionProgress when asked and there is one, else (as a runner
    does without one) to the Execution. Whether it went to the ExecutionProgress."""
    body = {"status": {"checkpoint": _checkpoint(step)}}
    if to_progress:
        try:
            custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, progress.PLURAL, name, body)
            return True
        except client.ApiException as err:
            if err.status != 404:
                raise
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, name, body)
    return False


def ensure_progress_objects(custom: client.CustomObjectsApi, ns: str, names: list[str]) -> None:
    """The ExecutionProgress of each execution, as this checkout's operator makes them, where an older operator
    started the runner and made none."""
    for name in names:
        uid = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)["metadata"]["uid"]
        body = {"apiVersion": API_VERSION, "kind": progress.KIND, "metadata": {
            "name": name, "ownerReferences": [{"apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": uid,
                                               "controller": True}]}}
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, progress.PLURAL, body)
        except client.ApiException as err:
            if err.status != 409:
                raise


def _write(custom: client.CustomObjectsApi, ns: str, names: list[str], writes: int, rate: float, first: int,
           to_progress: bool) -> int:
    """Sends the writes; how many went to an ExecutionProgress."""
    began, elsewhere = time.monotonic(), 0
    for i in range(writes):
        name = names[i % len(names)]
        step = first + i // len(names) + 1
        elsewhere += write_checkpoint(custom, ns, name, step, to_progress)
        wait = began + (i + 1) / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    return elsewhere


class LoadGenerator:
    """Runner traffic without runners: for `names` in turn, `rate` times a second in all, the step-boundary
    cancel check (a GET) and a checkpoint write (to the ExecutionProgress where there is one, as runners do),
    from one thread, until the block ends. Counts what it sent."""

    def __init__(self, custom: client.CustomObjectsApi, ns: str, names: list[str], rate: float) -> None:
        self.custom, self.ns, self.names, self.rate = custom, ns, names, rate
        self.sent, self.failed, self.to_progress = 0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="runner-load", daemon=True)

    def __enter__(self) -> "LoadGenerator":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        began, i = time.monotonic(), 0
        while not self._stop.is_set():
            name, step = self.names[i % len(self.names)], i // len(self.names) + 2
            try:
                self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)
                self.to_progress += write_checkpoint(self.custom, self.ns, name, step, True)
                self.sent += 2
            except client.ApiException:
                self.failed += 1
            i += 1
            self._stop.wait(max(0.0, began + i / self.rate - time.monotonic()))


def run_traffic(layout: Layout, api: client.ApiClient, args) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    keep: list = []
    codes = operator_codes(args.traffic_before, keep, before_first=True)
    out: dict = {"source": "process node", "writes": args.traffic_writes, "rate": args.traffic_rate,
                 "executions": args.traffic_executions,
                 "codes": {k: {"commit": v["commit"], "dirty": v["dirty"]} for k, v in codes.items()},
                 "cpu_ms_per_1000": {k: [] for k in codes}, "idle_cpu_ms": {k: [] for k in codes},
                 "to_progress": {k: [] for k in codes}}
    with bench_namespace(core, "traffic") as ns:
        names = [f"busy-{i:02}" for i in range(args.traffic_executions)]
        book = PhaseBook(api, ns)
        step = 0
        try:
            for r in range(1, args.traffic_rounds + 1):
                for label, code in codes.items():
                    op = Operator(layout, [ns], f"traffic-{label}-{r}", command=tuple(code["command"])).start()
                    try:
                        if r == 1 and label == next(iter(codes)):
                            create_executions(custom, ns, [execution(n, LONGRUN, {"steps": 1, "stepSeconds": 36000}, 5)
                                                           for n in names])
                        book.wait_count(["Running"], len(names), 300, "the busy executions Running", names=names)
                        time.sleep(3)  # its start-up listing and first decisions are done
                        to_progress = label == "after"  # this checkout's runners write progress elsewhere
                        if to_progress:
                            ensure_progress_objects(custom, ns, names)
                        window = args.traffic_writes / args.traffic_rate + 2
                        idle0 = cpu_seconds(op.pid)
                        time.sleep(window)
                        idle = cpu_seconds(op.pid) - idle0
                        busy0 = cpu_seconds(op.pid)
                        out["to_progress"][label].append(
                            _write(custom, ns, names, args.traffic_writes, args.traffic_rate, step, to_progress))
                        time.sleep(2)
                        busy = cpu_seconds(op.pid) - busy0
                        step += args.traffic_writes // len(names) + 1
                    finally:
                        op.stop()
                    per_1000 = (busy - idle) * 1000 * 1000 / args.traffic_writes
                    out["cpu_ms_per_1000"][label].append(per_1000)
                    out["idle_cpu_ms"][label].append(idle * 1000)
                    log(f"  [{r}/{args.traffic_rounds}] {label}: {per_1000:.0f} ms CPU per 1,000 checkpoint writes "
                        f"(idle {idle * 1000:.0f} ms over the same {window:.0f} s)")
        finally:
            book.stop()
    out["median"] = {k: statistics.median(v) for k, v in out["cpu_ms_per_1000"].items()}
    return out
