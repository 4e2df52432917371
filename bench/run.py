"""The benchmark suite of issue 9: every figure next to a baseline measured in the same run.

    .venv/bin/python -m bench.run                 # everything (make bench)
    .venv/bin/python -m bench.run --scale-only    # the KWOK figures only (make bench-scale)
    .venv/bin/python -m bench.run --parts cancel,failover --rounds 10

Brings up its own throwaway local cluster in .cluster-bench/ (or $FLUX_BENCH_DIR) and takes it down
at the end, unless it was already up there. Runs its own operators, each limited to fresh namespaces
and holding a Lease of its own. Writes bench/results/<UTC time>.json (every raw figure) and
bench/results/<UTC time>.md (the table that is also printed).

Figures from the process node run real runner processes; the 1,000/5,000 figures (bench/scale.py) and
the fairness figures (bench/fairness.py) run on a KWOK node whose pods report Running without any process.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from localcluster import cluster as localcluster
from localcluster.kube import api_client
from localcluster.layout import Layout

from bench.benchkit import RESULTS, BenchError, install_crd, log

REPO = Path(__file__).resolve().parents[1]

PROCESS_PARTS = ("cancel", "throughput", "starts", "cascade", "writes", "failover", "steps", "traffic", "busy", "pause")
ALL_PARTS = (*PROCESS_PARTS, "scale", "fairness", "queues")


def cluster_root() -> Path:
    return Path(os.environ.get("FLUX_BENCH_DIR", REPO / ".cluster-bench")).resolve()


# The numeric flags: flag, type, default, help.
_NUMBERS = (
    ("--rounds", int, 20, "cancel-latency rounds (default 20)"),
    ("--grace", int, 30, "grace period of executions and baseline pods (30)"),
    ("--bulk", int, 200, "executions/Jobs/pods in the throughput+bulk part (200)"),
    ("--starts-n", int, 50, "executions and Jobs started at once per round of the starts part (50)"),
    ("--starts-rounds", int, 10, "starts rounds, executions and Jobs interleaved (10)"),
    ("--tree-rounds", int, 20, "cascade rounds (default 20)"),
    ("--tree-depth", int, 4, ""),
    ("--tree-fanout", int, 2, ""),
    ("--writes-rounds", int, 10, "leaf cancels counted (default 10)"),
    ("--steps", int, 100_000, "no-op steps of the steps part's execution (100000)"),
    ("--steps-rounds", int, 5, "steps rounds (5: each is a whole run of --steps)"),
    ("--patch-samples", int, 20, "status PATCHes timed per steps round (20)"),
    ("--traffic-executions", int, 20, "running executions written to (20)"),
    ("--traffic-writes", int, 1000, "checkpoint writes per round (1000)"),
    ("--traffic-rate", float, 100, "checkpoint writes a second (100)"),
    ("--traffic-rounds", int, 5, "traffic rounds of each operator (5)"),
    ("--busy-executions", int, 50, "executions stepping while the busy starts are timed (50)"),
    ("--busy-step", float, 0.1, "their step, seconds (0.1)"),
    ("--busy-blocks", int, 4, "idle and busy blocks, alternating (4 of each)"),
    ("--busy-starts", int, 5, "starts timed per block (5)"),
    ("--failover-n", int, 20, ""),
    ("--pause-rounds", int, 5, "suspend/cancel rounds of the pause part (5)"),
    ("--pause-depth", int, 3, "depth of the pause part's tree (3: 15 executions)"),
    ("--pause-naps", int, 20, "durable sleeps timed by the pause part (20)"),
    ("--pause-sleep", float, 15, "their length, seconds (15; past --durable-wait-after 10)"),
    ("--failover-lease", float, 5.0, "--lease-seconds of both replicas (5)"),
    ("--scale-first", int, 1000, ""),
    ("--scale-deadline", int, 1000, ""),
    ("--scale-total", int, 5000, ""),
    ("--idle-window", float, 240, "seconds of counting idle requests (240)"),
    ("--scale-traffic", float, 50, "checkpoint writes a second to the first executions while deadlines fall (50)"),
    ("--fairness-storm", int, 300, "refused executions in a storm namespace (300)"),
    ("--fairness-rounds", int, 4, "rounds of every fairness condition (4)"),
    ("--fairness-deadlines", int, 10, "bystander deadlines per round (10)"),
    ("--fairness-cancels", int, 5, "bystander cancels per round (5)"),
    ("--queues-n", int, 1000, "executions created at once under the queues part's limit (1000)"),
    ("--queues-max", int, 10, "its ConcurrencyLimit's max (10)"),
    ("--queues-rounds", int, 20, "hand-overs timed, interleaved with as many unlimited starts (20)"),
    ("--queues-idle", float, 75, "seconds of counting idle requests, before and with the queue (75)"),
)


def _settings(text: str) -> list[str]:
    from bench.starts import SHAPE_SETTINGS
    named = [s for s in text.split(",") if s]
    unknown = [s for s in named if s not in SHAPE_SETTINGS]
    if unknown:
        raise argparse.ArgumentTypeError(f"not a runner pod setting: {', '.join(unknown)} "
                                         f"(one of {', '.join(SHAPE_SETTINGS)})")
    return named


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default=",".join(ALL_PARTS), help=f"comma-separated, of {', '.join(ALL_PARTS)}")
    p.add_argument("--scale-only", action="store_true", help="only the KWOK part (make bench-scale)")
    for flag, kind, default, text in _NUMBERS:
        p.add_argument(flag, type=kind, default=default, help=text or None)
    p.add_argument("--starts-jobs-token", action="store_true",
                   help="the starts part also times Jobs whose pods mount a ServiceAccount token, as a Job does by "
                        "default and as a runner must (the comparable Job mounts none)")
    p.add_argument("--starts-jobs-hardened", action="store_true",
                   help="the starts part also times Jobs whose pod is the operator's runner pod (token, seccomp, "
                        "read-only root, /tmp emptyDir) running the comparable program")
    p.add_argument("--starts-jobs-without", type=_settings, default=[], metavar="SETTING,...",
                   help="the starts part also times, per setting named (token, seccomp, rootfs, tmp, caps), Jobs "
                        "whose pod is the runner pod without that setting: what each costs the node")
    p.add_argument("--starts-cpu", action="store_true",
                   help="the starts part also records each window's CPU seconds by kind of process "
                        "(bench/cpuwindow.py)")
    p.add_argument("--starts-requests", action="store_true",
                   help="the starts part also records the requests the API server served in each window, by verb "
                        "and resource (its /metrics)")
    p.add_argument("--starts-kwok", action="store_true",
                   help="the starts part on a KWOK node beside the process node (pods Running without a process)")
    p.add_argument("--busy-load", choices=("runners", "generator"), default="generator",
                   help="runners: the busy executions step; generator: their traffic from a load generator (busy.py)")
    p.add_argument("--fairness-before", default=None, metavar="REV",
                   help="also measure the operator of this commit, interleaved (e.g. the commit before a change)")
    p.add_argument("--traffic-before", default=None, metavar="REV",
                   help="also measure the operator of this commit in the traffic part, rounds interleaved")
    p.add_argument("--operator-from", default=None, metavar="REV",
                   help="run every part with the operator of this commit (a git archive of it), e.g. to compare a "
                        "change")
    p.add_argument("--operator-args", default="",
                   help="extra flags for every operator started, e.g. '--qps 0' (a diagnosis, not the figures)")
    args = p.parse_args(argv)
    args.parts = ["scale"] if args.scale_only else [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = set(args.parts) - set(ALL_PARTS)
    if unknown:
        p.error(f"unknown parts {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Runner pods find `flux-runner` on the PATH of whoever started the process node.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    from bench import benchkit
    benchkit.OPERATOR_EXTRA[:] = shlex.split(args.operator_args)
    operator = benchkit.ensure_operator_venv()
    keep: list = []  # the archived operator's tree lives as long as the run
    code = benchkit.this_code()
    if args.operator_from:
        archived = benchkit.operator_at(args.operator_from, keep)
        benchkit.OPERATOR_FROM[:] = operator = archived["command"]
        code["operator"] = archived["commit"]
    root = cluster_root()
    os.environ["FLUX_CLUSTER_DIR"] = str(root)
    os.environ.pop("KUBECONFIG", None)
    began = time.monotonic()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results: dict = {"startedAt": stamp, "parts": {}, "errors": {}, "config": vars(args).copy(),
                     "machine": machine(), "code": code, "node": os.environ.get("FLUX_NODE", "process")}
    results["config"]["operatorCommand"] = operator
    was_up = localcluster.is_up(Layout.load(root))
    layout = localcluster.up(root)
    try:
        install_crd(layout)
        results["cluster"] = str(layout.root)
        with api_client(layout.kubeconfig) as api:
            for part in args.parts:
                log(f"=== part {part} ===")
                started = time.monotonic()
                load_before = Path("/proc/loadavg").read_text().split()[0]
                try:
                    last = part == args.parts[-1] and not was_up
                    results["parts"][part] = run_part(part, layout, api, args, cluster_goes_down=last)
                except (BenchError, Exception) as err:  # noqa: BLE001 - one failed part must not lose the others
                    traceback.print_exc()
                    results["errors"][part] = f"{type(err).__name__}: {err}"
                    log(f"part {part} failed: {err}")
                results.setdefault("load", {})[part] = [load_before, Path("/proc/loadavg").read_text().split()[0]]
                log(f"=== part {part} took {time.monotonic() - started:.0f}s ===")
                write(results, stamp)  # after every part: an interrupted run keeps what it measured
    finally:
        if not was_up:
            localcluster.down(root, quiet=True)
    results["duration_s"] = time.monotonic() - began
    from bench.report import figures, markdown
    results["figures"] = figures(results)
    json_path, md_path = write(results, stamp)
    print()
    print(markdown(results))
    print(f"\nresults: {json_path.relative_to(REPO)} and {md_path.relative_to(REPO)}")
    print(f"took {results['duration_s'] / 60:.1f} min")
    return 1 if results["errors"] else 0


def run_part(part: str, layout: Layout, api, args: argparse.Namespace, cluster_goes_down: bool = False) -> dict:
    if part == "traffic":
        from bench.traffic import run_traffic
        return run_traffic(layout, api, args)
    if part == "cascade":
        from bench.cascade import run_cascade
        return run_cascade(layout, api, args)
    if part == "starts":
        from bench.starts import run_starts
        return run_starts(layout, api, args)
    if part == "pause":
        from bench.pause import run_pause
        return run_pause(layout, api, args)
    if part == "busy":
        from bench.busy import run_busy
        return run_busy(layout, api, args)
    if part == "steps":
        from bench.steps import run_steps
        return run_steps(layout, api, args)
    if part == "queues":
        from bench.queues import run_queues
        return run_queues(layout, api, args)
    if part == "fairness":
        from bench.fairness import run_fairness
        return run_fairness(layout, api, args)
    if part == "scale":
        from bench.scale import run_scale
        return run_scale(layout, api, n_first=args.scale_first, n_deadline=args.scale_deadline,
                         n_total=args.scale_total, idle_window=args.idle_window,
                         wait_clean_up=not cluster_goes_down, traffic_rate=args.scale_traffic)
    from bench import process_parts
    return getattr(process_parts, f"run_{part}")(layout, api, args)


def machine() -> dict:
    load = Path("/proc/loadavg").read_text().split()[:3]
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {"cpus": os.cpu_count(), "memTotal": mem.split(":")[1].strip(), "loadavgAtStart": load}


def write(results: dict, stamp: str) -> tuple[Path, Path]:
    from bench.report import markdown
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / f"{stamp}.json"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path = RESULTS / f"{stamp}.md"
    if "figures" in results:
        md_path.write_text(markdown(results) + "\n")
    return json_path, md_path


if __name__ == "__main__":
    sys.exit(main())
