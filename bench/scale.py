"""The scale figures, on a KWOK node: thousands of runner pods that report Running without a process.

One operator (default flags, its own Lease) watches two namespaces through the counting proxy:
  1. 1,000 Executions start (runner pods on the KWOK node, so no runner ever checkpoints: from the
     operator's view they are Running as soon as KWOK reports the container running). Once settled,
     nothing changes; the operator's requests are counted over a window: requests per minute.
     Its VmHWM (peak RSS) is read from /proc: the figure at 1,000.
  2. 1,000 more, each with activeDeadlineSeconds, set to fall after all of them are Running and
     spread over 5 minutes (the operator starts them all within the last ~40 s of their start-up, so
     the deadlines fall over ~5.5 min: ~3/s, within its default write budget of 50 requests/s). Lateness = when a watch saw the execution leave Running
     (Cancelling or Cancelled) minus startedAt + activeDeadlineSeconds (the operator's own rule).
     Meanwhile a load generator (bench/traffic.py) sends the first 1,000's runner traffic, a cancel
     check and a checkpoint write `--scale-traffic` (50) times a second in all (0: none): the deadlines
     fall on an operator that receives checkpoints.
  3. 3,000 more (5,000 in all, every one of them in the operator's memory): VmHWM at 5,000.

    .venv/bin/python -m bench.run --scale-only          (make bench-scale)
"""

from __future__ import annotations

import contextlib
import math
import time
from datetime import datetime

from flux_api.timefmt import parse_time
from kubernetes import client
from localcluster.layout import Layout

from bench.benchkit import BenchError, Operator, bench_namespace, create_executions, execution, log, percentile, summary
from bench.books import PhaseBook
from bench.proxy import CountingProxy, tally
from bench.traffic import LoadGenerator
from localcluster.nodes import kwok
from localcluster.probes import wait_for

LEAF = "flux_examples.longrun:main"
LEAF_INPUT = {"steps": 1, "stepSeconds": 3600}
STARTED = ("Running", "Cancelling", "Cancelled")
STALL = 120  # seconds of an idle operator while some executions are not Running: those are stuck


def _requests_window(proxy: CountingProxy, op: Operator, seconds: float) -> dict:
    """Every request the operator made over `seconds` of nothing happening."""
    api_before = op.api_requests()
    start = time.monotonic()
    time.sleep(seconds)
    end = time.monotonic()
    api_after = op.api_requests()
    requests = proxy.between(start, end)
    lease = [r for r in requests if r.resource == "leases"]
    minutes = (end - start) / 60
    return {"windowSeconds": round(end - start, 1), "requests": len(requests),
            "perMinute": len(requests) / minutes, "perMinuteWithoutLease": (len(requests) - len(lease)) / minutes,
            "leasePerMinute": len(lease) / minutes, "byKind": tally(requests),
            "fluxApiRequestsMetricDelta": api_after - api_before}


def _start(custom: client.CustomObjectsApi, book: PhaseBook, namespace: str, bodies: list[dict], total: int,
           timeout: float, stuck: dict, proxy: CountingProxy) -> float:
    """Creates `bodies` at once; seconds until `total` executions of the namespace are Running.

    Executions that stay Pending although KWOK runs their pods are counted in `stuck` (an operator
    finding, not a reason to lose the other figures): the part goes on once the operator has gone
    STALL seconds without a request other than its Lease renewals while some are still not Running."""
    started = time.monotonic()
    create_executions(custom, namespace, bodies)
    created = time.monotonic() - started
    limit = started + timeout
    busy, busy_at = _work_requests(proxy), time.monotonic()
    try:
        while True:  # in slices, so that a stall ends the wait early
            try:
                # Past Running counts too: a deadline may fall before the last of them has started.
                done = book.wait_count(STARTED, total, 30, f"{total} Running executions in {namespace}")
                break
            except BenchError:
                now, work = time.monotonic(), _work_requests(proxy)
                if work > busy:
                    busy, busy_at = work, now
                if now > limit or now - busy_at > STALL:
                    raise
    except BenchError as err:
        running = book.count(STARTED)
        pending = sorted(n for n, p in book.phase.items() if p in (None, "Pending"))
        waited = time.monotonic() - started
        stuck[namespace] = {"expected": total, "running": running, "pending": len(pending),
                            "examples": pending[:10], "waitedSeconds": round(waited)}
        log(f"  only {running}/{total} Running after {waited:.0f}s (operator idle for {STALL}s); "
            f"{len(pending)} stay Pending: {err}")
        return float("nan")
    log(f"  {len(bodies)} created in {created:.1f}s, {total} Running after {done - started:.1f}s")
    return done - started


def _work_requests(proxy: CountingProxy) -> int:
    """The operator's requests so far, Lease renewals and watches left out: they go on when it is idle."""
    return sum(1 for r in proxy.since(0) if r.resource != "leases" and r.kind != "watch")


def _lateness(book: PhaseBook, deadlines: dict[str, int]) -> dict:
    observed, decided, outcomes, missing, dues = [], [], {}, [], []
    for name, seconds in deadlines.items():
        obj = book.objects.get(name) or {}
        status = obj.get("status") or {}
        # The operator's own rule: from startedAt, or from creation for one that never started.
        started = parse_time(status.get("startedAt")) or parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
        seen = book.reached(name, "Cancelling") or book.reached(name, "Cancelled")
        if started is None or seen is None:
            missing.append(name)
            continue
        due = started.timestamp() + seconds
        dues.append(due)
        observed.append(seen[1] - due)
        cancellation = status.get("cancellation") or {}
        signalled = parse_time(cancellation.get("signalledAt") or cancellation.get("requestedAt"))
        if signalled is not None:
            decided.append(signalled.timestamp() - due)
        key = f"{status.get('phase')}/{cancellation.get('source')}/{cancellation.get('outcome')}"
        outcomes[key] = outcomes.get(key, 0) + 1
    # How many deadlines fell due in the busiest 10 s: past the operator's write budget, they queue.
    due_times = sorted(dues)
    peak = max((sum(1 for t in due_times[i:] if t < start + 10) for i, start in enumerate(due_times)), default=0)
    return {"observed": summary(observed), "decided": summary(decided), "outcomes": outcomes,
            "missing": len(missing), "early": sum(1 for x in observed if x < 0),
            "dueSpanSeconds": (due_times[-1] - due_times[0]) if due_times else 0, "peakDuePer10s": peak,
            "samples": [{"dueIn": round(due - due_times[0], 3), "observedLate": round(late, 3)}
                        for due, late in sorted(zip(dues, observed))]}


def run_scale(layout: Layout, api: client.ApiClient, n_first: int = 1000, n_deadline: int = 1000,
              n_total: int = 5000, idle_window: float = 240, settle: float = 30, spread: int = 300,
              wait_clean_up: bool = True, traffic_rate: float = 50) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    source = "KWOK node (pods report Running without a process" + (
        f"; checkpoints of the first {n_first} from a load generator, {traffic_rate:g}/s in all, while the "
        "deadlines fall)" if traffic_rate > 0 else "; no runner ever checkpoints)")
    out: dict = {"source": source,
                 "config": {"first": n_first, "deadline": n_deadline, "total": n_total,
                            "idleWindowSeconds": idle_window, "settleSeconds": settle, "trafficRate": traffic_rate,
                            "deadlineSpreadSeconds": spread, "operatorFlags": "defaults (qps 50, burst 300, "
                            "4 workers, leader election on, lease 15s)"}}
    began = time.monotonic()
    with kwok.beside(layout, api), \
            bench_namespace(core, "scale") as ns_idle, bench_namespace(core, "deadline") as ns_dl:
        proxy = CountingProxy(layout).start()
        op = Operator(layout, [ns_idle, ns_dl], f"scale-{ns_idle}", kubeconfig=proxy.kubeconfig).start()
        idle, dl = PhaseBook(api, ns_idle), PhaseBook(api, ns_dl)
        try:
            wait_for(op.leading, 60, 0.2, "the scale operator to lead", BenchError)
            log(f"scale: operator pid {op.pid} (log {op.log_path}), namespaces {ns_idle} {ns_dl}")
            stuck = out["stuckPending"] = {}
            # The baseline: the same process leading, watching, with nothing to hold yet.
            time.sleep(5)
            out["memory_at_zero"] = op.memory()
            log(f"  RSS at 0 executions: {out['memory_at_zero']}")

            # 1. 1,000 at once, then nothing changes.
            bodies = [execution(f"idle-{i:05d}", LEAF, LEAF_INPUT, 30) for i in range(n_first)]
            log(f"scale 1/3: {n_first} executions")
            out["start_first_s"] = _start(custom, idle, ns_idle, bodies, n_first, max(600, n_first), stuck, proxy)
            time.sleep(settle)
            out["memory_at_first"] = op.memory()
            log(f"  RSS at {n_first}: {out['memory_at_first']}; counting requests for {idle_window:.0f}s")
            out["idle_requests"] = _requests_window(proxy, op, idle_window)
            log(f"  {out['idle_requests']['perMinute']:.1f} requests/min "
                f"({out['idle_requests']['perMinuteWithoutLease']:.1f} without the leader Lease)")

            # 2. deadlines, all falling after every one of them is Running.
            took = out["start_first_s"]
            if took != took:  # NaN: some never went Running; the others took at most this long
                took = stuck[ns_idle]["waitedSeconds"] - STALL
            base = max(60, math.ceil(took * n_deadline / max(n_first, 1) * 1.3) + 30)
            deadlines = {f"dl-{i:05d}": base + (i % spread) for i in range(n_deadline)}
            log(f"scale 2/3: {n_deadline} executions with activeDeadlineSeconds {base}..{base + spread - 1}")
            bodies = [execution(name, LEAF, LEAF_INPUT, 30, deadline=s) for name, s in deadlines.items()]
            out["start_deadline_s"] = _start(custom, dl, ns_dl, bodies, n_deadline, max(600, n_deadline),
                                             stuck, proxy)
            loaded = sorted(n for n in idle.phase if n.startswith("idle-"))
            with LoadGenerator(custom, ns_idle, loaded, traffic_rate) if traffic_rate > 0 and loaded \
                    else contextlib.nullcontext() as load:
                dl.wait_count(["Cancelled"], n_deadline, base + spread + 600, f"{n_deadline} deadline cancels")
            if load is not None:
                out["traffic"] = {"rate": traffic_rate, "executions": len(loaded), "requests": load.sent,
                                  "failed": load.failed}
                log(f"  runner traffic meanwhile: {load.sent} requests to {len(loaded)} executions, "
                    f"{load.failed} failed")
            late = _lateness(dl, deadlines)
            out["deadline"] = {"activeDeadlineSeconds": [base, base + spread - 1], **late}
            log(f"  lateness observed p50 {late['observed']['p50']:.3f}s p99 {late['observed']['p99']:.3f}s "
                f"max {late['observed']['max']:.3f}s; outcomes {late['outcomes']}")

            # 3. up to n_total executions in the operator's memory.
            more = n_total - n_first - n_deadline
            if more > 0:
                log(f"scale 3/3: {more} more executions ({n_total} in all)")
                bodies = [execution(f"idle-{i:05d}", LEAF, LEAF_INPUT, 30) for i in range(n_first, n_first + more)]
                out["start_more_s"] = _start(custom, idle, ns_idle, bodies, n_first + more, max(900, more),
                                             stuck, proxy)
                time.sleep(settle)
                out["memory_at_total"] = op.memory()
                log(f"  RSS at {n_total}: {out['memory_at_total']}")
                window = min(idle_window, 120)
                out["idle_requests_at_total"] = _requests_window(proxy, op, window)
                log(f"  {out['idle_requests_at_total']['perMinute']:.1f} requests/min at {n_total}")
            out["operator_requests_total"] = tally(proxy.since(0))
        finally:
            op.stop()
            idle.stop()
            dl.stop()
            proxy.stop()
            # Delete while kwok still runs: only it finishes the pods' deletion.
            for ns in (ns_idle, ns_dl):
                core.delete_namespace(ns, propagation_policy="Background")
            if wait_clean_up:  # when the cluster goes down next, ten minutes of deletions buy nothing
                try:
                    wait_for(lambda: not [n for n in core.list_namespace().items
                                            if n.metadata.name in (ns_idle, ns_dl)],
                             600, 2, "the scale namespaces to be deleted", BenchError)
                except Exception as err:  # noqa: BLE001 - a slow clean-up must not lose the figures
                    log(f"  clean-up: {err}")
    out["duration_s"] = time.monotonic() - began
    out["finishedAt"] = datetime.now().isoformat(timespec="seconds")
    return out


__all__ = ["run_scale", "percentile"]
