"""The operator's own faults: killed -9 in the middle of cancels, and cut off from the API server."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import pytest
from fluxtest import TERMINAL, longrun, manifest, wait_for
from fluxtest.faults import LEASE_SECONDS, counted, health, log_tail, statuses, wait_all
from localcluster.faults import BlackholeProxy

pytestmark = pytest.mark.faults



def event_counts(fx, name: str) -> dict[str, int]:
    """Started, and the cancel's request and conclusion however they were folded (fx.cancel_told)."""
    return {"Started": fx.events(name).count("Started"), **fx.cancel_told(name)}


# --- killed -9 mid-cancel, ten times -------------------------------------------------------------------

@pytest.mark.row("operator-kill")
@pytest.mark.kubelet
@pytest.mark.timeout(600)
def test_operator_killed_mid_cancel_ten_times(fx, operators, result):
    """Two replicas; ten times: cancel one execution (its cleanup takes 2 s), SIGKILL the leader a little
    later each time (0 to 1.35 s after the cancel), start a fresh standby. Every cancel must conclude once, with each Event once."""
    names = [f"kill-{i}" for i in range(10)]
    for name in names:  # a cleanup of 2 s: each cancel lasts long enough for the kill to land inside it
        fx.create(counted(name, steps=600, seconds=0.5, cleanup=2, gracePeriodSeconds=10))
    operators.start()
    operators.start(lead=False)
    for name in names:
        fx.wait_step(name, timeout=180)

    recoveries: dict[str, float] = {}
    at_kill: dict[str, str] = {}
    for i, name in enumerate(names):
        leader = wait_for(operators.leader, timeout=30, what="a leader")
        fx.cancel(name, "operator kill test")
        time.sleep(0.15 * i)
        leader.stop(kill=True)
        killed = time.monotonic()
        at_kill[name] = fx.phase(name) or "Pending"
        standby = threading.Thread(target=operators.start, kwargs={"lead": False})
        standby.start()
        fx.wait_phase(name, "Cancelled", timeout=90)
        recoveries[name] = time.monotonic() - killed
        standby.join()

    final = wait_all(fx, names, *TERMINAL, timeout=60)
    stuck = [n for n in names if final[n].get("phase") != "Cancelled"]
    mid = [n for n in names if at_kill[n] != "Cancelled"]
    took = sorted(recoveries[n] for n in mid) or [0.0]
    result.figure(f"recovery (kill → Cancelled) median {took[len(took) // 2]:.1f} s, max {took[-1]:.1f} s "
                  f"over the {len(mid)}/10 kills that landed mid-cancel (lease {LEASE_SECONDS} s)")
    result.note("phase at each kill: " + ", ".join(f"{n}={at_kill[n]}" for n in names))
    assert not stuck, {n: final[n].get("phase") for n in stuck}
    problems = {}
    for name in names:
        counts = event_counts(fx, name)
        outcome = final[name]["cancellation"].get("outcome")
        cleaned = ((final[name].get("checkpoint") or {}).get("data") or {}).get("cleanedUp")
        signalled = fx.events(name).count("Signalled")
        if any(n != 1 for n in counts.values()) or signalled > 1 or outcome != "Graceful" or not cleaned:
            problems[name] = (counts, outcome, at_kill[name])
    assert not problems, f"each Event once and Graceful, got {problems}"
    assert not [p for p in fx.core.list_namespaced_pod(fx.ns).items], "runner pods left behind"
    assert len(mid) >= 5, f"only {len(mid)} kills landed mid-cancel: the test did not test what it says"


# --- the API server unreachable for 60 s: dropped, not refused ------------------------------------------

OUTAGE_SECONDS = 60
GRACE = 10
STALE_AFTER = 30  # max(30 s, 2 × lease): when /healthz must be red


@pytest.mark.row("api-unreachable")
@pytest.mark.kubelet
@pytest.mark.timeout(400)
def test_api_unreachable_to_the_operator_for_a_minute(fx, operators, cluster, operator_identity, operator_env,
                                                     tmp_path, result):
    """The operator reaches the API server only through a proxy that black-holes every byte for 60 s
    (connections stay open, nothing is refused or reset). Runners still reach the API server. Cancels
    made during the outage must all conclude within grace + 30 s of the network healing, and /healthz
    must be red while the API server is silent."""
    upstream = urlsplit(cluster.server)  # the real node's API server is on a loopback Service address
    proxy = BlackholeProxy(upstream.port, upstream.hostname)
    kubeconfig = operator_identity.kubeconfig_via(f"https://127.0.0.1:{proxy.port}", tmp_path / "via-proxy.kubeconfig")
    op = operators.start(env={**operator_env, "KUBECONFIG": str(kubeconfig)})
    try:
        longruns = [f"cut-{i}" for i in range(3)]
        stubborn = "cut-stubborn"  # ignores SIGTERM and has no step boundary: only the operator can end it
        for name in longruns:
            fx.create(longrun(name, seconds=0.5, gracePeriodSeconds=GRACE))
        fx.create(manifest(stubborn, "flux_examples.stubborn:main", {"onCancel": "ignore"}, gracePeriodSeconds=GRACE))
        names = [*longruns, stubborn]
        for name in names:
            fx.wait_step(name, timeout=120)
        assert health(op)[0] == 200, health(op)

        proxy.drop()
        dropped = time.monotonic()
        time.sleep(3)
        for name in names:
            fx.cancel(name, "cancelled while the operator is cut off")
        samples: list[tuple[float, int]] = []
        while time.monotonic() - dropped < OUTAGE_SECONDS:
            samples.append((time.monotonic() - dropped, health(op)[0]))
            time.sleep(1)
        during = statuses(fx, names)
        _, report = health(op)
        proxy.restore()
        healed = time.monotonic()

        concluded: dict[str, float] = {}
        deadline = healed + GRACE + 30 + 30  # watch past the bound, to report how late
        while len(concluded) < len(names) and time.monotonic() < deadline:
            for name, status in statuses(fx, names).items():
                if name not in concluded and status.get("phase") in TERMINAL:
                    concluded[name] = time.monotonic() - healed
            time.sleep(0.25)
        green_again = wait_for(lambda: health(op)[0] == 200, timeout=60, what="/healthz green after the outage")
        recovery = max(concluded.values(), default=float("inf"))
        result.figure(f"all {len(concluded)}/{len(names)} cancels concluded {recovery:.1f} s after the network "
                      f"healed (bound: grace {GRACE} s + 30 s)" if len(concluded) == len(names) else
                      f"{len(concluded)}/{len(names)} concluded within {deadline - healed:.0f} s of healing")
        red_from = next((t for t, code in samples if code == 500), None)
        result.note(f"/healthz first red {red_from:.0f} s into the outage; report at its end: {report}"
                    if red_from is not None else f"/healthz never red; samples {samples}")
        result.note("per execution, seconds from heal to terminal: "
                    + ", ".join(f"{n}={concluded.get(n, float('nan')):.1f}" for n in names)
                    + f"; phases at the end of the outage: {[during[n].get('phase') for n in names]}")

        assert all(code != 0 for _, code in samples), "the health endpoint stopped answering"
        late_samples = [(round(t), code) for t, code in samples if t > STALE_AFTER + 5]
        assert late_samples and all(code == 500 for _, code in late_samples), \
            f"/healthz must be red once the API server was silent > {STALE_AFTER} s: {late_samples}"
        assert "api" in report.get("problems", {}), report
        missing = [n for n in names if n not in concluded]
        assert not missing, f"not concluded {deadline - healed:.0f} s after healing: {missing}; " \
                            f"{statuses(fx, missing)}; operator log: {log_tail(op)}"
        assert recovery <= GRACE + 30, f"concluded {recovery:.1f} s after healing (bound {GRACE + 30} s)"
        final = statuses(fx, names)
        outcomes = {n: (final[n].get("phase"), final[n].get("cancellation", {}).get("outcome")) for n in names}
        assert all(phase == "Cancelled" for phase, _ in outcomes.values()), outcomes
        assert outcomes[stubborn][1] == "Killed", outcomes
        assert green_again
    finally:
        proxy.close()
