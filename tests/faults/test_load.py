"""Many cancels at once: racing the workflow's own completion, and 200 arriving together by every way in."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from flux_api import CANCEL_ANNOTATION
from fluxtest import TERMINAL, longrun, wait_for
from fluxtest.faults import PhaseWatch, log_tail, statuses, wait_all
from localcluster.nodes.process import NODE_NAME

pytestmark = pytest.mark.faults


# --- a cancel racing completion, 100 times -------------------------------------------------------------

RACES = 100
BATCH = 25
# Two steps of 1.5 s: once the first step is checkpointed, 1.5 s of work and the final checkpoint are left.
# The cancel lands 0 to 1.65 s after that checkpoint was seen, so on either side of the finish. The runner
# learns of it from its SIGTERM (the operator's reconcile, the pod delete, the node's signal), not from the
# answer to a write after the last step: that step is written with the final checkpoint (coalesced writes),
# so a cancel must come a SIGTERM's latency before the finish to win. With 25 runners starting at once on 2
# cores that latency reaches 0.7 s; both ends keep at least 2 in 12 for latencies up to 1.2 s.
JITTER = [0.15 * (i % 12) for i in range(RACES)]


@pytest.mark.row("cancel-race")
@pytest.mark.kubelet
@pytest.mark.timeout(900)
def test_cancel_racing_completion(fx, operators, custom, result):
    """Each of 100 short executions is cancelled just around the moment its workflow returns. A watch
    records every phase each one showed: exactly one terminal phase each, consistent with its record."""
    op = operators.start()
    watcher = PhaseWatch(custom, fx.ns)
    names = [f"race-{i:03d}" for i in range(RACES)]
    scheduled: set[str] = set()
    cancel_errors: list[str] = []

    def cancel_later(name: str, delay: float) -> None:
        time.sleep(delay)
        try:
            fx.cancel(name, "racing completion")
        except Exception as err:  # noqa: BLE001 - reported below
            cancel_errors.append(f"{name}: {err}")

    try:
        for start in range(0, RACES, BATCH):
            batch = names[start:start + BATCH]
            for name in batch:
                fx.create(longrun(name, steps=2, seconds=1.5, gracePeriodSeconds=5))
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                now = statuses(fx, batch)
                for name in batch:
                    steps = (now[name].get("checkpoint") or {}).get("steps") or []
                    if name not in scheduled and (steps or now[name].get("phase") in TERMINAL):
                        scheduled.add(name)
                        threading.Thread(target=cancel_later, args=(name, JITTER[names.index(name)]),
                                         daemon=True).start()
                if all(now[n].get("phase") in TERMINAL for n in batch) and scheduled.issuperset(batch):
                    break
                time.sleep(0.05)
        final = wait_all(fx, names, *TERMINAL, timeout=120)
        time.sleep(3)  # a late second write would land by now
        final = statuses(fx, names)
    finally:
        watcher.stop()

    tally: dict[str, int] = {}
    problems: dict[str, object] = {}
    for name in names:
        status = final[name]
        phase = status.get("phase")
        outcome = (status.get("cancellation") or {}).get("outcome")
        state = (status.get("checkpoint") or {}).get("state")
        finished = next((c for c in status.get("conditions", []) if c["type"] == "Finished"), {})
        events = fx.events(name)
        seen = watcher.terminal_seen.get(name, set())
        kind = f"{phase}/{outcome or ('CancelIgnored' if 'CancelIgnored' in events else 'no cancel')}"
        tally[kind] = tally.get(kind, 0) + 1
        wrong = []
        if len(seen) != 1 or phase not in seen:
            wrong.append(f"terminal phases seen {sorted(seen)}, now {phase} (all: {watcher.phases.get(name)})")
        if finished.get("reason") != phase:
            wrong.append(f"Finished condition says {finished.get('reason')}")
        if phase == "Succeeded" and (state != "Succeeded" or outcome not in (None, "TooLate")):
            wrong.append(f"Succeeded with checkpoint {state} and outcome {outcome}")
        if phase == "Cancelled" and (state == "Succeeded" or outcome not in ("Graceful", "Killed")):
            wrong.append(f"Cancelled with checkpoint {state} and outcome {outcome}")
        if events.count("Cancelled") != (1 if phase == "Cancelled" else 0):
            wrong.append(f"events {events}")
        if wrong:
            problems[name] = wrong
    result.figure("– (ends: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())) + ")")
    assert not cancel_errors, cancel_errors[:5]
    assert not problems, f"{len(problems)} executions without exactly one consistent end: " \
                         f"{dict(list(problems.items())[:5])}"
    assert tally.get("Cancelled/Graceful", 0) + tally.get("Cancelled/Killed", 0) >= 10 and \
        sum(v for k, v in tally.items() if k.startswith("Succeeded")) >= 10, \
        f"the cancels did not race completion (ends {tally}); operator log: {log_tail(op, 500)}"


# --- 200 concurrent cancels ---------------------------------------------------------------------------------

COUNT = 200
REASON = "two hundred at once"


@pytest.mark.row("concurrent-cancels")
@pytest.mark.timeout(600)
def test_two_hundred_concurrent_cancels(fx, operators, kubectl, kube_env, result):
    """200 Pending executions (the node is cordoned, so their runner pods stay unschedulable and 200
    runners need not fit on 2 cores) are cancelled at once: a third by patch, a third by annotation
    (`kubectl annotate`), a third by the plugin (`kubectl-flux cancel`), all three concurrently. None lost."""
    kubectl("cordon", NODE_NAME)
    try:
        operators.start()
        names = [f"many-{i:03d}" for i in range(COUNT)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: fx.create(longrun(n, gracePeriodSeconds=5)), names))
        wait_all(fx, names, "Pending", timeout=180)
        by_patch, by_annotation, by_plugin = names[0::3], names[1::3], names[2::3]

        def patch_all() -> None:
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda n: fx.cancel(n, REASON), by_patch))

        def annotate_all() -> subprocess.CompletedProcess:
            return kubectl("annotate", "fx", *by_annotation, "-n", fx.ns, f"{CANCEL_ANNOTATION}={REASON}")

        def plugin_all() -> subprocess.CompletedProcess:
            return subprocess.run(["kubectl-flux", "cancel", *by_plugin, "-n", fx.ns, "--reason", REASON,
                                   "-o", "json"], env=kube_env, capture_output=True, text=True, timeout=300)

        outputs: dict[str, object] = {}
        started = time.monotonic()
        threads = [threading.Thread(target=lambda f=f: outputs.__setitem__(f.__name__, f()))
                   for f in (patch_all, annotate_all, plugin_all)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        plugin = outputs["plugin_all"]
        assert plugin.returncode == 0, (plugin.returncode, plugin.stdout[-2000:], plugin.stderr[-2000:])
        final = wait_all(fx, names, *TERMINAL, timeout=300)
        took = time.monotonic() - started
    finally:
        kubectl("uncordon", NODE_NAME)
    result.figure(f"{COUNT}/{COUNT} concluded {took:.0f} s after the cancels started (all Pending on a cordoned "
                  f"node: {len(by_patch)} by patch, {len(by_annotation)} by annotation, {len(by_plugin)} by plugin)")
    expected_source = {**{n: "spec" for n in by_patch}, **{n: "annotation" for n in by_annotation},
                       **{n: "spec" for n in by_plugin}}
    lost = {n: (s.get("phase"), s.get("cancellation")) for n, s in final.items()
            if s.get("phase") != "Cancelled" or (s.get("cancellation") or {}).get("outcome") != "NotStarted"
            or s["cancellation"].get("reason") != REASON or s["cancellation"].get("source") != expected_source[n]}
    assert not lost, f"{len(lost)} lost or wrong: {json.dumps(dict(list(lost.items())[:5]))}"
    wait_for(lambda: not fx.core.list_namespaced_pod(fx.ns).items, timeout=60, what="every runner pod to be gone")
