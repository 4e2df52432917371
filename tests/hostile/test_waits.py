"""Durable waits and signals against a runner that lies and a tenant that floods: neither starts pods back to
back, grows the object or reaches another namespace (issue 20)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from flux_api import GROUP, PLURAL, VERSION
from flux_api.signals import MAX_SIGNALS
from fluxtest import longrun, manifest, schedule, wait_for
from fluxtest.faults import as_runner
from fluxtest.identity import whoami
from fluxtest.limits import Limits, assert_queued
from kubernetes import client
from kubernetes.client.rest import ApiException

PAST = "2000-01-01T00:00:00Z"
UNSAFE = "forged/%wait"  # no Event may be named with it: the operator hashes it into the Event's name


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def forged_waits(fx, runner, namespace: str, name: str, checkpoint: dict, times: int) -> list[float]:
    """Writes a Waiting checkpoint with the runner's own rights, `times` over, each once its pod runs again:
    how long after each wait began its next pod was created."""
    gaps = []

    def forge() -> dict | None:
        # The honest runner's next checkpoint overwrites a forgery within a second: write it until seen.
        client.CustomObjectsApi(runner).patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": {"checkpoint": checkpoint}})
        status = fx.status(name)
        return status if status.get("phase") == "Waiting" else None

    for _ in range(times):
        since = at(wait_for(forge, timeout=30, interval=0.3, what="the forged wait to be taken")["waitingSince"])
        fx.wait_phase(name, "Running", timeout=60)  # woken: a new pod runs again
        gaps.append((fx.pod(name).metadata.creation_timestamp - since).total_seconds())
        fx.wait_step(name, timeout=60)
    return gaps


@pytest.mark.threat("forged-wake", f"a runner writes a Waiting checkpoint whose wake time is long past ({PAST}), "
                    f"for a signal named {UNSAFE!r}, again in each new pod", "its pods start no sooner than 10 s "
                    "after each wait began; the wait has its Event; another namespace's execution still starts")
@pytest.mark.timeout(240)
def test_a_forged_wake_time_cannot_start_pods_back_to_back(tenant, operators, fx, bystander, kubeconfig, result):
    operators.start()
    # A grace of 1 s: the pod the operator stops for the forged wait is gone at once, as the pod of a workflow
    # that writes the wait itself and exits would be; only the floor keeps its pods apart.
    tenant.fx.create(longrun("liar", steps=600, seconds=0.5, gracePeriodSeconds=1))
    fx.wait_step("liar")
    runner = as_runner(kubeconfig, tenant.namespace, "liar")
    try:
        gaps = forged_waits(fx, runner, tenant.namespace, "liar", {"state": "Waiting", "wakeAt": PAST,
                                                                   "waiting": "forged", "signal": {"name": UNSAFE}}, 2)
    finally:
        runner.close()
    bystander.create(manifest("innocent", "flux_examples.quick:main"))
    bystander.wait_phase("innocent", "Succeeded", timeout=60)
    waits = fx.events("liar").count("Waiting")
    result.figure(f"new pod created {', '.join(f'{g:.1f}' for g in gaps)} s after each forged wait began; "
                  f"{waits} Waiting Events")
    assert all(g >= 9 for g in gaps), gaps  # creationTimestamp has second precision
    assert waits >= 1, fx.events("liar")


@pytest.mark.threat("forged-signal-wait", "a tenant sends signal go; then a runner writes a Waiting checkpoint for "
                    "that signal, again in each new pod", "its pods start no sooner than 10 s after each wait "
                    "began; a signal that arrives while an honest runner waits still wakes it at once")
@pytest.mark.timeout(240)
def test_waiting_for_a_signal_already_had_cannot_start_pods_back_to_back(tenant, operators, fx, kubeconfig, result):
    operators.start()
    tenant.fx.create(manifest("hoarder", "flux_examples.approval:main", {"timeoutSeconds": 3600}))
    fx.wait_phase("hoarder", "Waiting", timeout=60)
    sent = time.monotonic()
    tenant.fx.patch("hoarder", {"spec": {"signals": [{"name": "approve"}, {"name": "go"}]}})
    fx.wait_phase("hoarder", "Succeeded", timeout=60)  # honest: woken by approve at once, and done
    honest = time.monotonic() - sent
    # A grace of 1 s: the pod the operator stops for the forged wait is gone at once, as the pod of a workflow
    # that writes the wait itself and exits would be; only the floor keeps its pods apart.
    tenant.fx.create(longrun("liar", steps=600, seconds=0.5, gracePeriodSeconds=1))
    fx.wait_step("liar")
    tenant.fx.patch("liar", {"spec": {"signals": [{"name": "go"}]}})
    wait_for(lambda: fx.status("liar").get("signals"), timeout=30, what="the signal recorded")
    runner = as_runner(kubeconfig, tenant.namespace, "liar")
    try:
        gaps = forged_waits(fx, runner, tenant.namespace, "liar",
                            {"state": "Waiting", "waiting": "for go", "signal": {"name": "go"}}, 2)
    finally:
        runner.close()
    result.figure(f"honest wait: signal -> Succeeded {honest:.1f} s; new pod created "
                  f"{', '.join(f'{g:.1f}' for g in gaps)} s after each forged wait began")
    assert honest < 9, honest
    assert all(g >= 9 for g in gaps), gaps


@pytest.mark.threat("wait-escapes-limit", "under a ConcurrencyLimit of 1, a runner writes a Waiting checkpoint with "
                    "its own token and, its grace period long, runs on through the SIGTERM", "it keeps its slot "
                    "while its pod runs: the next in line stays queued, and starts once that pod is gone")
@pytest.mark.timeout(240)
def test_a_forged_wait_frees_no_slot_while_its_runner_runs_on(tenant, operators, fx, custom, core, kubeconfig, result):
    operators.start()
    Limits(custom, tenant.namespace).create("one", 1)
    tenant.fx.create(manifest("hog", "flux_examples.stubborn:main", {"onCancel": "ignore"}, gracePeriodSeconds=300))
    fx.wait_step("hog")
    tenant.fx.create(manifest("next", "flux_examples.quick:main", {"name": "in line"}))
    assert_queued(fx, "next", "waiting: 1 of 1 running under limit one")
    runner = as_runner(kubeconfig, tenant.namespace, "hog")
    try:
        def forge() -> dict | None:
            client.CustomObjectsApi(runner).patch_namespaced_custom_object_status(
                GROUP, VERSION, tenant.namespace, PLURAL, "hog",
                {"status": {"checkpoint": {"state": "Waiting", "wakeAt": "2999-01-01T00:00:00Z", "waiting": "forged"}}})
            return fx.status("hog") if fx.phase("hog") == "Waiting" else None
        wait_for(forge, timeout=30, interval=0.3, what="the forged wait to be taken")
    finally:
        runner.close()
    pod = wait_for(lambda: (p := fx.pod("hog")) is not None and p.metadata.deletion_timestamp and p, timeout=30,
                   what="the operator to stop hog's pod for its wait")
    phases = set()
    for _ in range(30):  # 15 s of the hog's pod running on through its grace period
        phases.add(fx.phase("next"))
        assert fx.pod("hog") is not None, "the pod went early: the workflow was to ignore its SIGTERM"
        time.sleep(0.5)
    core.delete_namespaced_pod(pod.metadata.name, tenant.namespace, grace_period_seconds=0)
    gone = time.monotonic()
    fx.wait_phase("next", "Running", "Succeeded", timeout=60)
    started = time.monotonic() - gone
    result.figure(f"next's phases while hog's pod ran on for 15 s: {sorted(phases)}; started {started:.1f} s after "
                  "that pod was gone")
    assert phases == {"Pending"}, f"next started while hog's runner still ran: {phases}"


@pytest.mark.threat("signal-flood", f"a tenant appends signals past the bound ({MAX_SIGNALS}), with data past 4096 "
                    "characters, removes one already sent, puts one in front of those sent and reorders them",
                    "each refused by the API server with the field named; the execution's status stays bounded")
@pytest.mark.timeout(120)
def test_signals_stay_bounded_and_append_only(tenant, operators, fx, result):
    operators.start()
    tenant.fx.create(manifest("flooded", "flux_examples.approval:main", {"timeoutSeconds": 3600}))
    fx.wait_phase("flooded", "Waiting", timeout=60)
    refused = {}
    attempts = {
        "too many": [{"name": f"s{i}"} for i in range(MAX_SIGNALS + 1)],
        "too big": [{"name": "big", "data": json.dumps("x" * 5000)}],
    }
    for what, signals in attempts.items():
        with pytest.raises(ApiException) as err:
            tenant.fx.patch("flooded", {"spec": {"signals": signals}})
        refused[what] = json.loads(err.value.body)["message"]
    tenant.fx.patch("flooded", {"spec": {"signals": [{"name": "s0"}, {"name": "s1"}]}})
    # Each old signal is still in these lists: only their places say that a sent one was overtaken.
    for what, signals in {"put in front": [{"name": "s9", "data": "1"}, {"name": "s0"}, {"name": "s1"}],
                          "reordered": [{"name": "s1"}, {"name": "s0"}, {"name": "s2"}]}.items():
        with pytest.raises(ApiException) as err:
            tenant.fx.patch("flooded", {"spec": {"signals": signals}})
        refused[what] = json.loads(err.value.body)["message"]
    tenant.fx.patch("flooded", {"spec": {"signals": [{"name": f"s{i}"} for i in range(MAX_SIGNALS)]}})
    with pytest.raises(ApiException) as err:
        tenant.fx.patch("flooded", {"spec": {"signals": [{"name": "s0"}]}})
    refused["removed"] = json.loads(err.value.body)["message"]
    def recorded():
        status = fx.status("flooded")
        return status if len(status.get("signals") or []) == MAX_SIGNALS else None
    status = wait_for(recorded, timeout=30, what="every signal recorded")
    result.figure("; ".join(f"{k}: {v[:90]}" for k, v in refused.items()))
    assert "spec.signals" in refused["too many"] and "spec.signals[0].data" in refused["too big"]
    assert all("append-only" in refused[what] for what in ("removed", "put in front", "reordered")), refused
    assert len(status["signals"]) == MAX_SIGNALS and status["phase"] == "Waiting"


@pytest.mark.threat("forged-signal-sender", "a tenant sends an approval signed as someone else (sentBy), on create, on a "
                    "patch and in a Schedule's template (whose runs the operator makes)", "refused by the API "
                    "server, which names the tenant's own user (the template: no sentBy at all); a signal it signs "
                    "as itself is recorded so, and anyone may still append after it")
@pytest.mark.timeout(120)
def test_a_tenant_cannot_sign_a_signal_as_someone_else(tenant, operators, fx, api, result):
    operators.start()
    forged = {"name": "approve", "data": json.dumps({"approved": True}), "sentBy": "platform-admin"}
    body = manifest("signed", "flux_examples.approval:main", {"timeoutSeconds": 3600})
    with pytest.raises(ApiException) as on_create:
        tenant.fx.create({**body, "spec": {**body["spec"], "signals": [forged]}})
    tenant.fx.create(body)
    fx.wait_phase("signed", "Waiting", timeout=60)
    with pytest.raises(ApiException) as on_patch:
        tenant.fx.patch("signed", {"spec": {"signals": [{"name": "note", "sentBy": tenant.user}, forged]}})
    in_template = schedule("signing", "flux_examples.approval:main")
    in_template["spec"]["executionTemplate"]["spec"]["signals"] = [{**forged, "sentBy": tenant.user}]
    with pytest.raises(ApiException) as on_schedule:
        tenant.schedules.create(in_template)
    refused = [json.loads(e.value.body)["message"] for e in (on_create, on_patch)]
    for message in refused:
        assert "sentBy must be your own user name" in message and tenant.user in message, message
    assert "spec.signals[1].sentBy" in refused[1], refused[1]
    assert on_schedule.value.status == 422 and "cannot set sentBy" in on_schedule.value.body, on_schedule.value.body
    assert not fx.get("signed")["spec"].get("signals"), "nothing of the refused patch was kept"
    # Signed as itself it goes through; the admin may append after it without being the tenant.
    tenant.fx.patch("signed", {"spec": {"signals": [{"name": "note", "sentBy": tenant.user}]}})
    me = whoami(api)
    fx.patch("signed", {"spec": {"signals": [{"name": "note", "sentBy": tenant.user},
                                             {"name": "approve", "data": json.dumps({"approved": True}), "sentBy": me}]}})
    status = fx.wait_phase("signed", "Succeeded", timeout=90)
    senders = [(r["name"], r.get("sentBy")) for r in status["signals"]]
    result.figure(f"refused: {refused[1][:110]}; recorded: {senders}")
    assert senders == [("note", tenant.user), ("approve", me)]


@pytest.mark.threat("forged-seed-sender", "a tenant makes an Execution of the approval workflow whose spec.seed says "
                    "the approval already came, signed by platform-admin (as kubectl flux retry would carry it over)",
                    "the workflow waits for the approval again (Waiting); the forged sender is nowhere in the "
                    "checkpoint; the tenant's own signal then ends it, approved by the tenant")
@pytest.mark.timeout(120)
def test_a_seed_cannot_sign_an_approval(tenant, operators, fx, result):
    operators.start()
    names = ["prepare", "signal-approve-1-wait", "signal-approve-1"]
    seed = {"done": {"names": names}, "stepCount": 3, "steps": [{"name": n} for n in names],
            "results": {"prepare": {"rows": 42}, "signal-approve-1-wait": {"until": None},
                        "signal-approve-1": {"data": {"approved": True}, "sentBy": "platform-admin"}}}
    body = manifest("seeded", "flux_examples.approval:main", {})
    tenant.fx.create({**body, "spec": {**body["spec"], "seed": seed}})
    status = fx.wait_phase("seeded", "Waiting", timeout=60)
    checkpoint = status["checkpoint"]
    assert checkpoint["signal"]["name"] == "approve", checkpoint
    assert "platform-admin" not in json.dumps(checkpoint), checkpoint
    tenant.fx.patch("seeded", {"spec": {"signals": [{"name": "approve", "data": json.dumps({"approved": True}),
                                                     "sentBy": tenant.user}]}})
    done = fx.wait_phase("seeded", "Succeeded", timeout=90)
    approver = done["checkpoint"]["result"]["approvedBy"]
    result.figure(f"Waiting ({checkpoint['waiting']}); then approvedBy {approver}")
    assert approver == tenant.user


@pytest.mark.threat("forged-verdict", "a runner writes a Succeeded checkpoint with its own token and works on",
                    "the execution stays Running while its pod runs (its deadline, its slot and its cancel hold); "
                    "the cancel then stops the pod")
@pytest.mark.timeout(180)
def test_a_verdict_the_runner_works_on_after_does_not_end_the_execution(tenant, operators, fx, kubeconfig, result):
    operators.start()
    tenant.fx.create(longrun("claims", steps=600, seconds=0.5))
    fx.wait_step("claims")
    runner = as_runner(kubeconfig, tenant.namespace, "claims")
    try:
        client.CustomObjectsApi(runner).patch_namespaced_custom_object_status(
            GROUP, VERSION, tenant.namespace, PLURAL, "claims",
            {"status": {"checkpoint": {"state": "Succeeded", "result": "forged"}}})
    finally:
        runner.close()
    seen = []
    for _ in range(10):  # 5 s of looking: the operator has long acted on the forged verdict by then
        seen.append(fx.status("claims").get("phase"))
        time.sleep(0.5)
    pod = fx.pod("claims")
    tenant.fx.cancel("claims", "it claimed to be done but is not")
    final = fx.wait_phase("claims", "Cancelled", "Succeeded", "Failed", timeout=90)
    outcome = (final.get("cancellation") or {}).get("outcome")
    result.figure(f"phases while the pod ran: {sorted(set(seen))}; after the cancel: {final['phase']}/{outcome}")
    assert set(seen) == {"Running"}, seen
    assert pod is not None and pod.metadata.deletion_timestamp is None, "its pod ran on"
    assert fx.pod("claims") is None and (final.get("cancellation") or {}).get("completedAt")
