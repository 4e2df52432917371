"""Memory independent of object size (issue 16, item 7): the operator's RSS with `--count` executions padded to
the API server's object size limit, against the same count unpadded, in the same run.

    .venv/bin/python -m bench.padded_memory --rounds 20 --count 30
    .venv/bin/python -m bench.padded_memory --rounds 5 --operator /path/to/other/.venv-operator/bin/flux-operator

Each round measures both kinds, in alternating order (plain first in even rounds, padded first in odd
ones), each in a fresh namespace with an operator of its own (`.venv-operator`, as the image has it):

- **watch**: the operator starts on the empty namespace; the executions are created (their pods are not
  due: `startAt` is years away, so the figure is the operator's alone); once a watch has seen every one
  Pending (the operator wrote each status, and read each answer back) and `--settle` seconds passed,
  VmRSS (median of 3 reads a second apart) and VmHWM (the peak) from /proc/<pid>/status.
- **cold**: that operator is stopped and a new one started among the same objects (its initial listing,
  in pages); once its World holds all of them (`flux_executions{phase="Pending"}`) and `--settle`
  seconds passed, the same two figures.

A padded execution carries its padding in `spec.podTemplate.env` (the issue's case: the runner pod needs it
whole, so the operator must read it when it makes the pod), sized by probing once what the API server
accepts: the largest padding, to 10 kB, up to its 3 MB request limit (etcd's limit on one value comes first). Writes bench/data/padded_memory-<UTC time>.json
(every sample, the commit, node kind, flags) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from bench.benchkit import OPERATOR_EXTRA, BenchError, Operator, bench_namespace, ensure_operator_venv, install_crd, log
from bench.books import PhaseBook
from bench.cancel_latency import bench_cluster
from flux_api import GROUP, PLURAL, VERSION
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.kube import api_client
from localcluster.probes import wait_for

REPO = Path(__file__).resolve().parents[1]

DATA = REPO / "bench" / "data"
START_AT = "2099-01-01T00:00:00Z"  # never due: no runner pod, only the operator's own memory
ENV_ENTRIES = 64


def body(name: str, padding: int) -> dict:
    spec: dict = {"workflow": "flux_examples.quick:main", "startAt": START_AT, "input": {"i": name}}
    if padding:
        value = "x" * (padding // ENV_ENTRIES)
        spec["podTemplate"] = {"env": [{"name": f"PAD_{i}", "value": value} for i in range(ENV_ENTRIES)]}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution", "metadata": {"name": name}, "spec": spec}


def probe_padding(custom: client.CustomObjectsApi, namespace: str) -> int:
    """The largest padding (to 10 kB) the API server stores in one Execution, between 100 kB and its 3 MB
    request limit: etcd's own limit on a value is what it meets first."""
    def fits(padding: int) -> bool:
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body("probe", padding))
        except ApiException as err:
            text = (err.body or "").lower()
            if err.status in (413, 422) or (err.status == 500 and ("too large" in text or "larger than max" in text)):
                return False
            raise
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "probe", grace_period_seconds=0)
        wait_for(lambda: not exists(custom, namespace, "probe"), 30, 0.05, "the probe to be deleted", BenchError)
        return True

    low, high = 100_000, 3_000_000
    deadline = time.monotonic() + 30  # the admission policies refuse everything until their informer has
    while not fits(low):               # the TenancyPolicy (fail closed): the first answer may come early
        if time.monotonic() > deadline:
            raise BenchError("the API server refused an Execution padded to 100 kB")
        time.sleep(1)
    while high - low > 10_000:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def exists(custom: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    try:
        custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


def settled_memory(op: Operator, settle: float) -> dict[str, float]:
    time.sleep(settle)
    reads = []
    for _ in range(3):
        reads.append(op.memory())
        time.sleep(1)
    return {"VmRSS": statistics.median(r["VmRSS"] for r in reads), "VmHWM": reads[-1]["VmHWM"]}


def world_holds(op: Operator, count: int) -> bool:
    try:
        return op.samples().get('flux_executions{phase="Pending"}') == count
    except OSError:
        return False


def one_sample(layout, api, kind: str, count: int, padding: int, settle: float, label: str) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    with bench_namespace(core, prefix=f"mem-{kind}") as namespace:
        book = PhaseBook(api, namespace)
        op = Operator(layout, [namespace], f"{label}-watch").start()
        try:
            wait_for(op.leading, 60, 0.05, "the operator to lead", BenchError)
            started = time.monotonic()
            for i in range(count):
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                       body(f"{kind}-{i}", padding if kind == "padded" else 0))
            book.wait_count(["Pending"], count, 300, f"{count} {kind} executions Pending")
            took = time.monotonic() - started
            watch = settled_memory(op, settle)
        finally:
            op.stop()
        op = Operator(layout, [namespace], f"{label}-cold").start()
        try:
            wait_for(lambda: world_holds(op, count),
                     300, 0.05, f"the restarted operator to hold {count} executions", BenchError)
            cold = settled_memory(op, settle)
        finally:
            op.stop()
            book.stop()
    return {"kind": kind, "watch": watch, "cold": cold, "create_to_pending_s": took}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def ratios(samples: list[dict], phase: str, figure: str) -> list[float]:
    """padded / plain, round by round (each round has one of each)."""
    by_round: dict[int, dict[str, float]] = {}
    for s in samples:
        by_round.setdefault(s["round"], {})[s["kind"]] = s[phase][figure]
    return [r["padded"] / r["plain"] for r in by_round.values() if {"padded", "plain"} <= set(r)]


def table(samples: list[dict]) -> str:
    lines = ["| figure (MB) | plain: median (min-max) | padded: median (min-max) | padded/plain per round: "
             "median (max) | target |", "|---|---|---|---|---|"]
    for phase, what in (("watch", "created while it runs"), ("cold", "restarted among them")):
        for figure in ("VmRSS", "VmHWM"):
            cells = []
            for kind in ("plain", "padded"):
                values = [s[phase][figure] for s in samples if s["kind"] == kind]
                cells.append(f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})")
            r = ratios(samples, phase, figure)
            target = "<= 1.2x" if figure == "VmRSS" else "(reported)"
            lines.append(f"| {figure}, {what} | {cells[0]} | {cells[1]} | {statistics.median(r):.2f}x "
                         f"({max(r):.2f}x) | {target} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20, help="rounds, each one plain and one padded sample (20)")
    p.add_argument("--count", type=int, default=30, help="executions per sample (30)")
    p.add_argument("--settle", type=float, default=10.0, help="seconds before reading memory (10)")
    p.add_argument("--operator", default="", help="another operator command (e.g. an older checkout's)")
    p.add_argument("--operator-args", default="", help="extra flags for every operator")
    args = p.parse_args(argv)
    from bench import benchkit
    command = args.operator.split() or ensure_operator_venv()
    if args.operator:
        benchkit.operator_command = lambda: command
    OPERATOR_EXTRA[:] = args.operator_args.split()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    began = time.monotonic()
    samples: list[dict] = []
    with bench_cluster() as layout:
        install_crd(layout)
        with api_client(layout.kubeconfig) as api:
            with bench_namespace(client.CoreV1Api(api), prefix="mem-probe") as probe_ns:
                padding = probe_padding(client.CustomObjectsApi(api), probe_ns)
            log(f"padding {padding:,} bytes per execution, {args.count} executions, {args.rounds} rounds")
            for i in range(args.rounds):
                for kind in (("plain", "padded") if i % 2 == 0 else ("padded", "plain")):
                    label = f"mem-{i}-{kind}-{uuid.uuid4().hex[:6]}"  # names the Lease: lowercase
                    sample = one_sample(layout, api, kind, args.count, padding, args.settle, label)
                    sample["round"] = i
                    samples.append(sample)
                    log(f"round {i} {kind}: watch RSS {sample['watch']['VmRSS']:.1f} HWM {sample['watch']['VmHWM']:.1f}"
                        f"; cold RSS {sample['cold']['VmRSS']:.1f} HWM {sample['cold']['VmHWM']:.1f} MB")
        node = layout.node
    result = {
        "startedAt": stamp, "duration_s": time.monotonic() - began,
        "commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "node": node, "operatorCommand": command, "operatorArgs": args.operator_args, "rounds": args.rounds,
        "count": args.count, "paddingBytes": padding, "settleSeconds": args.settle, "startAt": START_AT,
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3], "samples": samples,
    }
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"padded_memory-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(samples))
    print(f"\n{args.count} executions per sample, padding {padding:,} bytes each; node {node}; commit "
          f"{result['commit'][:12]}{' (dirty)' if result['dirty'] else ''}; {args.rounds} rounds in "
          f"{result['duration_s'] / 60:.1f} min\nraw samples: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
