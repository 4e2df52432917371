"""Fairness between namespaces, on a KWOK node: a storm of refused executions in one namespace must not
make another namespace's deadlines, cancels and starts late (issue 16, item 6).

Storms, each in a namespace of its own, `--fairness-storm` executions (300) created once, never started:
  quota    a ResourceQuota `pods: 0`: every runner pod is refused with 403 "exceeded quota", which is
           transient: retried with backoff forever, about 8 requests a try.
  invalid  `podTemplate.tolerations: [{key: x, operator: Bogus}]`: the pod is refused with 422 on every try
           (once issue 16's item 5 ends such an execution Failed, this storm is over after one try each:
           the raw data keeps each round's count of refusals, so it shows).
Conditions, interleaved round by round (the order rotates each round): every operator code measured (this
checkout; with --fairness-before REV also that commit, run from a `git archive` of it with the same
interpreter) x (no storm, quota, invalid). A round starts a fresh operator (default flags, a Lease of its
own) watching the bystander namespace and the storm's, waits until it has refused every storm execution
at least once (so the storm is on), then creates in the bystander namespace `--fairness-deadlines`
executions with activeDeadlineSeconds 20, 21, ... and `--fairness-cancels` to cancel once Running, and
measures from a watch:
  start     the create call -> Running delivered
  cancel    the merge PATCH of spec.cancel -> Cancelling delivered
  deadline  Cancelling delivered - (startedAt + activeDeadlineSeconds): the operator's own rule (from
            creationTimestamp for one the deadline ended before it started, as the operator does)
The bystander's runner pods run on the KWOK node (Running at once, no process); the process node is
cordoned meanwhile. The baseline is the same code with no storm, in the same run.

    .venv/bin/python -m bench.run --parts fairness --fairness-before 24552cf     (make bench-fairness)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from flux_api import GROUP, PLURAL, VERSION
from flux_api.timefmt import parse_time
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.layout import Layout

from bench.benchkit import (OPERATOR_EXTRA, REPO, RESULTS, BenchError, Operator, bench_namespace, create_executions,
                            execution, kubectl, log, operator_codes, patch_cancel, summary)
from bench.books import PhaseBook
from localcluster.nodes import kwok
from localcluster.probes import wait_for

LEAF = "flux_examples.longrun:main"
LEAF_INPUT = {"steps": 1, "stepSeconds": 3600}
STORMS = ("none", "quota", "invalid")
REFUSAL_KIND = {"quota": "QuotaExceeded", "invalid": "Invalid"}  # flux_reconcile_errors_total's kinds
STARTED = ("Running", "Cancelling", "Cancelled")
CANCELLING = ("Cancelling", "Cancelled")
FIRST_DEADLINE = 20  # seconds after start: every bystander execution of the round is Running by then (with fairness)
PHASE_TIMEOUT = 420  # without fairness a bystander waits behind the whole storm: minutes, not seconds


def _storm_bodies(kind: str, n: int) -> list[dict]:
    bodies = []
    for i in range(n):
        body = execution(f"storm-{i:04d}", LEAF, LEAF_INPUT, 30)
        if kind == "invalid":
            body["spec"]["podTemplate"] = {"tolerations": [{"key": "x", "operator": "Bogus"}]}
        bodies.append(body)
    return bodies


def _make_storm(core: client.CoreV1Api, custom: client.CustomObjectsApi, kind: str, ns: str, n: int) -> str:
    """Creates the storm; '' when done, else why it could not be made."""
    if kind == "quota":
        core.create_namespaced_resource_quota(ns, {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}})
        wait_for(lambda: (core.read_namespaced_resource_quota("no-pods", ns).status.hard or {}).get("pods"),
                 60, 0.05, "the quota's status", BenchError)
    try:
        create_executions(custom, ns, _storm_bodies(kind, n), workers=8)
    except ApiException as err:
        return f"the API server refused the storm's executions: {err.status} {err.reason}"
    return ""


def _refusals(op: Operator, storm: str) -> float:
    if storm == "none":
        return 0.0
    text = op.samples()
    return sum(v for k, v in text.items() if k == f'flux_reconcile_errors_total{{kind="{REFUSAL_KIND[storm]}"}}')


def _round(layout: Layout, api: client.ApiClient, book: PhaseBook, bystander: str, storm_ns: dict[str, str],
           code_name: str, code: dict, storm: str, index: int, cfg: dict) -> dict:
    custom = client.CustomObjectsApi(api)
    prefix = f"r{index:02d}"
    watched = [bystander] + ([storm_ns[storm]] if storm != "none" else [])
    op = Operator(layout, watched, f"fair-{prefix}-{code_name}-{storm}", command=tuple(code["command"])).start()
    out: dict = {"round": index, "code": code_name, "storm": storm, "operatorPid": op.pid,
                 "load": [Path("/proc/loadavg").read_text().split()[0]]}
    try:
        wait_for(op.leading, 90, 0.2, "the round's operator to lead", BenchError)
        began = time.monotonic()
        if storm != "none":
            # The storm is on once every storm execution has been refused at least once.
            try:
                wait_for(lambda: _refusals(op, storm) >= cfg["storm"],
                         cfg["settleMax"], 1, f"{cfg['storm']} refusals", BenchError)
            except BenchError:
                pass  # recorded: a storm that never got going (e.g. ended Failed earlier) shows in the counts
        out["settleSeconds"] = round(time.monotonic() - began, 1)
        out["refusalsAtStart"] = _refusals(op, storm)

        deadlines = {f"{prefix}-dl-{i:02d}": FIRST_DEADLINE + i for i in range(cfg["deadlines"])}
        cancels = [f"{prefix}-cx-{i:02d}" for i in range(cfg["cancels"])]
        created: dict[str, float] = {}

        def create(name: str) -> None:
            body = execution(name, LEAF, LEAF_INPUT, 30, labels={"flux.dev/round": prefix}, deadline=deadlines.get(name))
            created[name] = time.time()
            create_executions(custom, bystander, [body], workers=1)

        names = [*deadlines, *cancels]
        for name in names:  # one after another: each its own creation time
            create(name)
        try:
            book.wait_count(STARTED, len(names), PHASE_TIMEOUT, "the bystander's executions to start", names=names)
        except BenchError as err:
            out["startTimeout"] = str(err)
        asked: dict[str, float] = {}
        for name in cancels:
            if book.reached(name, "Running"):
                asked[name] = time.time()
                patch_cancel(custom, bystander, name, reason="fairness bench")
                time.sleep(0.3)
        try:
            book.wait_count(CANCELLING, len(names), PHASE_TIMEOUT + FIRST_DEADLINE + len(deadlines),
                            "the bystander's cancels and deadlines", names=names)
        except BenchError as err:
            out["endTimeout"] = str(err)
        out["refusalsAtEnd"] = _refusals(op, storm)
        out["start"] = {n: round(seen[1] - created[n], 3) for n in names
                        if (seen := book.reached(n, "Running") or book.reached(n, "Cancelling"))}
        out["cancel"] = {n: round(seen[1] - asked[n], 3) for n in asked
                         if (seen := book.reached(n, "Cancelling") or book.reached(n, "Cancelled"))}
        out["deadline"], out["deadlineDecided"], out["deadlineFrom"], out["outcomes"] = {}, {}, {}, {}
        for name, seconds in deadlines.items():
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, bystander, PLURAL, name)
            status = obj.get("status") or {}
            # The operator's own rule: from startedAt, or from creation for one that never started (then
            # the deadline ends it Cancelled/NotStarted; creationTimestamp has whole seconds only).
            started = parse_time(status.get("startedAt"))
            base = started or parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
            cancellation = status.get("cancellation") or {}
            key = f"{status.get('phase')}/{cancellation.get('source')}/{cancellation.get('outcome')}"
            out["outcomes"][key] = out["outcomes"].get(key, 0) + 1
            seen = book.reached(name, "Cancelling") or book.reached(name, "Cancelled")
            if base is None or seen is None:
                continue
            due = base.timestamp() + seconds
            out["deadlineFrom"][name] = "startedAt" if started else "creationTimestamp"
            out["deadline"][name] = round(seen[1] - due, 3)
            decided = parse_time(cancellation.get("requestedAt"))
            if decided is not None:
                out["deadlineDecided"][name] = round(decided.timestamp() - due, 3)
        out["missing"] = {"start": len(names) - len(out["start"]), "cancel": len(cancels) - len(out["cancel"]),
                          "deadline": len(deadlines) - len(out["deadline"])}
    finally:
        op.stop()
        out["load"].append(Path("/proc/loadavg").read_text().split()[0])
        kubectl(layout, "delete", f"{PLURAL}.{GROUP}", "-n", bystander, "-l", f"flux.dev/round={prefix}",
                "--wait=false", check=False)
    return out


def _pool(rounds: list[dict], code: str, storm: str, what: str) -> list[float]:
    return [v for r in rounds if r["code"] == code and r["storm"] == storm for v in r.get(what, {}).values()]


def run_fairness(layout: Layout, api: client.ApiClient, args) -> dict:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    keep: list = []
    codes = operator_codes(getattr(args, "fairness_before", None), keep)
    cfg = {"storm": args.fairness_storm, "rounds": args.fairness_rounds, "deadlines": args.fairness_deadlines,
           "cancels": args.fairness_cancels, "settleMax": 150, "firstDeadlineSeconds": FIRST_DEADLINE}
    out: dict = {"source": "KWOK node (bystander runner pods report Running without a process; the storm's pods are "
                           "never admitted)",
                 "node": "kwok", "config": cfg, "codes": {k: {x: v[x] for x in ("commit", "dirty", "command")}
                                                          for k, v in codes.items()},
                 "operatorFlags": "defaults (qps 50, burst 300, 4 workers, leader election on, lease 15s)"
                                  + (f" + {' '.join(OPERATOR_EXTRA)}" if OPERATOR_EXTRA else ""),
                 "rounds": [], "storms": {}}
    began = time.monotonic()
    with kwok.beside(layout, api), bench_namespace(core, "fair-bystander") as bystander, \
            bench_namespace(core, "fair-quota") as ns_quota, bench_namespace(core, "fair-invalid") as ns_invalid:
        storm_ns = {"quota": ns_quota, "invalid": ns_invalid}
        storms = ["none"]
        for kind, ns in storm_ns.items():
            why = _make_storm(core, custom, kind, ns, cfg["storm"])
            out["storms"][kind] = {"namespace": ns, "made": not why, "why": why}
            if why:
                log(f"fairness: no {kind} storm: {why}")
            else:
                storms.append(kind)
        conditions = [(c, s) for c in codes for s in storms]
        book = PhaseBook(api, bystander)
        RESULTS.mkdir(parents=True, exist_ok=True)
        progress = RESULTS / f"fairness-rounds-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.jsonl"
        log(f"fairness: each round is appended to {progress.relative_to(REPO)}")
        try:
            index = 0
            for r in range(cfg["rounds"]):
                shift = r % len(conditions)  # interleaved, and no condition always first
                for code_name, storm in conditions[shift:] + conditions[:shift]:
                    log(f"fairness round {r + 1}/{cfg['rounds']}: {code_name} code, storm {storm}")
                    result = _round(layout, api, book, bystander, storm_ns, code_name, codes[code_name], storm,
                                    index, cfg)
                    index += 1
                    out["rounds"].append(result)
                    with progress.open("a") as f:  # every round as it ends: an interrupted run keeps them
                        f.write(json.dumps(result) + "\n")
                    dl = list(result.get("deadline", {}).values())
                    log(f"  deadline late max {max(dl, default=float('nan')):.2f}s, "
                        f"cancel max {max(result.get('cancel', {}).values(), default=float('nan')):.2f}s, "
                        f"start max {max(result.get('start', {}).values(), default=float('nan')):.2f}s; "
                        f"refusals {result.get('refusalsAtStart')} -> {result.get('refusalsAtEnd')}")
        finally:
            book.stop()
            for tree in keep:
                tree.cleanup()
    out["summary"] = {f"{code}/{storm}": {what: summary(_pool(out["rounds"], code, storm, what))
                                          for what in ("deadline", "cancel", "start", "deadlineDecided")}
                      for code in codes for storm in storms}
    out["duration_s"] = time.monotonic() - began
    return out


__all__ = ["run_fairness"]
