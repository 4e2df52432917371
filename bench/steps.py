"""The step figure (process node): `--steps` no-op steps of one execution, against one status PATCH.

Each round, interleaved: `--patch-samples` merge PATCHes of an Execution's status.checkpoint from this
process, in a namespace no operator serves (the baseline: one status PATCH round trip), then one
execution of the bench workflow `steps`, timed from the watch seeing it Running to the watch seeing it
Succeeded. Its final checkpoint's `sequence` is how many checkpoint writes its runner made.

    .venv/bin/python -m bench.run --parts steps                       # 100,000 steps, 5 rounds
    .venv/bin/python -m bench.run --parts steps --steps 10000 --steps-rounds 20
"""

from __future__ import annotations

import time

from flux_api import GROUP, PLURAL, VERSION
from kubernetes import client
from localcluster.layout import Layout

from bench.benchkit import REPO, bench_namespace, create_executions, execution, log, percentile, running_operator
from bench.books import PhaseBook

WORKFLOWS_DIR = REPO / "bench" / "workflows"


def _patch_round_trips(custom: client.CustomObjectsApi, ns: str, name: str, n: int, start: int) -> list[float]:
    took = []
    for i in range(start, start + n):
        body = {"status": {"checkpoint": {"state": "Running", "sequence": i, "stepCount": i}}}
        t0 = time.monotonic()
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, name, body)
        took.append((time.monotonic() - t0) * 1000)
    return took


def run_steps(layout: Layout, api: client.ApiClient, args) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    runner = f"env PYTHONPATH={WORKFLOWS_DIR} flux-runner"
    out: dict = {"source": "process node", "steps": args.steps, "interval": "operator default", "run_s": [],
                 "writes": [], "stepCount": [], "patch_ms": []}
    with bench_namespace(core, "steps-floor") as floor_ns, bench_namespace(core, "steps") as ns, \
            running_operator(layout, [ns], f"steps-{ns}", extra=("--runner-command", runner)) as op:
        log(f"steps: namespace {ns} (the floor's PATCHes in {floor_ns}, which no operator serves), "
            f"operator log {op.log_path}")
        # Never run: the floor's object only takes status PATCHes (nobody serves its namespace).
        create_executions(custom, floor_ns, [execution("floor", "flux_bench_workflows:steps", {"steps": 0}, 30)])
        book = PhaseBook(api, ns, keep_objects=True)
        try:
            for r in range(1, args.steps_rounds + 1):
                out["patch_ms"] += _patch_round_trips(custom, floor_ns, "floor", args.patch_samples,
                                                      (r - 1) * args.patch_samples + 1)
                name = f"steps-{r}"
                create_executions(custom, ns, [execution(name, "flux_bench_workflows:steps",
                                                         {"steps": args.steps}, 30)])
                running = book.wait_count(["Running", "Succeeded", "Failed"], 1, 300, f"{name} Running",
                                          names=[name])
                done = book.wait_count(["Succeeded", "Failed"], 1, 1800, f"{name} finished", names=[name])
                status = book.objects[name].get("status") or {}
                if status.get("phase") != "Succeeded":
                    raise RuntimeError(f"{name} ended {status.get('phase')}: {status.get('message')}")
                checkpoint = status.get("checkpoint") or {}
                out["run_s"].append(done - running)
                out["writes"].append(checkpoint.get("sequence"))
                out["stepCount"].append(checkpoint.get("stepCount"))
                log(f"  [{r}/{args.steps_rounds}] {args.steps} steps in {out['run_s'][-1]:.1f}s, "
                    f"{out['writes'][-1]} checkpoint writes; status PATCH p50 "
                    f"{percentile(out['patch_ms'][-args.patch_samples:], 50):.1f} ms")
                custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        finally:
            book.stop()
    return out
