"""Each pod's start as the kubelet saw it (its `podStartSLOduration`: creation -> Running observed), read from
the local cluster's kubelet log, by side of the starts part: per pod, where a round's time tells per 40.

    .venv/bin/python -m bench.kubelet_starts .cluster-bench-real/logs/kubelet.log NAMESPACE \
        > bench/results/RUN-kubelet-pod-starts.json

NAMESPACE is the starts part's (its log line `starts: namespace ...`). Prints the per-pod durations and, on
standard error, each side's median and p95.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

_LINE = re.compile(r'"Observed pod startup duration" pod="(?P<ns>[^/"]+)/(?P<pod>[^"]+)" '
                   r'podStartSLOduration=(?P<seconds>[0-9.]+)')
# A runner pod is <execution>-runner; a Job's pod is <side, dashed>-<round>-<index>-<suffix>.
_JOB_POD = re.compile(r"^(?P<side>jobs(?:-[a-z]+)*)-\d+-\d{3}-[a-z0-9]+$")


def side_of(pod: str) -> str | None:
    if pod.endswith("-runner"):
        return "executions"
    m = _JOB_POD.match(pod)
    return m["side"].replace("-", "_") if m else None


def pod_starts(lines, namespace: str) -> list[dict]:
    out = []
    for line in lines:
        m = _LINE.search(line)
        if m and m["ns"] == namespace and (side := side_of(m["pod"])):
            out.append({"pod": m["pod"], "side": side, "podStartSLOduration_s": float(m["seconds"])})
    return out


def summary(pods: list[dict]) -> dict[str, dict]:
    sides: dict[str, list[float]] = {}
    for p in pods:
        sides.setdefault(p["side"], []).append(p["podStartSLOduration_s"])
    return {side: {"n": len(xs), "p50": round(statistics.median(xs), 3),
                   "p95": round(sorted(xs)[max(0, round(0.95 * len(xs)) - 1)], 3)} for side, xs in sides.items()}


def main(argv: list[str]) -> None:
    log_path, namespace = argv
    with Path(log_path).open(errors="replace") as lines:
        pods = pod_starts(lines, namespace)
    sides = summary(pods)
    for side, s in sides.items():
        print(f"{side}: {s['n']} pods, p50 {s['p50']:.2f} s, p95 {s['p95']:.2f} s", file=sys.stderr)
    print(json.dumps({"from": f"{log_path}, lines 'Observed pod startup duration' of namespace {namespace}",
                      "sides": sides, "pods": pods}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
