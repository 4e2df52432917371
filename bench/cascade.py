"""The cascade figure: a real tree of 31 executions cancelled at its root, against as many bare pods deleted at
once, rounds interleaved (issue 19: the floor of a cascade is its pods' own deletion). On the node the run uses:
the process node, or the real node (FLUX_NODE=real), where the goal is set.

    .venv/bin/python -m bench.run --parts cascade --tree-rounds 20
    FLUX_NODE=real FLUX_BENCH_DIR=.cluster-bench-real .venv/bin/python -m bench.run --parts cascade --tree-rounds 20
"""

from __future__ import annotations

import time
from collections import Counter

from flux_api.names import runner_pod_name_for
from fluxtest.podlogs import pod_log
from kubernetes import client
from localcluster.layout import Layout
from localcluster.nodes import choice
from localcluster.probes import wait_for
from prometheus_client.parser import text_string_to_metric_families

from bench import cancel_latency as cl
from bench.benchkit import (BenchError, bench_namespace, create_executions, execution, kubectl, log, parallel,
                            patch_cancel, running_operator)
from bench.books import PhaseBook, PodBook
from bench.process_parts import (COMPARABLE_PROGRAM, RUNNING_MARK, _delete_all_executions, _outcomes, _pod_spec,
                                 _wait_no_pods)

TREE = "flux_examples.tree:full"  # in the examples image the real node runs, and installed for the process node


def tree_names(root: str, depth: int, fanout: int) -> list[str]:
    names, level = [root], [root]
    for _ in range(depth):
        level = [f"{parent}-c{i}" for parent in level for i in range(fanout)]
        names += level
    return names


def _levels(book: PhaseBook, names: list[str], t0: float) -> dict[int, dict[str, float]]:
    """Per depth of the tree: when (s after the root's PATCH) its executions went Cancelling and Cancelled."""
    levels: dict[int, dict[str, list[float]]] = {}
    for name in names:
        depth = name.count("-c")
        for phase in ("Cancelling", "Cancelled"):
            seen = book.reached(name, phase)
            if seen is not None:
                levels.setdefault(depth, {}).setdefault(phase, []).append(seen[0] - t0)
    return {depth: {f"{phase}{edge}": round(fn(times), 3) for phase, times in by_phase.items()
                    for edge, fn in (("First", min), ("Last", max))}
            for depth, by_phase in sorted(levels.items())}


def api_requests(metrics: str) -> Counter[str]:
    """The API server's own count of the requests it served (all clients), by verb and resource."""
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            labels = sample.labels
            what = "/".join(x for x in (labels.get("resource"), labels.get("subresource")) if x)
            if sample.name == "apiserver_request_total" and what:
                counts[f"{labels.get('verb', '')} {what}"] += int(sample.value)
    return counts


def requests_served(layout: Layout) -> Counter[str]:
    """What the API server has served since it started, by verb and resource (its /metrics)."""
    return api_requests(kubectl(layout, "get", "--raw", "/metrics").stdout)


def run_cascade(layout: Layout, api: client.ApiClient, args) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    grace, depth, fanout = args.grace, args.tree_depth, args.tree_fanout
    out: dict = {"source": f"{choice.of(layout).kind} node", "depth": depth, "fanout": fanout, "tree_s": [],
                 "bare_s": [], "outcomes": []}
    with bench_namespace(core, "cascade") as ns, \
            running_operator(layout, [ns], f"cascade-{ns}") as op:
        log(f"cascade: namespace {ns}, operator log {op.log_path}")
        book = PhaseBook(api, ns)
        try:
            for r in range(1, args.tree_rounds + 1):
                root = f"tree-{r}"
                names = tree_names(root, depth, fanout)
                out["size"] = len(names)
                create_executions(custom, ns, [execution(root, TREE,
                                                         {"depth": depth, "fanout": fanout, "stepSeconds": 3600},
                                                         grace)])
                book.wait_count(["Running"], len(names), 900, f"the {len(names)} executions of {root} Running",
                                names=names)
                _wait_pod_logs(core, ns, [runner_pod_name_for(x, 0) for x in names], RUNNING_MARK, 300)
                time.sleep(2)
                before = requests_served(layout)
                t0 = time.monotonic()
                patch_cancel(custom, ns, root)
                done = book.wait_count(["Cancelled"], len(names), grace + 600, f"{root} all Cancelled", names=names)
                out["tree_s"].append(done - t0)
                served = +(requests_served(layout) - before)  # every client's, from the PATCH to a moment after
                out.setdefault("requests", []).append(dict(served.most_common()))
                out["outcomes"].append(_outcomes(book, names))
                out.setdefault("levels", []).append(_levels(book, names, t0))

                log(f"  [{r}/{args.tree_rounds}] tree of {len(names)} all Cancelled {out['tree_s'][-1]:.2f}s "
                    f"{out['outcomes'][-1]}; the API server served {sum(served.values())} requests "
                    f"{dict(served.most_common(4))}")
                _delete_all_executions(layout, ns, book)
                _wait_no_pods(core, ns)
                out["bare_s"].append(_bare_pods_deleted_at_once(layout, api, ns, len(names), grace, r))
                log(f"  [{r}/{args.tree_rounds}] {len(names)} bare pods deleted at once, all gone "
                    f"{out['bare_s'][-1]:.2f}s")
                _wait_no_pods(core, ns)
        finally:
            book.stop()
    return out


def _bare_pods_deleted_at_once(layout: Layout, api: client.ApiClient, ns: str, n: int, grace: int, r: int) -> float:
    """The cascade's floor: as many bare pods as the tree has executions, the same grace, each running the
    comparable program, deleted at once (one DELETE each, in parallel); seconds until the last is gone."""
    core = client.CoreV1Api(api)
    label = f"bare-{r}"
    pods = PodBook(api, ns, f"bench={label}")
    try:
        parallel(lambda i: core.create_namespaced_pod(ns, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{label}-{i:02d}", "labels": {"bench": label}},
            "spec": _pod_spec(grace, COMPARABLE_PROGRAM, "OnFailure", choice.of(layout))}), range(n))
        pods.wait(lambda b: b.running() >= n, 600, f"{n} bare pods Running")
        _wait_pod_logs(core, ns, [f"{label}-{i:02d}" for i in range(n)], cl.FLOOR_READY_MARK, 300)
        time.sleep(2)
        t0 = time.monotonic()
        parallel(lambda i: core.delete_namespaced_pod(f"{label}-{i:02d}", ns), range(n))
        done = pods.wait(lambda b: len(b.gone_at) >= n and not b.phase, grace + 300, f"{n} bare pods gone")
        return done - t0
    finally:
        pods.stop()


def _wait_pod_logs(core: client.CoreV1Api, ns: str, pods: list[str], mark: str, timeout: float) -> None:
    """Until every pod's runner container has logged `mark` (read through the API: any node kind)."""
    waiting = set(pods)

    def all_logged() -> bool:
        looked_at = sorted(waiting)
        logs = parallel(lambda pod: pod_log(core, ns, pod, "runner"), looked_at)  # "" until it runs
        waiting.difference_update(pod for pod, text in zip(looked_at, logs) if mark in text)
        return not waiting

    wait_for(all_logged, timeout, 0.5, f"{len(pods)} pods in {ns} logging {mark!r}", BenchError)
