"""Hostile and odd input: poison objects, a runner forging what the operator owns, a spawn bomb, a
checkpoint that grows to its budget."""

from __future__ import annotations

import json
import time

import pytest
from flux_api import GROUP, PARENT_LABEL, PLURAL, VERSION
from flux_api.names import DEPTH_LABEL
from flux_api.types import MAX_CHILDREN, MAX_DEPTH
from fluxtest import TERMINAL, longrun, manifest, wait_for
from fluxtest.faults import as_runner, health, log_tail, metric, parse_stamp, runner_starts, statuses, wait_all
from fluxtest.podlogs import RunnerLogs
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.faults


def patch_status(fx, name: str, status: dict) -> None:
    fx.custom.patch_namespaced_custom_object_status(GROUP, VERSION, fx.ns, PLURAL, name, {"status": status})


# --- poison objects beside a healthy one with a 5 s deadline -------------------------------------------

DEADLINE = 5


@pytest.mark.row("poison")
@pytest.mark.timeout(300)
def test_poison_objects_do_not_delay_a_healthy_deadline(fx, operators, result):
    """Objects the API server admits but that are odd, made before the operator starts so it meets them
    first. The healthy execution beside them must still be cancelled by its 5 s deadline, on time."""
    admitted, refused = [], {}

    def attempt(name: str, make) -> None:
        try:
            make()
            admitted.append(name)
        except ApiException as err:
            refused[name] = f"{err.status}: {json.loads(err.body).get('message', '')[:160]}"

    # ~1 MB of input (etcd takes 1.5 MB): every watch event and every read of it is heavy.
    attempt("p-huge", lambda: fx.create(manifest("p-huge", "flux_examples.longrun:main", {
        "steps": 2, "stepSeconds": 0.1, "ballast": "x" * 1_000_000}, gracePeriodSeconds=5)))
    # A child whose parent does not exist, and one whose depth label is not a number.
    attempt("p-orphan", lambda: fx.create(_labelled(manifest("p-orphan", "flux_examples.quick:main"),
                                                    {PARENT_LABEL: "no-such-parent", DEPTH_LABEL: "3"})))
    attempt("p-baddepth", lambda: fx.create(_labelled(manifest("p-baddepth", "flux_examples.quick:main"),
                                                      {PARENT_LABEL: "p-orphan", DEPTH_LABEL: "deep"})))

    # A checkpoint written by an admin: an unknown state, the same step twice, a time that is not one.
    def bad_checkpoint():
        fx.create(manifest("p-checkpoint", "flux_examples.quick:main"))
        patch_status(fx, "p-checkpoint", {"checkpoint": {
            "state": "Bogus", "sequence": 7, "updatedAt": "not a time",
            "steps": [{"name": "greet", "result": 1}, {"name": "greet", "result": 2}]}})
    attempt("p-checkpoint", bad_checkpoint)

    # Running by hand, with a pod that never existed and a start time that does not parse, a deadline
    # long past, and a spawn request for a name that another (unrelated) execution already has.
    def hand_running():
        fx.create(longrun("p-running", steps=2, seconds=0.1, activeDeadlineSeconds=1))
        patch_status(fx, "p-running", {"phase": "Running", "podName": "ghost-runner", "startedAt": "yesterday",
                                       "spawnRequests": [{"name": "p-orphan", "workflow": "flux_examples.quick:main"}]})
    attempt("p-running", hand_running)

    # Status fields no version of the schema has.
    def unknown_fields():
        fx.create(manifest("p-unknown", "flux_examples.quick:main"))
        patch_status(fx, "p-unknown", {"future": {"field": True}, "phase": "Pending", "resumes": 4})
    attempt("p-unknown", unknown_fields)

    # Cancelling without its cancellation block (the CRD's CEL rule should refuse this one).
    def cancelling_without_block():
        fx.create(manifest("p-cancelling", "flux_examples.quick:main"))
        patch_status(fx, "p-cancelling", {"phase": "Cancelling"})
    attempt("p-cancelling", cancelling_without_block)

    op = operators.start()
    fx.create(longrun("healthy", seconds=0.5, gracePeriodSeconds=10, activeDeadlineSeconds=DEADLINE))
    status = fx.wait_phase("healthy", *TERMINAL, timeout=90)
    c = status.get("cancellation") or {}
    started = parse_stamp(status.get("startedAt"))
    due = started.timestamp() + DEADLINE if started else None
    signal_late = parse_stamp(c.get("signalledAt")).timestamp() - due if due and c.get("signalledAt") else None
    done_late = parse_stamp(c.get("completedAt")).timestamp() - due if due and c.get("completedAt") else None
    time.sleep(5)  # the poison keeps being reconciled meanwhile
    poisons = statuses(fx, admitted)
    code, report = health(op)
    errors = metric(op, "flux_reconcile_errors_total")
    result.figure(f"healthy signalled {signal_late:+.2f} s and Cancelled {done_late:+.2f} s after its deadline "
                  f"(beside {len(admitted)} poison objects)" if done_late is not None else
                  f"healthy ended {status.get('phase')} without a deadline cancel")
    result.note("poison admitted: " + "; ".join(f"{n} → {poisons[n].get('phase')} "
                                                f"({(poisons[n].get('message') or '')[:100]!r})" for n in admitted)
                + "; refused by the API server: " + json.dumps(refused))
    result.note(f"operator after the poison: healthz {code}, reconcile errors {errors:.0f}")
    assert status["phase"] == "Cancelled", status
    assert (c.get("source"), c.get("outcome")) == ("deadline", "Graceful"), c
    assert signal_late is not None and signal_late <= 2, f"signalled {signal_late} s after the deadline"
    assert done_late <= 5, f"Cancelled {done_late} s after the deadline"
    assert op.proc.poll() is None and code == 200, (code, report, log_tail(op))
    assert "p-cancelling" in refused, "status.phase Cancelling without status.cancellation was admitted"


def _labelled(body: dict, labels: dict) -> dict:
    body["metadata"]["labels"] = labels
    return body


# --- a runner forging what the operator owns ------------------------------------------------------------

FORGED = {
    "phase": "Succeeded",
    "startedAt": "2000-01-01T00:00:00.000Z",
    "finishedAt": "2000-01-01T00:00:01.000Z",
    "cancellation": {"reason": "forged", "source": "spec", "outcome": "Graceful"},
    "conditions": [],
    "message": "all good",
    "children": [{"name": "x", "phase": "Succeeded"}],
    "resumes": 5,
    "podName": "someone-else",
    "observedGeneration": 99,
}


def attempt(call) -> tuple[int, str]:
    """(0, "") if the API server accepted the request; else (HTTP status, its message)."""
    try:
        call()
        return 0, ""
    except ApiException as err:
        try:
            return err.status, json.loads(err.body).get("message", "")
        except (TypeError, ValueError):
            return err.status, str(err.body)


@pytest.mark.row("forgery")
@pytest.mark.timeout(300)
def test_runner_cannot_forge_what_the_operator_owns(fx, operators, kubeconfig, result):
    """Impersonating a runner's ServiceAccount, every write outside its checkpoint and spawn requests, and
    every write to another execution, is refused by the API server itself (RBAC and the admission policy)."""
    operators.start()
    fx.create(longrun("forger", seconds=0.5))
    fx.create(longrun("victim", seconds=0.5))
    fx.create(manifest("held", "flux_examples.stubborn:main", {"onCancel": "ignore"}, gracePeriodSeconds=8))
    for name in ("forger", "victim", "held"):
        fx.wait_step(name, timeout=120)
    fx.cancel("held", "cancelled before the forgery")
    fx.wait_phase("held", "Cancelling", timeout=30)
    before = {n: fx.status(n) for n in ("forger", "victim", "held")}

    forger_api, held_api = as_runner(kubeconfig, fx.ns, "forger"), as_runner(kubeconfig, fx.ns, "held")
    forger, held = client.CustomObjectsApi(forger_api), client.CustomObjectsApi(held_api)
    forger_core = client.CoreV1Api(forger_api)

    def status_as(api, target, status):
        kind = "application/json-patch+json" if isinstance(status, list) else "application/merge-patch+json"
        return lambda: api.patch_namespaced_custom_object_status(GROUP, VERSION, fx.ns, PLURAL, target, status,
                                                                 _content_type=kind)

    attempts: dict[str, tuple[int, str]] = {}
    for field, value in FORGED.items():
        attempts[f"own status.{field}"] = attempt(status_as(forger, "forger", {"status": {field: value}}))
    attempts["own phase by JSON patch"] = attempt(status_as(
        forger, "forger", [{"op": "replace", "path": "/status/phase", "value": "Succeeded"}]))
    whole = fx.get("forger")
    whole["status"]["phase"] = "Failed"
    attempts["own status by PUT"] = attempt(lambda: forger.replace_namespaced_custom_object_status(
        GROUP, VERSION, fx.ns, PLURAL, "forger", whole))
    attempts["un-cancel its Cancelling status"] = attempt(status_as(
        held, "held", {"status": {"phase": "Running", "cancellation": None}}))
    attempts["another's checkpoint"] = attempt(status_as(
        forger, "victim", {"status": {"checkpoint": {"state": "Succeeded", "sequence": 1}}}))
    attempts["another's phase"] = attempt(status_as(forger, "victim", {"status": {"phase": "Failed"}}))
    attempts["another's spec (cancel it)"] = attempt(lambda: forger.patch_namespaced_custom_object(
        GROUP, VERSION, fx.ns, PLURAL, "victim", {"spec": {"cancel": {"reason": "x"}}}))
    attempts["own spec"] = attempt(lambda: forger.patch_namespaced_custom_object(
        GROUP, VERSION, fx.ns, PLURAL, "forger", {"spec": {"gracePeriodSeconds": 0}}))
    attempts["create an execution"] = attempt(lambda: forger.create_namespaced_custom_object(
        GROUP, VERSION, fx.ns, PLURAL, manifest("made-by-runner", "a.b:c")))
    attempts["delete another's runner pod"] = attempt(lambda: forger_core.delete_namespaced_pod("victim-runner", fx.ns))
    control = attempt(status_as(forger, "forger", {"status": {"checkpoint": {
        **before["forger"]["checkpoint"], "data": {"note": "mine"}}}}))

    let_through = [what for what, (code, _) in attempts.items() if code == 0]
    after = {n: fx.status(n) for n in ("forger", "victim", "held")}
    changed = {n: [k for k in ("phase", "startedAt", "finishedAt", "cancellation", "message", "resumes", "podName")
                   if after[n].get(k) != before[n].get(k)] for n in after}
    changed = {n: keys for n, keys in changed.items() if keys}
    result.figure(f"– ({len(attempts) - len(let_through)}/{len(attempts)} forged writes refused)")
    result.note(f"{len(attempts) - len(let_through)}/{len(attempts)} forgeries refused ("
                + ", ".join(f"{what}: {code}" for what, (code, _) in attempts.items())
                + f"); e.g. {attempts['own status.phase'][1][:160]!r}")
    assert control == (0, ""), f"the control (its own checkpoint) was refused: {control}"
    assert not let_through, f"the API server let these through: {let_through}"
    for field in FORGED:
        code, message = attempts[f"own status.{field}"]
        assert f"not status.{field}" in message, (field, code, message)
    assert attempts["another's checkpoint"][0] == 403 and attempts["create an execution"][0] == 403, attempts
    # Changes the operator itself made meanwhile (the held one concluding) are not forgeries.
    if after["held"].get("phase") in TERMINAL:
        changed.pop("held", None)
    assert not changed, changed
    assert not fx.exists("made-by-runner")


@pytest.mark.row("forgery")
@pytest.mark.timeout(300)
def test_runner_cannot_forge_operator_timestamps_through_its_checkpoint(fx, operators, kubeconfig, result):
    """The one timestamp a runner may write, its checkpoint's updatedAt, must not become an operator-owned
    one out of order: an acknowledgedAt before requestedAt would say the runner answered before it was asked."""
    operators.start()
    fx.create(manifest("held", "flux_examples.stubborn:main", {"onCancel": "ignore"}, gracePeriodSeconds=8))
    fx.wait_step("held", timeout=120)
    fx.cancel("held", "cancelled before the forgery")
    cancelling = fx.wait_phase("held", "Cancelling", timeout=30)
    held = client.CustomObjectsApi(as_runner(kubeconfig, fx.ns, "held"))
    checkpoint = {**(cancelling.get("checkpoint") or {}), "state": "Cancelled", "sequence": 10_000,
                  "updatedAt": "2000-01-01T00:00:00.000Z"}
    assert attempt(lambda: held.patch_namespaced_custom_object_status(
        GROUP, VERSION, fx.ns, PLURAL, "held", {"status": {"checkpoint": checkpoint}},
        _content_type="application/merge-patch+json")) == (0, ""), "a runner may write its own checkpoint"
    c = fx.wait_phase("held", *TERMINAL, timeout=60)["cancellation"]
    order = [c.get(k) for k in ("requestedAt", "acknowledgedAt", "completedAt")]
    result.note(f"the runner of a Cancelling execution wrote checkpoint.updatedAt 2000-01-01: cancellation "
                f"requested/acknowledged/completed = {order}, outcome {c.get('outcome')} (it had ignored SIGTERM)")
    assert parse_stamp(order[0]) <= parse_stamp(order[1]) <= parse_stamp(order[2]), \
        f"operator-owned cancellation timestamps out of order after a forged checkpoint.updatedAt: {order}"


# --- a spawn bomb ---------------------------------------------------------------------------------------

@pytest.mark.row("spawn-bomb")
@pytest.mark.timeout(400)
def test_spawn_bomb_is_capped_with_a_clear_error(fx, operators, result):
    """Two bombs: one execution spawning 60 children at once (the cap is 50 per execution), and one that
    spawns itself recursively (the cap is depth 5). Both must stop at the cap and say why."""
    operators.start()
    fx.create(manifest("wide", "flux_examples.spawnbomb:main", {"mode": "wide", "width": 60}))
    fx.create(manifest("deep", "flux_examples.spawnbomb:main", {"mode": "deep", "levels": 8}))
    chain = ["deep" + "-d" * level for level in range(MAX_DEPTH + 1)]  # depths 0..5
    refused_child = "deep" + "-d" * (MAX_DEPTH + 1)

    wide = fx.wait_phase("wide", *TERMINAL, timeout=180)
    wait_for(lambda: fx.exists(chain[-1]), timeout=180, what=f"{chain[-1]} (depth {MAX_DEPTH}) to be spawned")
    final = wait_all(fx, chain, *TERMINAL, timeout=180)
    items = fx.custom.list_namespaced_custom_object(GROUP, VERSION, fx.ns, PLURAL)["items"]
    wide_children = [i for i in items if (i["metadata"].get("labels") or {}).get(PARENT_LABEL) == "wide"]
    depths = {i["metadata"]["name"]: int((i["metadata"].get("labels") or {}).get(DEPTH_LABEL, "0")) for i in items}
    pods = len(fx.core.list_namespaced_pod(fx.ns).items)
    bottom = fx.status(chain[-1])
    mirrored = next((c for c in bottom.get("children", []) if c["name"] == refused_child), {})
    refusals = [e for e in fx.core.list_namespaced_event(fx.ns, field_selector=f"involvedObject.name={chain[-1]}").items
                if e.reason == "SpawnRefused"]
    result.figure(f"{len(items) - 2} child executions created: wide bomb {len(wide_children)} of 60 asked "
                  f"(cap {MAX_CHILDREN}), deep bomb {len(chain) - 1} levels below the root (cap depth {MAX_DEPTH}); "
                  f"{pods} runner pods still there at the end")
    result.note(f"wide: {wide.get('phase')}: {wide.get('message')}")
    result.note(f"deep: {chain[-1]} mirrored {mirrored}; root {final['deep'].get('phase')}: "
                f"{(final['deep'].get('message') or '')[:300]}")

    assert wide["phase"] == "Failed", wide
    assert f"at most {MAX_CHILDREN} children" in (wide.get("message") or ""), wide.get("message")
    assert len(wide_children) <= MAX_CHILDREN
    assert max(depths.values()) == MAX_DEPTH and not fx.exists(refused_child), depths
    assert mirrored.get("phase") == "Failed" and "refused" in (mirrored.get("error") or ""), mirrored
    assert len(refusals) == 1 and f"at most {MAX_DEPTH} levels" in refusals[0].message, \
        [(e.reason, e.message) for e in refusals]
    assert all(final[n]["phase"] == "Failed" for n in chain), {n: final[n].get("phase") for n in chain}
    # The CRD's own cap, whoever writes: 51 spawn requests are refused by the API server.
    with pytest.raises(ApiException) as too_many:
        patch_status(fx, "wide", {"spawnRequests": [{"name": f"wide-x{i}", "workflow": "a.b:c"}
                                                     for i in range(MAX_CHILDREN + 1)]})
    assert too_many.value.status == 422 and "50" in too_many.value.body, too_many.value.body


# --- status growth to the checkpoint budget ----------------------------------------------------------------

@pytest.mark.row("status-growth")
@pytest.mark.kubelet
@pytest.mark.timeout(300)
def test_status_growth_to_the_budget_fails_once(fx, operators, cluster, result):
    """Every step returns ~200 KB: the checkpoint outgrows its budget (256 KiB) at the second step. The
    execution must end Failed with CheckpointTooLarge, once: no crash loop of the runner pod."""
    operators.start()
    logs = RunnerLogs(fx.core, fx.ns, "grower")  # every runner start, through the API
    fx.create(manifest("grower", "flux_examples.growth:main", {"steps": 20, "kilobytes": 200}))
    try:
        status = fx.wait_phase("grower", *TERMINAL, timeout=120)
    finally:
        pod = fx.pod("grower")
        restarts = sum(s.restart_count for s in (pod.status.container_statuses or [])) if pod else None
        starts = runner_starts(logs)
        result.figure(f"{restarts} pod restarts, {starts} runner start(s); "
                      f"phase {fx.phase('grower')}")
    time.sleep(12)  # longer than the first crash-loop back-off (10 s): a restart would show by now
    pod = fx.pod("grower")
    restarts = sum(s.restart_count for s in (pod.status.container_statuses or [])) if pod else 0
    starts = runner_starts(logs)
    result.figure(f"{restarts} pod restarts, {starts} runner start(s)")
    message = status.get("message") or ""
    finished = next((c for c in status.get("conditions", []) if c["type"] == "Finished"), {})
    result.note(f"message: {message[:300]}")
    assert status["phase"] == "Failed", status.get("message")
    assert "CheckpointTooLarge" in message or "CheckpointTooLarge" in json.dumps(finished), (message, finished)
    assert restarts == 0 and starts == 1, f"{restarts} restarts, {starts} runner starts"
    assert fx.events("grower").count("Resumed") == 0
