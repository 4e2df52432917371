"""What a safety pass costs in ConcurrencyLimit verdicts when a tenant keeps thousands of executions that cannot
start now (suspended): in-process, no cluster, the operator's own Queues and World.

Each round reconciles every execution of the namespace once, as the safety pass does, two ways interleaved:
- asked: the verdict asked for each one, as reconcile.py did before `could_start_now` (its baseline);
- gated: the verdict asked only where `could_start_now` says a runner might start now.
CPU seconds per pass, median and p95 of `--rounds` rounds, for each of `--sizes`.

    .venv/bin/python -m bench.verdicts --sizes 1000,5000,10000 --rounds 20
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

from flux_api import Execution
from flux_operator.execution.queueing import could_start_now
from flux_operator.queues import LimitStore, Queues
from flux_operator.world import World

from bench.benchkit import summary, this_code

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
RESULTS = Path(__file__).resolve().parent / "results"


def _namespace(size: int) -> tuple[Queues, list[Execution]]:
    world, limits = World(), LimitStore()
    limits.seen({"metadata": {"name": "etl", "namespace": "ns", "uid": "l", "generation": 1}, "spec": {"max": 5}})
    held = []
    for i in range(size):
        raw = {"metadata": {"name": f"held-{i}", "namespace": "ns", "uid": f"u{i}", "resourceVersion": "1",
                            "creationTimestamp": f"2026-12-06T11:{i % 60:02d}:00Z"},
               "spec": {"workflow": "m:f", "suspend": True}, "status": {"phase": "Suspended"}}
        world.execution_seen(raw)
        held.append(Execution.model_validate(raw))
    return Queues(world, limits), held


def _asked(queues: Queues, held: list[Execution]) -> float:
    began = time.process_time()
    for ex in held:
        queues.verdict((ex.namespace, ex.name), NOW)
    return time.process_time() - began


def _gated(queues: Queues, held: list[Execution]) -> float:
    began = time.process_time()
    for ex in held:
        if could_start_now(ex, False, NOW):
            queues.verdict((ex.namespace, ex.name), NOW)
    return time.process_time() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        queues, held = _namespace(size)
        queues.members("ns", NOW)  # the pass's line, cached as the operator's first verdict would make it
        asked, gated = [], []
        for _ in range(args.rounds):
            asked.append(_asked(queues, held))
            gated.append(_gated(queues, held))
        before, after = summary(asked), summary(gated)
        rows.append({"suspended": size, "asked_s": before, "gated_s": after})
        print(f"{size} suspended: a pass asking every verdict {before['p50']:.3f} s CPU (p95 {before['p95']:.3f}); "
              f"gated {after['p50']:.4f} s (p95 {after['p95']:.4f})")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}-verdicts.json"
    out.write_text(json.dumps({"code": this_code(), "rounds": args.rounds, "rows": rows}, indent=1) + "\n")
    print(f"results: {out.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
