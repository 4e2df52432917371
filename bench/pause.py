"""The pause figures of issue 20 (process node), each against a baseline measured in the same run:

1. Suspend -> every execution of a tree Suspended, against cancel -> every one Cancelled, on the same tree:
   each round starts a tree, suspends it (timed), resumes it until all run again, then cancels it (timed).
2. Wake lateness of durable sleeps: executions that step, sleep `--pause-sleep` seconds (past the operator's
   --durable-wait-after, so without a pod) and step again. Lateness: the step after the sleep done, less its
   wake time. Floor: the first step done, less the create (the same path: a runner pod started and its
   workflow's first step). Both from the runner's own step times and this machine's clock.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime

from flux_api import GROUP, PLURAL, VERSION
from kubernetes import client
from localcluster.layout import Layout

from bench.benchkit import bench_namespace, create_executions, execution, log, patch_cancel, running_operator
from bench.books import PhaseBook
from bench.cascade import TREE, tree_names
from bench.process_parts import WORKFLOWS_DIR, _delete_all_executions, _wait_no_pods

DURABLE_AFTER = 10  # the operator's --durable-wait-after in this part: the least it takes


def _p95(xs: list[float]) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_pause(layout: Layout, api: client.ApiClient, args) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    runner = f"env PYTHONPATH={WORKFLOWS_DIR} flux-runner"
    out: dict = {"source": "process node", "depth": args.pause_depth, "fanout": 2, "suspend_s": [], "cancel_s": [],
                 "durableAfter": DURABLE_AFTER, "sleepSeconds": args.pause_sleep}
    with bench_namespace(core, "pause") as ns, \
            running_operator(layout, [ns], f"pause-{ns}", extra=("--runner-command", runner, "--durable-wait-after",
                                                                  str(DURABLE_AFTER))) as op:
        log(f"pause: namespace {ns}, operator log {op.log_path}")
        book = PhaseBook(api, ns)
        try:
            for r in range(1, args.pause_rounds + 1):
                _suspend_then_cancel(custom, book, ns, r, args, out)
                _delete_all_executions(layout, ns, book)
                _wait_no_pods(core, ns)
            out.update(_wake_lateness(custom, book, ns, args))
        finally:
            book.stop()
    return out


def _suspend_then_cancel(custom, book: PhaseBook, ns: str, r: int, args, out: dict) -> None:
    root = f"tree-{r}"
    names = tree_names(root, args.pause_depth, 2)
    out["size"] = len(names)
    create_executions(custom, ns, [execution(root, TREE,
                                             {"depth": args.pause_depth, "fanout": 2, "stepSeconds": 3600}, args.grace)])
    book.wait_count(["Running"], len(names), 900, f"the {len(names)} executions of {root} Running", names=names)
    time.sleep(2)
    t0 = time.monotonic()
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, root, {"spec": {"suspend": True}})
    out["suspend_s"].append(book.wait_count(["Suspended"], len(names), args.grace + 600, f"{root} all Suspended",
                                            names=names) - t0)
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, root, {"spec": {"suspend": False}})
    book.wait_count(["Running"], len(names), 900, f"{root} all Running again", names=names)
    time.sleep(2)
    t0 = time.monotonic()
    patch_cancel(custom, ns, root)
    out["cancel_s"].append(book.wait_count(["Cancelled"], len(names), args.grace + 600, f"{root} all Cancelled",
                                           names=names) - t0)
    log(f"  [{r}/{args.pause_rounds}] tree of {len(names)}: suspend -> all Suspended {out['suspend_s'][-1]:.2f}s, "
        f"cancel -> all Cancelled {out['cancel_s'][-1]:.2f}s")


def _wake_lateness(custom, book: PhaseBook, ns: str, args) -> dict:
    """One execution created a second, so their starts and wakes do not queue behind each other."""
    created: dict[str, float] = {}
    names = [f"nap-{i:02d}" for i in range(args.pause_naps)]
    for name in names:
        created[name] = time.time()
        create_executions(custom, ns, [execution(name, "flux_bench_workflows:nap",
                                                 {"sleepSeconds": args.pause_sleep}, args.grace)])
        time.sleep(1)
    book.wait_count(["Succeeded"], len(names), 600, "every nap Succeeded", names=names)
    floor, late = [], []
    for name in names:
        checkpoint = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)["status"]["checkpoint"]
        steps = {s["name"]: _stamp(s["completedAt"]) for s in checkpoint["steps"]}
        floor.append(steps["before"] - created[name])
        late.append(steps["after"] - _stamp(checkpoint["results"]["sleep-1"]["wakeAt"]))
    log(f"  wake lateness p50 {statistics.median(late):.2f}s p95 {_p95(late):.2f}s; start floor p50 "
        f"{statistics.median(floor):.2f}s p95 {_p95(floor):.2f}s (N={len(names)})")
    return {"wake_late_s": late, "start_floor_s": floor}
