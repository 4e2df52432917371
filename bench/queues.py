"""Concurrency limits at scale (issue 22, item 4), on a KWOK node (runner pods report Running without a process).

`--queues-n` (1,000) executions are created at once under one ConcurrencyLimit of `--queues-max` (10); one
operator serves that namespace and a second one with no limit. Then:

- idle: the operator's API requests over `--queues-idle` seconds (a safety pass included) with the queue
  full and nothing changing, against the same window measured before the queue was made;
- hand-over, `--queues-rounds` (20) rounds interleaved with the baseline: the oldest running execution is
  cancelled, and the time from its `Cancelled` to the next in line `Running` is set against the start of one
  execution where no limit is (create -> `Running`);
- drain: the rest are cancelled `max` at a time; each time, the ones that start must be exactly the next
  `max` in line (creation time, then name, as the operator orders them).

    .venv/bin/python -m bench.run --parts queues
"""

from __future__ import annotations

import time

from flux_api import GROUP, VERSION
from flux_api.names import LIMIT_PLURAL
from kubernetes import client
from localcluster.layout import Layout
from localcluster.nodes import kwok
from localcluster.probes import wait_for

from bench.benchkit import (
    BenchError,
    bench_namespace,
    create_executions,
    execution,
    log,
    parallel,
    patch_cancel,
    percentile,
    running_operator,
)
from bench.books import PhaseBook
from bench.process_parts import LONGRUN, ONE_LONG_STEP

LIMIT = "bench"


def _line_key(obj: dict) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta["creationTimestamp"], meta["name"]


def _limit_status(custom: client.CustomObjectsApi, ns: str) -> dict:
    return custom.get_namespaced_custom_object(GROUP, VERSION, ns, LIMIT_PLURAL, LIMIT).get("status") or {}


def _wait_settled(custom: client.CustomObjectsApi, ns: str, active: int, queued: int, timeout: float) -> None:
    def shows() -> bool:
        status = _limit_status(custom, ns)
        return (status.get("active"), status.get("queued")) == (active, queued)

    wait_for(shows, timeout, 0.5, f"the limit to show {active} active, {queued} queued", BenchError)


def _said_queued(custom: client.CustomObjectsApi, ns: str) -> int:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "executions")["items"]
    return sum(1 for o in items if any(c.get("type") == "Started" and c.get("reason") == "Queued"
                                       for c in (o.get("status") or {}).get("conditions") or []))


def _wait_all_queued(custom: client.CustomObjectsApi, ns: str, queued: int, timeout: float) -> float:
    """Until every waiting execution's own status says Queued (the limit's usage is computed before those
    writes land): only then is the operator idle."""
    wait_for(lambda: _said_queued(custom, ns) >= queued, timeout, 1.0, f"{queued} executions to say Queued",
             BenchError)
    return time.monotonic()


def _requests_over(op, seconds: float) -> float:
    before = op.api_requests()
    time.sleep(seconds)
    return op.api_requests() - before


def _line_keys(custom: client.CustomObjectsApi, ns: str) -> dict[str, tuple[str, str]]:
    """Each execution's place in line as the operator orders them: creation time, then name."""
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "executions")["items"]
    return {o["metadata"]["name"]: _line_key(o) for o in listed}


def _in_line(book: PhaseBook, keys: dict[str, tuple[str, str]]) -> list[str]:
    """The ones still Pending, in line order."""
    return sorted((n for n in keys if book.phase.get(n) in (None, "Pending")), key=keys.__getitem__)


def run_queues(layout: Layout, api: client.ApiClient, args) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    n, cap, grace = args.queues_n, args.queues_max, args.grace
    out: dict = {"source": "KWOK node (runner pods report Running without a process)", "node": "kwok", "n": n,
                 "max": cap, "handover_s": [], "start_s": [], "drain": [],
                 "operatorFlags": "defaults (qps 50, burst 300, 4 workers, leader election on, safety pass 60 s)"}
    with kwok.beside(layout, api), bench_namespace(core, "queue") as ns, bench_namespace(core, "free") as free, \
            running_operator(layout, [ns, free], f"queues-{ns}") as op:
        log(f"queues: namespace {ns} (limit {cap}), {free} (none), operator log {op.log_path}")
        book, free_book = PhaseBook(api, ns), PhaseBook(api, free)
        try:
            out["idle_requests_before"] = _requests_over(op, args.queues_idle)
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, LIMIT_PLURAL, {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "ConcurrencyLimit", "metadata": {"name": LIMIT},
                "spec": {"max": cap, "selector": {}}})
            names = [f"q-{i:04d}" for i in range(n)]
            t0 = time.monotonic()
            create_executions(custom, ns, [execution(x, LONGRUN, ONE_LONG_STEP, grace) for x in names])
            book.wait_count(["Running"], cap, 600, f"{cap} Running")
            _wait_settled(custom, ns, cap, n - cap, 900)
            out["queue_settled_s"] = _wait_all_queued(custom, ns, n - cap, 900) - t0
            keys = _line_keys(custom, ns)
            log(f"  {n} created, {cap} Running, {n - cap} queued after {out['queue_settled_s']:.1f}s")
            out["idle_requests_queued"] = _requests_over(op, args.queues_idle)
            out["idle_window_s"] = args.queues_idle
            for r in range(args.queues_rounds):
                for kind in (("handover", "start") if r % 2 == 0 else ("start", "handover")):
                    if kind == "start":
                        name = f"free-{r:03d}"
                        t = time.monotonic()
                        create_executions(custom, free, [execution(name, LONGRUN, ONE_LONG_STEP, grace)])
                        free_book.wait_count(["Running"], 1, 120, f"{name} Running", names=[name])
                        out["start_s"].append(free_book.first[name]["Running"][0] - t)
                    else:
                        out["handover_s"].append(_handover(book, custom, ns, keys))
                log(f"  [{r + 1}/{args.queues_rounds}] hand-over {out['handover_s'][-1]:.2f}s, "
                    f"unlimited start {out['start_s'][-1]:.2f}s")
            out["drain"] = _drain(book, custom, ns, keys)
            out["drain_out_of_order"] = sum(1 for step in out["drain"] if not step["inOrder"])
        finally:
            book.stop()
            free_book.stop()
    for kind in ("handover", "start"):
        out[f"{kind}_p50"], out[f"{kind}_p95"] = percentile(out[f"{kind}_s"], 50), percentile(out[f"{kind}_s"], 95)
    return out


def _handover(book: PhaseBook, custom: client.CustomObjectsApi, ns: str, keys: dict[str, tuple[str, str]]) -> float:
    """Cancels the oldest running one; seconds from its Cancelled to the next in line Running."""
    running = sorted((x for x in keys if book.phase.get(x) == "Running"), key=keys.__getitem__)
    line = _in_line(book, keys)
    if not running or not line:
        raise BenchError("nothing left to hand over")
    gone, following = running[0], line[0]
    patch_cancel(custom, ns, gone)
    book.wait_count(["Cancelled"], 1, 120, f"{gone} Cancelled", names=[gone])
    book.wait_count(["Running"], 1, 120, f"{following} Running", names=[following])
    return book.first[following]["Running"][0] - book.first[gone]["Cancelled"][0]


def _drain(book: PhaseBook, custom: client.CustomObjectsApi, ns: str, keys: dict[str, tuple[str, str]]) -> list[dict]:
    """Cancels all the running ones at once, again and again; checks each time that as many start, and that
    they are the next in line."""
    steps = []
    while True:
        line = _in_line(book, keys)
        running = [x for x in keys if book.phase.get(x) == "Running"]
        if not running:
            return steps
        expected = line[:len(running)]
        t = time.monotonic()
        parallel(lambda x: patch_cancel(custom, ns, x), running)
        book.wait_count(["Cancelled"], len(running), 300, "the running ones Cancelled", names=running)
        if expected:
            book.wait_count(["Running"], len(expected), 300, "the next in line Running", names=expected)
        started = [x for x in keys if book.phase.get(x) == "Running"]
        steps.append({"cancelled": len(running), "expected": len(expected), "seconds": time.monotonic() - t,
                      "inOrder": sorted(started) == sorted(expected)})
