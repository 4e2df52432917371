"""The starts part's rows (bench/starts.py) and, when its windows' CPU was recorded, their table by kind of
process: what bench/README.md quotes, regenerated from the result files."""

from __future__ import annotations

import statistics

from bench.rows import row as _row
from bench.rows import seconds as _s

# The Jobs' sides other than the bare one, as the rows name them.
_SIDES = {"jobs_token": "Jobs whose pods mount a token",
          "jobs_hardened": "Jobs whose pod is the runner pod (token, seccomp, read-only root)"}
_WITHOUT = {"token": "its token", "seccomp": "its seccomp profile", "rootfs": "its read-only root",
            "tmp": "its /tmp emptyDir", "caps": "its dropped capabilities and no_new_privs"}


def kinds(st: dict) -> list[str]:
    """The sides the part timed, in the order the run listed them."""
    return [key.removesuffix("_s") for key in st if key.endswith("_s") and not key.endswith("_stages_s")
            and isinstance(st[key], list)]


def starts_rows(st: dict) -> list[dict]:
    """Executions against bare Jobs (the target); every other Jobs' side against the executions; each side
    without one setting against the hardened Jobs (what that setting costs). Diagnosis rows have no target."""
    n, rounds = st["n"], len(st["executions_s"])
    r = st["executions_p50"] / st["jobs_p50"]
    rows = [_row(f"start: {n} executions at once, all Running, median of {rounds}", st["source"],
                 f"{_s(st['executions_p50'])} (p95 {_s(st['executions_p95'])})",
                 f"{n} Jobs at once, all pods Running: {_s(st['jobs_p50'])} (p95 {_s(st['jobs_p95'])})",
                 f"{r:.2f}x", "<= 1.1x", r <= 1.1)]
    for kind, what in _SIDES.items():
        if st.get(f"{kind}_s"):
            r = st["executions_p50"] / st[f"{kind}_p50"]
            rows.append(_row(f"start: {n} executions at once against {what}, median of {len(st[f'{kind}_s'])} "
                             "(a diagnosis)", st["source"], _s(st["executions_p50"]),
                             f"{n} such Jobs, all pods Running: {_s(st[f'{kind}_p50'])} "
                             f"(p95 {_s(st[f'{kind}_p95'])})", f"{r:.2f}x", "-", None))
    for setting, what in _WITHOUT.items():
        kind = f"jobs_without_{setting}"
        if st.get(f"{kind}_s") and st.get("jobs_hardened_s"):
            r = st[f"{kind}_p50"] / st["jobs_hardened_p50"]
            rows.append(_row(f"start: {n} Jobs whose pod is the runner pod without {what}, median of "
                             f"{len(st[f'{kind}_s'])} (a diagnosis)", st["source"],
                             f"{_s(st[f'{kind}_p50'])} (p95 {_s(st[f'{kind}_p95'])})",
                             f"{n} Jobs whose pod is the runner pod: {_s(st['jobs_hardened_p50'])}",
                             f"{r:.2f}x", "-", None))
    return rows


def _by_kind(window: dict) -> dict:
    """A window's CPU with the runner and the comparable program as one kind (each side has one of them), and
    without `other`: before 1905ca0, PID 1 reaped orphans into it (bench/README.md, fourteenth part)."""
    out: dict = {}
    for proc, seconds in window.items():
        if proc != "other":
            key = "the pods' Python" if proc in ("runner", "comparable") else proc
            out[key] = out.get(key, 0.0) + seconds
    return out


def cpu_table(st: dict) -> str:
    """Median CPU seconds of a window (create -> all Running), by kind of process and side."""
    sides = [k for k in kinds(st) if st.get(f"{k}_cpu")]
    if not sides:
        return ""
    windows = {k: [_by_kind(w) for w in st[f"{k}_cpu"]] for k in sides}

    def median(kind: str, pick) -> float:
        return statistics.median(pick(w) for w in windows[kind])

    procs = sorted({p for k in sides for w in windows[k] for p in w},
                   key=lambda p: -median(sides[0], lambda w: w.get(p, 0.0)))
    lines = ["| kind of process | " + " | ".join(sides) + " |", "|---|" + "---|" * len(sides)]
    lines += [f"| {p} | " + " | ".join(f"{median(k, lambda w: w.get(p, 0.0)):.2f} s" for k in sides) + " |"
              for p in procs]
    lines.append("| every kind but other | " + " | ".join(
        f"{median(k, lambda w: sum(w.values())):.2f} s" for k in sides) + " |")
    return "\n".join(lines)


def requests_table(st: dict, least: float = 0.1) -> str:
    """Median requests per start the API server served in a window, by verb and resource and side: every client's
    (the bench's creates, operator, runners, kubelet, controllers). Rows under `least` on every side are left out."""
    sides = [k for k in kinds(st) if st.get(f"{k}_requests")]
    if not sides:
        return ""
    n = st["n"]

    def per_start(kind: str, what: str | None) -> float:
        return statistics.median((w.get(what, 0) if what else sum(w.values())) for w in st[f"{kind}_requests"]) / n

    whats = sorted({what for k in sides for w in st[f"{k}_requests"] for what in w},
                   key=lambda what: (-per_start(sides[0], what), what))
    lines = ["| request (verb resource) | " + " | ".join(sides) + " |", "|---|" + "---|" * len(sides)]
    lines += [f"| {what} | " + " | ".join(f"{per_start(k, what):.2f}" for k in sides) + " |"
              for what in whats if max(per_start(k, what) for k in sides) >= least]
    lines.append("| every request | " + " | ".join(f"{per_start(k, None):.2f}" for k in sides) + " |")
    return "\n".join(lines)
