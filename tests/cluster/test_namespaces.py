"""Opt-in namespaces on a real API server. The session's operator runs in label mode (no --namespace) as the
chart's ServiceAccount with the chart's cluster-mode RBAC and its admission policy (fluxtest.identity):
it acts only in namespaces labelled workflows.flux.dev/enabled=true, never in kube-*, and the API server
itself refuses its writes anywhere else. Listed namespaces need no label."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flux_api import GROUP, PLURAL, VERSION
from flux_api.names import ENABLED_NAMESPACE_LABEL
from fluxtest import Executions, longrun, manifest, policies, wait_for
from fluxtest import identity as ids
from fluxtest.identity import OPERATOR_USER
from fluxtest.namespaces import fresh_namespace
from fluxtest.operators import OperatorProcess
from fluxtest.tenancy import can_i
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

NOTICE = "NamespaceNotEnabled"


def notices(core: client.CoreV1Api, namespace: str, name: str) -> list[str]:
    items = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    return [e.message for e in items if e.reason == NOTICE]


def label(core: client.CoreV1Api, namespace: str, value: str | None) -> None:
    core.patch_namespace(namespace, {"metadata": {"labels": {ENABLED_NAMESPACE_LABEL: value}}})


def untouched_for(fx: Executions, name: str, seconds: float) -> None:
    """No status and no runner pod, for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert fx.get(name).get("status") in (None, {}), f"{name} was acted on: {fx.status(name)}"
        assert fx.pod(name) is None
        time.sleep(0.5)


@pytest.fixture
def unlabelled(core):
    with fresh_namespace(core, enabled=False) as ns:
        yield ns


def test_an_execution_in_a_namespace_not_enabled_is_left_alone_and_says_why_until_it_is(
        operator, custom, core, unlabelled):
    fx = Executions(custom, core, unlabelled)
    fx.create(manifest("hello", "flux_examples.quick:main", {"name": "opt-in"}))
    message = wait_for(lambda: notices(core, unlabelled, "hello"), timeout=30, what="the notice")[0]
    assert f"kubectl label namespace {unlabelled} {ENABLED_NAMESPACE_LABEL}=true" in message
    assert "leaves this execution alone" in message
    untouched_for(fx, "hello", 3)
    label(core, unlabelled, "true")
    status = fx.wait_phase("hello", "Succeeded", timeout=60)
    assert status["checkpoint"]["result"]["greeting"] == "hello, opt-in"
    assert len(notices(core, unlabelled, "hello")) == 1, "said once"


def test_switching_a_namespace_off_stops_the_operator_there_and_switching_it_on_carries_on(
        operator, custom, core, namespace):
    fx = Executions(custom, core, namespace)
    fx.create(longrun("running", steps=8, seconds=0.5))
    fx.wait_step("running")
    label(core, namespace, None)
    message = wait_for(lambda: notices(core, namespace, "running"), timeout=30, what="the notice")[0]
    assert "stopped acting on this execution" in message
    fx.create(manifest("later", "flux_examples.quick:main"))
    # The runner goes on by itself and reports its verdict; with nobody acting, the phase stays.
    wait_for(lambda: (fx.status("running").get("checkpoint") or {}).get("state") == "Succeeded", timeout=60,
             what="the runner to finish on its own")
    time.sleep(2)
    assert fx.phase("running") == "Running", "the operator stopped acting there"
    untouched_for(fx, "later", 1)
    label(core, namespace, "true")
    assert fx.wait_phase("running", "Succeeded", timeout=30)["checkpoint"]["state"] == "Succeeded"
    fx.wait_phase("later", "Succeeded", timeout=60)


def test_kube_system_is_never_served_even_when_labelled(operator, custom, core):
    fx = Executions(custom, core, "kube-system")
    name = f"flux-test-{uuid.uuid4().hex[:6]}"
    label(core, "kube-system", "true")
    try:
        fx.create(manifest(name, "flux_examples.quick:main"))
        message = wait_for(lambda: notices(core, "kube-system", name), timeout=30, what="the notice")[0]
        assert "never acts in kube-system" in message
        untouched_for(fx, name, 3)
    finally:
        label(core, "kube-system", None)
        try:
            custom.delete_namespaced_custom_object("workflows.flux.dev", "v1alpha1", "kube-system", "executions", name)
        except ApiException as err:
            if err.status != 404:
                raise


def dry_run_as_operator(kube_env, body: dict) -> subprocess.CompletedProcess:
    """Creates `body` as the operator's identity would (impersonated), checked but not kept (dry run)."""
    return subprocess.run(["kubectl", "create", f"--as={OPERATOR_USER}", "--dry-run=server", "-f", "-"], env=kube_env,
                          input=json.dumps(body), capture_output=True, text=True, timeout=60)


def pod(namespace: str) -> dict:
    return ids.runner_shaped("Pod", namespace)


def test_the_api_server_refuses_the_operators_writes_outside_enabled_namespaces(kube_env, core, namespace,
                                                                                 unlabelled, operator_identity):
    """Cluster mode's ClusterRole may create pods anywhere; the chart's admission policy holds it to the opt-in."""
    for ns in (namespace, unlabelled, "kube-system"):
        ids.runner_account(core, ns)
    assert dry_run_as_operator(kube_env, pod(namespace)).returncode == 0, "an enabled namespace: allowed"
    refused = dry_run_as_operator(kube_env, pod(unlabelled))
    assert refused.returncode != 0
    assert f"acts only in namespaces labelled {ENABLED_NAMESPACE_LABEL}=true; {unlabelled} is not" in refused.stderr
    account = ids.runner_shaped("ServiceAccount", unlabelled)
    assert "acts only in namespaces labelled" in dry_run_as_operator(kube_env, account).stderr
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "probe", "namespace": unlabelled},
             "involvedObject": {"kind": "Execution", "name": "x", "namespace": unlabelled}, "reason": NOTICE}
    assert dry_run_as_operator(kube_env, event).returncode == 0, "its notices are not confined"
    label(core, "kube-system", "true")
    try:
        in_system = dry_run_as_operator(kube_env, pod("kube-system"))
    finally:
        label(core, "kube-system", None)
        core.delete_namespaced_service_account("flux-runner-probe", "kube-system")
    assert "never acts in kube-system" in in_system.stderr, in_system.stderr
    # RBAC alone would have allowed all of it: the policy is what refused.
    can = subprocess.run(["kubectl", "auth", "can-i", "create", "pods", "-n", unlabelled, f"--as={OPERATOR_USER}"],
                         env=kube_env, capture_output=True, text=True, timeout=60)
    assert can.stdout.strip() == "yes"


@pytest.fixture
def listed(cluster, api, kube_env, unlabelled):
    """The chart rendered with watchNamespaces=[unlabelled] for a ServiceAccount of its own: Roles there only."""
    release = ids.unique_release()
    who = ids.install(cluster, api, kube_env, "--set", f"watchNamespaces={{{unlabelled}}}", release=release,
                      account=f"{release}-op")
    yield who
    ids.remove(kube_env, who)


def test_a_listed_namespace_is_served_without_a_label_by_an_operator_with_rights_only_there(
        cluster, custom, core, kube_env, kubectl, unlabelled, namespace, listed, operator):
    op = OperatorProcess(listed.operator_env(kube_env), cluster.logs)
    op.log_path = cluster.logs / f"listed-{listed.account}.log"
    with policies.also_operators(kubectl, listed.user):  # the TenancyPolicy names it: a second operator
        op.start("--namespace", unlabelled, "--leader-election-id", listed.account)
        try:
            fx = Executions(custom, core, unlabelled)
            fx.create(manifest("listed", "flux_examples.quick:main", {"name": "listed"}))
            status = fx.wait_phase("listed", "Succeeded", timeout=60)
            assert status["checkpoint"]["result"]["greeting"] == "hello, listed"
            assert fx.pod("listed").spec.service_account_name == "flux-runner-listed"
        finally:
            op.stop()

    assert can_i(kubectl, listed.user, "create", "pods", "-n", unlabelled) == "yes"
    assert can_i(kubectl, listed.user, "create", "pods", "-n", namespace) == "no", \
        "nothing in a namespace it does not serve"
    assert can_i(kubectl, listed.user, "list", "executions.workflows.flux.dev", "--all-namespaces") == "no"
    assert can_i(kubectl, listed.user, "create", "pods", "-n", "kube-system") == "no"


def keep_executions(namespace: str) -> dict:
    """An admission policy refusing every delete of an Execution in `namespace`: a namespace deleted now stays
    Terminating with its executions not yet deleted, the window the namespace controller opens on a busy cluster."""
    return {"failurePolicy": "Fail", "matchConstraints": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceRules": [{"apiGroups": [GROUP], "apiVersions": [VERSION], "operations": ["DELETE"],
                                   "resources": [PLURAL]}]},
            "validations": [{"expression": "false", "message": "kept by the test"}]}


def test_a_namespace_being_deleted_refuses_events_but_a_cancel_there_still_concludes(operator, custom, core,
                                                                                     kubectl):
    """The API server refuses every new Event in a namespace being deleted (403 "being terminated"). An Event is
    only news: the operator must still write the phase that follows it, or the execution stays as it was."""
    with fresh_namespace(core) as ns:
        fx = Executions(custom, core, ns)
        later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        fx.create(manifest("held", "flux_examples.quick:main", startAt=later))
        wait_for(lambda: fx.status("held").get("message", "").startswith("waiting"), timeout=30, what="waiting")
        with policies.own_policy(kubectl, f"flux-test-keep-{ns}", keep_executions(ns)):
            def delete_refused() -> bool:
                try:
                    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "held", dry_run="All")
                except ApiException as err:
                    return "kept by the test" in err.body
                return False
            wait_for(delete_refused, timeout=30, what="the keeping policy to be in effect")
            core.delete_namespace(ns)

            def events_refused() -> bool:
                try:
                    core.create_namespaced_event(ns, {"metadata": {"name": f"probe-{uuid.uuid4().hex[:6]}"},
                                                      "involvedObject": {"name": "held"}, "reason": "Probe",
                                                      "message": "probe"})
                except ApiException as err:
                    return err.status == 403 and "being terminated" in err.body
                return False
            wait_for(events_refused, timeout=30, what="the namespace to refuse new Events")
            assert not fx.get("held")["metadata"].get("deletionTimestamp"), "the execution is not being deleted"
            fx.cancel("held", "the team is leaving")
            status = fx.wait_phase("held", "Cancelled", timeout=30)
            assert status["cancellation"]["outcome"] == "NotStarted"
            assert fx.pod("held") is None
