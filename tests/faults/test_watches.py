"""A dead watch is seen: a watch stream that goes silent is re-opened, and one that cannot be re-opened keeps
the operator alive, turns /healthz red, and heals by itself once it can (flux_operator/watches.py).

Both faults are real: the operator's connections to the API server die silently behind a proxy (as after
a NAT or conntrack flush), and the operator's identity loses `watch` on Executions while the API server
restarts, so every watch must be opened again and the one on Executions is refused.
"""

from __future__ import annotations

import signal
import time

import pytest
from fluxtest import policies
from fluxtest import TERMINAL, manifest, wait_for
from fluxtest.faults import OPERATOR_NAMESPACE, OPERATOR_RULES, counted, health, log_tail, operator_account
from kubernetes import client
from localcluster.faults import BlackholeProxy

pytestmark = pytest.mark.faults

INACTIVITY = 70  # flux_operator.watches.INACTIVITY_SECONDS: kopf re-opens a stream silent this long


@pytest.mark.row("watch-silent")
@pytest.mark.timeout(300)
def test_a_silently_dead_watch_is_reopened(fx, operators, cluster, kube_env, operator_identity, tmp_path, result):
    """Every connection the operator has open dies without a FIN or RST; new ones work. The watches are
    re-opened within the inactivity timeout, and an execution created meanwhile is run."""
    proxy = BlackholeProxy(cluster.ports.apiserver)
    # As the chart's operator (the one the TenancyPolicy names), through the proxy.
    kubeconfig = operator_identity.kubeconfig_via(f"https://127.0.0.1:{proxy.port}", tmp_path / "through-proxy.kubeconfig")
    op = operators.start(env={**operators.env, "KUBECONFIG": str(kubeconfig)})
    try:
        fx.create(manifest("before", "flux_examples.quick:main"))
        fx.wait_phase("before", *TERMINAL, timeout=90)
        proxy.drop()
        time.sleep(1)
        proxy.restore(abandon_held=True)  # what was open stays silent for good
        cut = time.monotonic()
        fx.create(manifest("after", "flux_examples.quick:main"))
        after = fx.wait_phase("after", *TERMINAL, timeout=INACTIVITY + 90)
        took = time.monotonic() - cut
        code, report = health(op)
        result.figure(f"an execution created after its watch died silently ran to {after['phase']} {took:.0f} s later "
                      f"(kopf re-opens a silent stream after {INACTIVITY} s); healthz {code}")
        assert op.proc.poll() is None, log_tail(op)
        assert after["phase"] == "Succeeded", after
        assert took < INACTIVITY + 60, f"{took:.0f} s"
        assert code == 200, report
    finally:
        proxy.close()


@pytest.mark.row("watch-refused")
@pytest.mark.timeout(420)
def test_a_watch_that_cannot_be_reopened_turns_health_red_and_heals(fx, operators, namespace, cluster, api, faults,
                                                                     kube_env, kubectl, request, tmp_path, result):
    """The operator runs as a ServiceAccount; `watch` on Executions is taken from it and the API server
    restarts, so the stream must be opened again and is refused (403). Before, kopf's watcher task died and
    took the whole operator down; now the operator lives, restarts the watch with backoff, turns /healthz
    red naming it, and once `watch` is granted again is green and runs what is created. `watch` on pods goes
    too, and a running execution's runner pod is deleted meanwhile: no DELETED event can reach the operator,
    only its next listing, which no longer holds the pod (listings.py). The execution must resume in a new pod
    and succeed; a store that kept the pod would keep it Running for good."""
    named = policies.also_operators(kubectl, f"system:serviceaccount:{namespace}:weak-watcher")  # TenancyPolicy
    named.__enter__()
    request.addfinalizer(lambda: named.__exit__(None, None, None))
    rbac = client.RbacAuthorizationV1Api(api)
    kubeconfig = operator_account(api, cluster, namespace, "weak-watcher", tmp_path / "operator.kubeconfig")
    lease_rights(rbac, namespace, "weak-watcher", request)
    op = operators.start(env={**kube_env, "KUBECONFIG": str(kubeconfig)})
    fx.create(manifest("before", "flux_examples.quick:main"))
    fx.create(counted("orphaned", steps=90, seconds=1))  # still running well after the restart below
    assert fx.wait_phase("before", *TERMINAL, timeout=90)["phase"] == "Succeeded"
    fx.wait_step("orphaned", steps=1, timeout=90)
    runner_uid = fx.pod("orphaned").metadata.uid

    rules = OPERATOR_RULES
    no_watch = [{**r, "verbs": [v for v in r["verbs"] if v != "watch"]} if r["resources"] in (["executions"], ["pods"])
                else r for r in rules]
    rbac.patch_namespaced_role("weak-watcher", namespace, {"rules": no_watch})
    faults.restart("kube-apiserver", sig=signal.SIGTERM, kill_after=5)
    back = time.monotonic()
    created_once_admitted(fx, manifest("meanwhile", "flux_examples.quick:main"))
    core = client.CoreV1Api(api)
    assert fx.phase("orphaned") == "Running" and fx.pod("orphaned").status.phase == "Running"
    core.delete_namespaced_pod("orphaned-runner", namespace, grace_period_seconds=0,
                               body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=runner_uid)))

    def red():
        assert op.proc.poll() is None, f"the operator died: {log_tail(op)}"
        code, report = health(op)
        return report if code == 500 and "watches" in report.get("problems", {}) else None

    report = wait_for(red, timeout=150, interval=1, what="/healthz red naming the refused watch")
    red_after = time.monotonic() - back
    assert op.proc.poll() is None, f"the operator died: {log_tail(op)}"
    assert f"executions@{namespace}" in report["problems"]["watches"], report

    rbac.patch_namespaced_role("weak-watcher", namespace, {"rules": rules})
    granted = time.monotonic()
    wait_for(lambda: health(op)[0] == 200, timeout=150, what="/healthz green again (a minute without a failure)")
    healed = time.monotonic() - granted
    fx.create(manifest("after", "flux_examples.quick:main"))
    after = fx.wait_phase("after", *TERMINAL, timeout=60)
    meanwhile = fx.status("meanwhile").get("phase")
    orphaned = fx.wait_phase("orphaned", *TERMINAL, timeout=150)
    result.figure(f"operator alive; /healthz red {red_after:.0f} s after the API server came back refusing the "
                  f"watch, green {healed:.0f} s after `watch` was granted again; a new execution then "
                  f"{after['phase']}")
    result.note(f"/healthz said: {report['problems']['watches'][:200]}")
    result.note(f"an execution created while the watch was refused: {meanwhile} (each restart lists again, "
                f"and listing was still allowed)")
    result.note(f"a runner pod deleted while `watch` on pods was refused: its execution {orphaned.get('phase')}, "
                f"resumes {orphaned.get('resumes')}, events {fx.events('orphaned')}")
    assert after["phase"] == "Succeeded", after
    assert orphaned["phase"] == "Succeeded" and orphaned.get("resumes") == 1, (orphaned, log_tail(op, 1500))
    assert op.proc.poll() is None


def lease_rights(rbac: client.RbacAuthorizationV1Api, namespace: str, account: str, request) -> None:
    """The Lease the Operators elect with lives in the release namespace: the chart's leader-election Role,
    given to this account there for the test's length."""
    name = f"{account}-{namespace}"
    rbac.create_namespaced_role(OPERATOR_NAMESPACE, {"metadata": {"name": name}, "rules": [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]})
    rbac.create_namespaced_role_binding(OPERATOR_NAMESPACE, {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})

    def revoke() -> None:
        rbac.delete_namespaced_role_binding(name, OPERATOR_NAMESPACE)
        rbac.delete_namespaced_role(name, OPERATOR_NAMESPACE)
    request.addfinalizer(revoke)


def created_once_admitted(fx, body: dict) -> None:
    """Just after its restart the API server refuses what the admission policies check until it serves the
    TenancyPolicy kind their params name again (422, "failed to find resource referenced by paramKind")."""
    def create():
        try:
            return fx.create(body) or True
        except client.ApiException as err:
            if err.status == 422 and "paramKind" in str(err.body):
                return None
            raise
    wait_for(create, timeout=60, interval=1, what="the API server to admit an Execution again")
