"""Attacks on Schedules by a namespace user: forged runs (the schedule label and an ownerReference to the
Schedule, made by the tenant, not the operator), a squatted run name, and a cron that can never fire.

A Schedule run counts only if the operator created it (its own record in the Schedule's status) and it
has a controller ownerReference to the Schedule; the tenant's look-alikes change nothing. Cron minutes
are slow, so each test needs at most one firing of an every-minute schedule.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from flux_api import API_VERSION, GROUP
from fluxtest import Schedules, longrun, manifest, policies, schedule, wait_for
from fluxtest.faults import log_tail, metric
from fluxtest.tenancy import grant, impersonating
from kubernetes import client
from kubernetes.client.rest import ApiException

LABEL = "workflows.flux.dev/schedule"
OWNED = "flux-operator-owned-metadata"  # the admission policy that refuses forged labels and ownerReferences
SCHEDULED_AT = "workflows.flux.dev/scheduled-at"
ONE_FIRING = 75  # the next minute boundary, plus the time to start a run on 2 busy cores


def forged(name: str, body: dict, sched: dict) -> dict:
    """An Execution dressed as a run of `sched`: its label and a controller ownerReference to it."""
    meta = sched["metadata"]
    body["metadata"] = {"name": name, "labels": {LABEL: meta["name"]},
                        "ownerReferences": [{"apiVersion": API_VERSION, "kind": "Schedule", "name": meta["name"],
                                             "uid": meta["uid"], "controller": True}]}
    return body


@pytest.fixture
def forgeries(tenant, kubectl, kubeconfig):
    """A forged run is refused by the API server (the first line, checked here once); the test then forges
    with the owned-marks policy unbound, as on a cluster without Flux's policies: the operator's own check."""
    probe = forged("forged-probe", manifest("x", "flux_examples.quick:main"),
                   {"metadata": {"name": "any", "uid": "00000000-0000-0000-0000-000000000000"}})
    with pytest.raises(ApiException) as refused:
        tenant.fx.create(probe)
    assert refused.value.status == 403 and OWNED in refused.value.body, refused.value.body
    with policies.unenforced(kubectl, kubeconfig, OWNED):
        yield


def real_runs(tenant, name: str, uid: str, not_these: set[str]) -> list[dict]:
    """Runs the operator started (labelled, owned, annotated with their cron time), none of `not_these`."""
    return [r for r in tenant.schedules.runs(name)
            if r["metadata"]["name"] not in not_these and SCHEDULED_AT in (r["metadata"].get("annotations") or {})
            and any(o.get("uid") == uid and o.get("controller") for o in r["metadata"].get("ownerReferences") or [])]


def schedule_events(core, namespace: str, name: str) -> list:
    return [e for e in core.list_namespaced_event(namespace).items
            if e.involved_object.kind == "Schedule" and e.involved_object.name == name]


@pytest.mark.threat("forged-run-forbid", "a tenant's Execution labelled as a run of a Forbid Schedule, owned by it, "
                    "running for ever", "the forged run does not hold the Schedule back: the next cron time starts a run")
@pytest.mark.timeout(240)
def test_a_forged_active_run_does_not_block_a_forbid_schedule(forgeries, tenant, operators, fx, result):
    sched = tenant.schedules.create(schedule("guarded", "flux_examples.quick:main", concurrencyPolicy="Forbid"))
    tenant.fx.create(forged("guarded-forged", longrun("x", steps=600, seconds=0.5), sched))
    operators.start()
    began = time.monotonic()
    runs = wait_for(lambda: real_runs(tenant, "guarded", sched["metadata"]["uid"], {"guarded-forged"}),
                    timeout=ONE_FIRING, interval=0.5, what="a real run beside the forged active one")
    result.figure(f"real run {runs[0]['metadata']['name']} started {time.monotonic() - began:.0f}s after the operator; "
                  f"forged run {fx.phase('guarded-forged')}")
    assert fx.phase("guarded-forged") in ("Pending", "Running")  # it was active all along
    assert "guarded-forged" not in [a["name"] for a in tenant.schedules.status("guarded").get("active") or []]


@pytest.mark.threat("forged-run-history", "a tenant's finished Executions labelled as runs of a Schedule with "
                    "successfulExecutionsHistoryLimit 1, finishing after its real run",
                    "the real run is kept: forged runs neither count against the history limit nor get deleted")
@pytest.mark.timeout(240)
def test_forged_finished_runs_do_not_push_the_real_run_out_of_history(forgeries, tenant, operators, fx, result):
    sched = tenant.schedules.create(schedule("kept", "flux_examples.quick:main", successfulExecutionsHistoryLimit=1))
    operators.start()
    uid = sched["metadata"]["uid"]
    real = wait_for(lambda: real_runs(tenant, "kept", uid, set()), timeout=ONE_FIRING, interval=0.5,
                    what="the first run")[0]["metadata"]["name"]
    fx.wait_phase(real, "Succeeded", timeout=60)
    fakes = [f"kept-forged-{i}" for i in range(2)]
    for name in fakes:
        tenant.fx.create(forged(name, manifest("x", "flux_examples.quick:main"), sched))
    for name in fakes:  # (a forged run the operator wrongly took for its own may already be gone)
        wait_for(lambda name=name: not fx.exists(name) or fx.phase(name) == "Succeeded", timeout=60,
                 what=f"{name} to finish")
    # The operator hears of each forged run finishing at once; give it ample time to (wrongly) act on it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert fx.exists(real), f"the real run {real} was deleted to make room for forged ones"
        time.sleep(0.5)
    result.figure(f"real run {real} kept 10 s after 2 forged runs finished; forged runs left alone: "
                  f"{all(fx.exists(n) for n in fakes)}")
    assert all(fx.exists(n) for n in fakes)  # not the operator's: not its to delete either
    assert tenant.schedules.status("kept").get("lastSuccessfulTime")


@pytest.mark.threat("squatted-run-name", "a tenant pre-creates the next runs' names (<schedule>-<minute>), one plain, "
                    "one dressed as a run", "the run still happens under another name, with a Warning Event on the Schedule")
@pytest.mark.timeout(240)
def test_a_squatted_run_name_gets_an_event_and_the_run_still_happens(forgeries, tenant, operators, core, fx, result):
    sched = tenant.schedules.create(schedule("squat", "flux_examples.quick:main"))
    created = datetime.fromisoformat(sched["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    minute = int(created.timestamp()) // 60
    squatters = [f"squat-{minute + 1}", f"squat-{minute + 2}"]
    tenant.fx.create(manifest(squatters[0], "flux_examples.quick:main"))
    tenant.fx.create(forged(squatters[1], manifest("x", "flux_examples.quick:main"), sched))
    operators.start()
    uid = sched["metadata"]["uid"]
    run = wait_for(lambda: real_runs(tenant, "squat", uid, set(squatters)), timeout=ONE_FIRING, interval=0.5,
                   what="the run under another name")[0]
    name = run["metadata"]["name"]
    warned = wait_for(lambda: [e for e in schedule_events(core, tenant.namespace, "squat")
                               if e.reason == "RunNameTaken"], timeout=20, what="a RunNameTaken Event")
    result.figure(f"run {name} ({len(name)} chars); event: {warned[0].message[:140]!r}")
    assert warned[0].type == "Warning" and any(s in warned[0].message for s in squatters)
    assert name not in squatters and len(name) <= 63
    assert fx.wait_phase(name, "Succeeded", timeout=60)


@pytest.mark.threat("forged-run-unschedule", "a tenant's Execution dressed as a run of a Schedule the platform team "
                    "made calls ctx.unschedule()", "the Schedule stays active: only its own runs may suspend it")
@pytest.mark.timeout(180)
def test_a_forged_run_cannot_suspend_the_schedule(forgeries, tenant, operators, custom, fx, result):
    platform = Schedules(custom, tenant.namespace)  # made by the admin: the tenant has no say over it
    sched = platform.create(schedule("platform", "flux_examples.quick:main", cron="0 0 1 1 *"))
    tenant.fx.create(forged("platform-stop", manifest("x", "flux_examples.unschedule:main", {"reason": "mine now"}),
                            sched))
    operators.start()
    ended = fx.wait_phase("platform-stop", "Cancelled", "Failed", "Succeeded", timeout=90)
    assert (ended.get("cancellation") or {}).get("source") == "unschedule", ended  # it did ask
    time.sleep(5)  # the Schedule hears of the request at once; give it time to (wrongly) act on it
    spec = platform.get("platform")["spec"]
    result.figure(f"forged run {ended['phase']} (asked to unschedule); Schedule suspend={spec.get('suspend')}")
    assert not spec.get("suspend"), "a forged run suspended the Schedule"
    assert "lastUnschedule" not in platform.status("platform")


@pytest.mark.threat("never-firing-cron", "Schedules whose cron can never fire: 0 0 31 2 * (refusable by a CEL rule) "
                    "and 0 0 31 4-11/5 * (April and September only)",
                    "refused by the API server, or Ready=False InvalidSchedule with a message, once: no retry loop")
@pytest.mark.timeout(180)
def test_a_cron_that_never_fires_is_refused_or_reported_once(tenant, operators, core, result):
    with pytest.raises(ApiException) as refused:
        tenant.schedules.create(schedule("feb31", "flux_examples.quick:main", cron="0 0 31 2 *"))
    assert refused.value.status == 422 and "never" in refused.value.body, refused.value.body
    tenant.schedules.create(schedule("aprsep31", "flux_examples.quick:main", cron="0 0 31 4-11/5 *"))
    op = operators.start()
    ready = wait_for(lambda: [c for c in tenant.schedules.status("aprsep31").get("conditions") or []
                              if c["type"] == "Ready" and c["status"] == "False"], timeout=30,
                     what="Ready=False on the Schedule")[0]
    errors_before = metric(op, "flux_reconcile_errors_total", 'kind="Poison"')
    version = tenant.schedules.get("aprsep31")["metadata"]["resourceVersion"]
    time.sleep(12)  # longer than the queue's 10 s retry ceiling: a loop would show here
    events = [e for e in schedule_events(core, tenant.namespace, "aprsep31") if e.reason == "InvalidSchedule"]
    result.figure(f"0 0 31 2 *: HTTP {refused.value.status}; 0 0 31 4-11/5 *: {ready['reason']}: "
                  f"{ready['message'][:100]!r}; {len(events)} event(s)")
    assert ready["reason"] == "InvalidSchedule" and "never" in ready["message"], ready
    assert len(events) == 1 and (events[0].count or 1) == 1, [(e.message, e.count) for e in events]
    assert tenant.schedules.get("aprsep31")["metadata"]["resourceVersion"] == version  # nothing rewritten
    assert metric(op, "flux_reconcile_errors_total", 'kind="Poison"') == errors_before == 0
    assert "Traceback" not in log_tail(op, 200_000)


@pytest.mark.threat("refused-run-loop", "a tenant's Schedule whose runs the API server refuses for good (an invalid "
                    "label key in its template), every minute",
                    "one try per cron time: the Schedule says RunRefused with the server's answer, and no status "
                    "write, create or log line repeats in between")
@pytest.mark.timeout(240)
def test_a_schedule_whose_runs_are_refused_tries_once_a_cron_time_and_says_why(tenant, operators, core, result):
    bad_value = schedule("refusal", "flux_examples.quick:main")
    bad_value["spec"]["executionTemplate"]["metadata"] = {"labels": {"team": "a b"}}
    with pytest.raises(ApiException) as refused:  # a bad value is the CRD's to refuse, at once
        tenant.schedules.create(bad_value)
    assert refused.value.status == 422 and "executionTemplate.metadata.labels.team" in refused.value.body
    sched = schedule("refusal", "flux_examples.quick:main")
    sched["spec"]["executionTemplate"]["metadata"] = {"labels": {"bad key": "x"}}  # only the run's create refuses it
    tenant.schedules.create(sched)
    op = operators.start()

    def refused_said() -> dict | None:
        ready = [c for c in tenant.schedules.status("refusal").get("conditions") or [] if c["type"] == "Ready"]
        return ready[0] if ready and ready[0]["reason"] == "RunRefused" else None
    ready = wait_for(refused_said, timeout=ONE_FIRING, interval=0.5, what="Ready False RunRefused on the Schedule")
    assert ready["status"] == "False" and "bad key" in ready["message"], ready
    warned = [e for e in schedule_events(core, tenant.namespace, "refusal") if e.reason == "RunRefused"]
    assert len(warned) == 1 and warned[0].type == "Warning" and "bad key" in warned[0].message
    version, invalid = tenant.schedules.get("refusal")["metadata"]["resourceVersion"], metric(
        op, "flux_reconcile_errors_total", 'kind="Invalid"')
    time.sleep(10)  # before the fix: a create, a status write and an ERROR line per pass, as fast as the budget allowed
    after = tenant.schedules.get("refusal")
    refusals = log_tail(op, 200_000).count("was refused")
    moved = after["metadata"]["resourceVersion"] != version
    result.figure(f"RunRefused said; 10 s later: resourceVersion {'moved' if moved else 'unchanged'}, "
                  f"{refusals} refusal line(s) in the log")
    assert after["metadata"]["resourceVersion"] == version
    assert metric(op, "flux_reconcile_errors_total", 'kind="Invalid"') == invalid == 0
    assert refusals == 1


@pytest.mark.threat("schedule-patches-runs", "a user who may write Schedules and create Executions, but not patch "
                    "them, switches a Schedule to concurrencyPolicy Replace (the operator cancels its active run) "
                    "and puts an approval signal in its template (sent to every run)",
                    "both refused by the API server, naming patch on executions; a tenant who may patch them is "
                    "let through")
@pytest.mark.timeout(120)
def test_a_schedule_writer_cannot_have_the_operator_patch_runs_for_them(api, kubeconfig, tenant, result):
    ns, user = tenant.namespace, f"scheduler-{tenant.namespace}"
    grant(api, ns, user, [{"apiGroups": [GROUP], "resources": ["schedules"],
                           "verbs": ["create", "get", "list", "watch", "patch"]},
                          {"apiGroups": [GROUP], "resources": ["executions"], "verbs": ["create", "get"]}])
    writer = Schedules(client.CustomObjectsApi(impersonating(kubeconfig, user)), ns)
    writer.create(schedule("nightly", "flux_examples.approval:main", suspend=True))
    refused = []
    for change in ({"spec": {"concurrencyPolicy": "Replace"}},
                   {"spec": {"executionTemplate": {"spec": {"signals": [{"name": "approve",
                                                                         "data": '{"approved": true}'}]}}}}):
        with pytest.raises(ApiException) as caught:
            writer.patch("nightly", change)
        assert caught.value.status == 403, caught.value.body
        refused.append(json.loads(caught.value.body)["message"])
        assert "you may not patch executions in" in refused[-1], refused[-1]
    tenant.schedules.patch("nightly", {"spec": {"concurrencyPolicy": "Replace"}})
    result.figure(f"refused: {refused[0][-150:]!r}; the tenant who may patch executions: let through")
    assert tenant.schedules.get("nightly")["spec"]["concurrencyPolicy"] == "Replace"
