"""Turns the raw results of bench/run.py into rows: figure, measured, baseline, ratio, target, met."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from bench.report_starts import cpu_table, requests_table, starts_rows
from bench.rows import ms as _ms
from bench.rows import row as _row
from bench.rows import seconds as _s


def _cascade_row(k: dict) -> dict:
    """Against 31 bare pods deleted at once (`bare_s`); a result from before that baseline compared with one
    execution's cancel (`single_s`) and is reported as it was."""
    tree = statistics.median(k["tree_s"])
    figure = (f"cascade: tree of {k.get('size')} (depth {k['depth']}, fanout {k['fanout']}) all Cancelled, "
              f"median of {len(k['tree_s'])}")
    if k.get("bare_s"):
        bare = statistics.median(k["bare_s"])
        spread = f"tree p95 {_s(_p95(k['tree_s']))}, bare p95 {_s(_p95(k['bare_s']))}"
        return _row(figure, k["source"], _s(tree), f"{k.get('size')} bare pods deleted at once, all gone: {_s(bare)}",
                    f"{tree / bare:.2f}x", "<= 1.5x", tree / bare <= 1.5, note=spread)
    single = statistics.median(k["single_s"])
    return _row(figure, k["source"], _s(tree), f"one execution patch -> Cancelled: {_s(single)}",
                f"{tree / single:.2f}x", "<= 3x", tree / single <= 3.0)


def _pause_rows(pa: dict) -> list[dict]:
    sus, can = statistics.median(pa["suspend_s"]), statistics.median(pa["cancel_s"])
    rows = [_row(f"suspend: tree of {pa.get('size')} (depth {pa['depth']}) all Suspended, median of "
                 f"{len(pa['suspend_s'])}", pa["source"], f"{_s(sus)} (p95 {_s(_p95(pa['suspend_s']))})",
                 f"cancel of the same tree, all Cancelled: {_s(can)} (p95 {_s(_p95(pa['cancel_s']))})",
                 f"{sus / can:.2f}x", "report", None)]
    if pa.get("wake_late_s"):
        late, floor = _p95(pa["wake_late_s"]), _p95(pa["start_floor_s"])
        rows.append(_row(f"durable sleep of {pa['sleepSeconds']:g} s: wake time -> the step after it done, p95 "
                         f"(N={len(pa['wake_late_s'])})", pa["source"],
                         f"{_s(late)} (p50 {_s(statistics.median(pa['wake_late_s']))})",
                         f"create -> first step done (the pod start floor): p95 {_s(floor)}",
                         f"{late - floor:+.2f} s", "<= +1 s", late - floor <= 1.0))
    return rows


def _queues_rows(qu: dict) -> list[dict]:
    hand, start = qu["handover_p95"], qu["start_p95"]
    idle_before, idle_queued = qu["idle_requests_before"], qu["idle_requests_queued"]
    queued = qu["n"] - qu["max"]
    per_queued = max(0.0, idle_queued - idle_before) / queued
    steps = qu.get("drain") or []
    return [
        _row(f"queue of {qu['n']} under a limit of {qu['max']}: one finishes -> the next Running, p95 "
             f"(N={len(qu['handover_s'])})", qu["source"], f"{_s(hand)} (p50 {_s(qu['handover_p50'])})",
             f"create -> Running where no limit is: p95 {_s(start)} (p50 {_s(qu['start_p50'])})",
             f"{hand / start:.2f}x", "<= 1.5x", hand / start <= 1.5),
        _row(f"operator requests while idle, {qu['idle_window_s']:g} s with {queued} queued", qu["source"],
             f"{idle_queued:.0f} requests", f"the same window before the queue: {idle_before:.0f}",
             f"{per_queued:.3f} per queued execution", "0", per_queued == 0),
        _row(f"drain of the queue, {len(steps)} hand-overs of {qu['max']}", qu["source"],
             f"{sum(1 for s in steps if not s['inOrder'])} out of creation order", "", "", "0",
             bool(steps) and all(s["inOrder"] for s in steps)),
    ]


def _p95(xs: list[float]) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _traffic_row(tr: dict) -> dict:
    after, before = tr["median"]["after"], tr["median"].get("before")
    n = len(tr["cpu_ms_per_1000"]["after"])
    figure = (f"operator CPU per 1,000 checkpoint writes ({tr['executions']} executions, {tr['rate']:.0f}/s), "
              f"median of {n}")
    if before is None:
        return _row(figure, tr["source"], f"{after:.0f} ms", "-", "-", "<= 5% of before", None)
    commit = tr["codes"]["before"]["commit"][:7]
    ratio = after / before if before > 0 else float("inf")
    return _row(figure, tr["source"], f"{after:.0f} ms", f"the operator of {commit}: {before:.0f} ms",
                f"{ratio * 100:.1f}%", "<= 5%", ratio <= 0.05)


def _steps_row(st: dict) -> dict:
    run, patch = statistics.median(st["run_s"]), statistics.median(st["patch_ms"])
    per_step_ms = run * 1000 / st["steps"]
    writes = statistics.median(w for w in st["writes"] if w is not None)
    return _row(f"{st['steps']:,} no-op steps of one execution, Running -> Succeeded, median of {len(st['run_s'])}",
                st["source"], f"{_s(run)} (max {_s(max(st['run_s']))}); {per_step_ms:.3f} ms a step; "
                f"{writes:.0f} checkpoint writes ({writes / run:.2f}/s)",
                f"one status PATCH round trip p50 {_ms(patch)} (N={len(st['patch_ms'])})",
                f"a step costs {per_step_ms / patch:.3f}x one PATCH", "<= 100 s", run <= 100.0)


def figures(results: dict) -> list[dict]:
    parts, rows = results.get("parts", {}), []
    c = parts.get("cancel")
    if c:
        s = c["summaryMs"]
        for metric, base, label, base_label in (
                ("patch_to_sigterm", "floor", "patch -> SIGTERM", "DELETE bare pod -> SIGTERM"),
                ("patch_to_cancelled", "job_delete", "patch -> Cancelled", "DELETE Job (foreground) -> pod gone")):
            ratios = {p: s[metric][p] / s[base][p] for p in ("p50", "p99")}
            rows.append(_row(f"{label} p50, p99 (N={s[metric]['n']})", c["source"],
                             f"{_ms(s[metric]['p50'])}, {_ms(s[metric]['p99'])}",
                             f"{base_label}: {_ms(s[base]['p50'])}, {_ms(s[base]['p99'])}",
                             f"{ratios['p50']:.2f}x, {ratios['p99']:.2f}x", "<= 1.5x",
                             max(ratios.values()) <= 1.5))
    t = parts.get("throughput")
    if t:
        if "jobs_all_running_s" in t:
            r = t["executions_all_running_s"] / t["jobs_all_running_s"]
            rows.append(_row(f"start: {t['n']} executions at once, all Running", t["source"],
                             _s(t["executions_all_running_s"]),
                             f"{t['n']} Jobs at once, all pods Running: {_s(t['jobs_all_running_s'])}",
                             f"{r:.2f}x", "<= 1.2x", r <= 1.2))
        if "bare_delete_all_gone_s" in t:
            r = t["bulk_cancel_all_cancelled_s"] / t["bare_delete_all_gone_s"]
            rows.append(_row(f"bulk: {t['n']} running, kubectl flux cancel -l, all Cancelled", t["source"],
                             _s(t["bulk_cancel_all_cancelled_s"]),
                             f"{t['n']} bare pods, kubectl delete pods -l, all gone: {_s(t['bare_delete_all_gone_s'])}",
                             f"{r:.2f}x", "<= 2x", r <= 2.0, note=str(t.get("bulk_cancel_outcomes", ""))))
    st = parts.get("starts")
    if st and st.get("executions_s"):
        rows.extend(starts_rows(st))
    k = parts.get("cascade")
    if k and k.get("tree_s"):
        rows.append(_cascade_row(k))
    tr = parts.get("traffic")
    if tr and tr.get("median"):
        rows.append(_traffic_row(tr))
    bz = parts.get("busy")
    if bz and bz.get("p95"):
        busy, idle = bz["p95"]["busy"], bz["p95"]["idle"]
        load = " (their traffic from the load generator)" if bz.get("load") == "generator" else ""
        rows.append(_row(f"start p95 among {bz['busyExecutions']} executions stepping every {bz['stepSeconds']:g} s"
                         f"{load} (N={len(bz['start_s']['busy'])})", bz["source"],
                         f"{_s(busy)} (p50 {_s(bz['p50']['busy'])})",
                         f"the same starts on the idle cluster: p95 {_s(idle)} (p50 {_s(bz['p50']['idle'])})",
                         f"{busy / idle:.2f}x", "<= 1.5x", busy / idle <= 1.5,
                         note=f"operator CPU per block, idle {bz['operator_cpu_s']['idle']} s, "
                              f"busy {bz['operator_cpu_s']['busy']} s"))
    qu = parts.get("queues")
    if qu and qu.get("handover_s"):
        rows.extend(_queues_rows(qu))
    pa = parts.get("pause")
    if pa and pa.get("suspend_s"):
        rows.extend(_pause_rows(pa))
    st = parts.get("steps")
    if st and st.get("run_s"):
        rows.append(_steps_row(st))
    w = parts.get("writes")
    if w:
        writes, reads = w["writes"], w["reads"]
        rows.append(_row(f"API requests by the operator per leaf cancel (N={len(w['perCancel'])})", w["source"],
                         f"writes median {writes['median']:g} (max {writes['max']}), "
                         f"reads median {reads['median']:g} (max {reads['max']}), refused writes (Conflicts) "
                         f"{sum(c.get('refusedWrites', 0) for c in w['perCancel'])} in all", "-", "-",
                         "<= 4 writes, 0 reads", writes["max"] <= 4 and reads["max"] == 0,
                         note=str(w["perCancel"][0]["byKind"]) if w["perCancel"] else ""))
    sc = parts.get("scale")
    if sc:
        src = "KWOK"
        first = sc.get("config", {}).get("first", 1000)
        total = sc.get("config", {}).get("total", 5000)
        idle = sc.get("idle_requests")
        if idle:
            rows.append(_row(f"operator requests/minute, {first} running executions, nothing changing", src,
                             f"{idle['perMinute']:.1f}/min ({idle['perMinuteWithoutLease']:.1f} without the "
                             f"leader Lease)", "-", "-", "<= 10", idle["perMinute"] <= 10,
                             note=str(idle["byKind"])))
        d = sc.get("deadline")
        if d:
            obs = d["observed"]
            tr = sc.get("traffic")
            load = f" while {tr['executions']} others checkpoint ({tr['rate']:g} writes/s)" if tr else ""
            rows.append(_row(f"deadline lateness p99, {obs['n']} executions with deadlines{load}", src,
                             f"p99 {_s(obs['p99'])} (p50 {_s(obs['p50'])}, max {_s(obs['max'])})", "-", "-",
                             "<= 1 s", obs["p99"] <= 1.0 and d.get("missing", 0) == 0,
                             note=f"outcomes {d['outcomes']}"))
        m1, m5 = sc.get("memory_at_first"), sc.get("memory_at_total")
        if m1:
            measured = f"{m1['VmHWM']:.0f} MB at {first}"
            if m5:
                measured += f", {m5['VmHWM']:.0f} MB at {total}"
            m0 = sc.get("memory_at_zero")
            baseline = f"{m0['VmHWM']:.0f} MB at 0 executions" if m0 else "-"
            ratio = f"{m5['VmHWM'] / m0['VmHWM']:.2f}x" if m0 and m5 else "-"
            note = (f"{(m5['VmHWM'] - m0['VmHWM']) * 1024 / total:.1f} KB per execution above the baseline"
                    if m0 and m5 else "")
            rows.append(_row(f"operator RSS (VmHWM) at {first} and {total} executions", src, measured, baseline,
                             ratio, f"<= 120 MB at {total}", (m5["VmHWM"] <= 120) if m5 else None, note=note))
    fa = parts.get("fairness")
    if fa:
        rows += _fairness_rows(fa)
    f = parts.get("failover")
    if f:
        lease = f["leaseSeconds"]
        # The operator's promise is counted from the dead leader's last renewal (its Lease's renewTime) to
        # the new leader's acquireTime; the time from the kill is shorter and shown beside it.
        took = f.get("takeover_after_last_renewal_s", f["takeover_after_kill_s"])
        all_done = f["cancelled"] == f["n"]
        rows.append(_row(f"failover: leader kill -9 during {f['n']} cancels", f["source"],
                         f"{f['cancelled']}/{f['n']} Cancelled; takeover {_s(took)} after the last renewal "
                         f"({_s(f['takeover_after_kill_s'])} after the kill); all Cancelled "
                         f"{_s(f['all_cancelled_after_first_patch_s'])} after the first patch",
                         f"lease {lease:g} s", f"{took / lease:.2f}x",
                         "all Cancelled; takeover <= lease + 2 s", all_done and took <= lease + 2,
                         note=str(f.get("outcomes", ""))))
    return rows


def _fairness_rows(fa: dict) -> list[dict]:
    """Per operator code and storm: the other namespace's deadline lateness (the target), cancel and start."""
    rows, summ, n = [], fa.get("summary", {}), fa.get("config", {}).get("storm")
    storms = {"quota": f"{n} quota-refused (403) executions next door", "invalid": f"{n} 422-refused executions next door"}
    for code in ("after", "before"):
        base = summ.get(f"{code}/none")
        commit = (fa.get("codes", {}).get(code) or {}).get("commit", "?")[:7]
        if not base:
            continue
        for storm, label in storms.items():
            s = summ.get(f"{code}/{storm}")
            if not s:
                continue
            for what, name, target in (("deadline", "deadline lateness", 1.0), ("cancel", "patch -> Cancelling", None),
                                       ("start", "create -> Running", None)):
                got, ref = s[what], base[what]
                if not got["n"]:
                    rows.append(_row(f"{name} p99 in another namespace, {label} ({code} {commit})", "KWOK",
                                     "none measured", "-", "-", "<= 1 s" if target else "-", False if target else None))
                    continue
                ratio = f"{got['p99'] / ref['p99']:.2f}x" if ref["n"] and ref["p99"] > 0 else "-"
                rows.append(_row(f"{name} p99 in another namespace, {label} ({code} {commit}, N={got['n']})", "KWOK",
                                 f"p99 {_s(got['p99'])} (p50 {_s(got['p50'])}, max {_s(got['max'])})",
                                 f"no storm: p99 {_s(ref['p99'])} (N={ref['n']})", ratio,
                                 "<= 1 s" if target else "-", (got["p99"] <= target) if target else None))
    return rows


def _code_line(code: dict, node: str) -> str:
    dirty = " (with uncommitted changes)" if code.get("dirty") else ""
    operator = f"; every operator ran the code of {code['operator'][:12]}" if code.get("operator") else ""
    return f"Checkout {code['commit'][:12]}{dirty}, node kind {node}{operator}."


def markdown(results: dict) -> str:
    rows = results.get("figures") or figures(results)
    m = results.get("machine", {})
    lines = [f"Benchmark run {results.get('startedAt', '?')}: {m.get('cpus', '?')} CPUs, {m.get('memTotal', '?')}, "
             f"load average at start {' '.join(m.get('loadavgAtStart', []))}"
             + (f", took {results['duration_s'] / 60:.1f} min" if "duration_s" in results else ""), "",
             *([_code_line(results["code"], results.get("node", "process")), ""] if results.get("code") else []),
             *([f"Every operator ran with extra flags `{results['config']['operator_args']}`: a diagnosis, not "
                "the figures (the targets are about the defaults).", ""]
               if (results.get("config") or {}).get("operator_args") else []),
             "| figure | on | measured | baseline (same run) | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['figure']} | {r['source'].split(' (')[0]} | {r['measured']} | {r['baseline']} | "
                     f"{r['ratio']} | {r['target']} | {met} |")
    sources = {r["source"].split(" (")[0] for r in rows}
    lines += [""]
    if "process node" in sources:
        lines += ["process node: real runner processes (hack/localcluster), real SIGTERMs."]
    if "real node" in sources:
        lines += ["real node: a kubelet, containerd and runc running our images (FLUX_NODE=real), real SIGTERMs."]
    sc = results.get("parts", {}).get("scale")
    if sc:
        lines += [f"KWOK: {sc['source']}. Scale part took {sc.get('duration_s', 0) / 60:.1f} min."]
    fa = results.get("parts", {}).get("fairness")
    if fa:
        codes = ", ".join(f"{k} = {v['commit'][:12]}{' (uncommitted changes)' if v.get('dirty') else ''}"
                          for k, v in fa.get("codes", {}).items())
        lines += [f"Fairness (KWOK): {fa['source']}; operator {fa.get('operatorFlags')}; {codes}; "
                  f"{len(fa.get('rounds', []))} rounds interleaved; part took {fa.get('duration_s', 0) / 60:.1f} min."]
    if sc and sc.get("stuckPending"):
        lines += ["Executions that never left Pending although KWOK ran their pods (an operator finding): " + "; ".join(
            f"{ns}: {v['pending']} of {v['expected']} (e.g. {', '.join(v['examples'][:3])})"
            for ns, v in sc["stuckPending"].items())]
    if results.get("load"):
        lines += ["Load average (1 min) at the start and end of each part: " + ", ".join(
            f"{part} {a}->{b}" for part, (a, b) in results["load"].items())]
    if results.get("errors"):
        lines += ["", "Parts that failed (no figure):"]
        lines += [f"- {part}: {err}" for part, err in results["errors"].items()]
    return "\n".join(lines)


def readme_table(paths: list[str]) -> str:
    """One table of every figure in the given result files, with the commit and the file each came from:
    what bench/README.md quotes, regenerated by `python -m bench.report bench/results/<run>.json ...`.
    `<run>.json:busy,steps` takes only those parts of a run (a newer run of one part, an older one of another)."""
    lines = ["| figure | on | measured | baseline (same run) | ratio | target | met | commit, file |",
             "|---|---|---|---|---|---|---|---|"]
    files = dict(_read(path) for path in paths)
    for stem, results in files.items():
        code = results.get("code") or {}
        where = f"{code.get('commit', '?')[:7]}{'+' if code.get('dirty') else ''}, `{stem}`"
        for r in results.get("figures") or figures(results):
            met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
            lines.append(f"| {r['figure']} | {r['source'].split(' (')[0]} | {r['measured']} | {r['baseline']} | "
                         f"{r['ratio']} | {r['target']} | {met} | {where} |")
    for stem, results in files.items():
        st = results.get("parts", {}).get("starts") or {}
        for table, what in ((cpu_table(st), "CPU of a window (create -> all Running), medians"),
                            (requests_table(st), "requests the API server served per start in a window, medians")):
            if table:
                lines += ["", f"{what}, `{stem}`:", "", table]
    return "\n".join(lines)


def _read(path: str) -> tuple[str, dict]:
    name, _, parts = path.partition(":")
    results = json.loads(Path(name).read_text())
    if parts:
        wanted = parts.split(",")
        results = {**results, "figures": None,
                   "parts": {k: v for k, v in (results.get("parts") or {}).items() if k in wanted}}
    return Path(name).stem, results


def missed(paths: list[str]) -> str:
    """The figures of the given runs that miss their target, each with its measure, baseline and ratio: what
    `make bench` says plainly at its end (the why is in bench/README.md)."""
    rows = [(stem, r) for stem, results in map(_read, paths) for r in results.get("figures") or figures(results)]
    failed = [f"- {r['figure']} ({r['source'].split(' (')[0]}, `{stem}`): {r['measured']} against {r['baseline']}: "
              f"{r['ratio']}, target {r['target']}" for stem, r in rows if r["met"] is False]
    judged = sum(1 for _, r in rows if r["met"] is not None)
    head = f"{judged - len(failed)} of {judged} figures with a target meet it"
    return head + ("." if not failed else f"; {len(failed)} miss:\n" + "\n".join(failed))


def since(stamp: str, results_dir: Path = Path(__file__).parent / "results") -> list[str]:
    """The result files of the runs started at or after `stamp` (20261206T090000Z), oldest first."""
    return [str(p) for p in sorted(results_dir.glob("*.json")) if "-" not in p.stem and p.stem >= stamp]


def main(argv: list[str]) -> None:
    if argv[:1] == ["--since"]:
        paths = since(argv[1])
        if not paths:
            sys.exit(f"no benchmark run started at or after {argv[1]} in bench/results/")
        print(readme_table(paths))
        print()
        print(missed(paths))
        return
    print(readme_table(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
