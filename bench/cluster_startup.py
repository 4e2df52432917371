"""How long `make cluster-up` takes with a warm cache, and what each component costs in memory.

Each round brings a throwaway cluster up in its own directory, records when the apiserver first
answered /readyz (the floor: nothing useful happens before it) and when the whole cluster was
ready (node Ready, default ServiceAccount made), then the RSS of every process, then takes it down.

    .venv/bin/python -m bench.cluster_startup --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from localcluster import cluster
from localcluster.layout import Layout
from localcluster.nodes import choice
from localcluster.procs import session_members


def component_name(argv: list[str]) -> str | None:
    """By the program itself, never by its flags: the apiserver's flags mention etcd too."""
    program = Path(argv[0]).name
    if program in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        return program
    if argv[1:3] == ["-m", "localcluster"]:
        return {"node": "process-node", "supervise": "supervisor"}.get(argv[3] if len(argv) > 3 else "")
    return None


def rss_by_component(layout: Layout) -> dict[str, float]:
    out: dict[str, float] = {}
    for pid in session_members(layout.supervisor_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        name = component_name(argv)
        if name:
            out[name] = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024
    return out


def one_round(root: Path) -> dict:
    started = time.monotonic()
    layout = cluster.up(root)
    ready = time.monotonic() - started
    rss = rss_by_component(layout)
    floor = _apiserver_healthy_after(layout)
    cluster.down(root, quiet=True)
    return {"cluster_up_s": ready, "apiserver_healthy_s": floor, "rss_mb": rss}


def _apiserver_healthy_after(layout: Layout) -> float:
    """The floor: seconds from the supervisor's start until etcd and the apiserver were healthy."""
    line = next(line for line in (layout.logs / "supervisor.log").read_text().splitlines()
                if "started kube-apiserver" in line)
    return float(line.rsplit(" at ", 1)[1].rstrip("s"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    choice.chosen().binaries()  # build once up front: this measures a warm cache
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="flux-bench-") as tmp:
            rounds.append(one_round(Path(tmp) / "cluster"))
        print(f"round {i + 1}: cluster up in {rounds[-1]['cluster_up_s']:.1f}s", flush=True)
    ups = [r["cluster_up_s"] for r in rounds]
    print(f"\ncluster-up with a warm cache: median {statistics.median(ups):.1f}s, max {max(ups):.1f}s "
          f"(target < 20s: {'met' if max(ups) < 20 else 'MISSED'})")
    floors = [r["apiserver_healthy_s"] for r in rounds]
    print(f"floor (etcd + apiserver healthy): median {statistics.median(floors):.1f}s; "
          f"cluster-up / floor = {statistics.median(ups) / statistics.median(floors):.2f}x")
    print("RSS after ready (MB, median over rounds):")
    for name in sorted({k for r in rounds for k in r["rss_mb"]}):
        print(f"  {name:24} {statistics.median(r['rss_mb'].get(name, 0) for r in rounds):7.1f}")
    out = Path(__file__).parent / "results" / f"cluster_startup-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rounds, indent=2))
    print(f"raw: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
