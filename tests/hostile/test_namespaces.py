"""A user with Execution rights in a namespace that never opted in to Flux (or in kube-system) must not get
a runner pod there: `create executions` must not be `create pods` wherever RBAC happens to allow the former.

The operator here runs as the chart installs it by default: label mode (no --namespace), as the chart's
ServiceAccount with the chart's cluster-mode RBAC and admission policy (fluxtest.identity).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from flux_api.names import ENABLED_NAMESPACE_LABEL
from fluxtest import manifest
from fluxtest.faults import Operators, log_tail
from fluxtest.identity import OPERATOR_NAMESPACE
from fluxtest.namespaces import fresh_namespace
from fluxtest.tenancy import Tenant, execution_rules, grant, make_tenant
from kubernetes import client
from kubernetes.client.rest import ApiException

NOTICE = "NamespaceNotEnabled"


class LabelModeOperators(Operators):
    """One operator in label mode, with a Lease of its own: it serves every labelled namespace."""

    @property
    def args(self) -> list[str]:
        return ["--leader-election-namespace", OPERATOR_NAMESPACE, "--leader-election-id", self.lease]


@pytest.fixture
def label_mode(operator_env, cluster, crd_installed) -> LabelModeOperators:
    ops = LabelModeOperators(operator_env, cluster, OPERATOR_NAMESPACE)
    yield ops
    ops.stop_all()


def notice(core, namespace: str, name: str) -> str | None:
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    return next((e.message for e in events if e.reason == NOTICE), None)


def runner_objects(core, namespace: str, name: str) -> list[str]:
    """What the operator would make for a runner: its pod and ServiceAccount."""
    found = []
    for read, what in ((lambda: core.read_namespaced_pod(f"{name}-runner", namespace), "pod"),
                       (lambda: core.read_namespaced_service_account(f"flux-runner-{name}", namespace), "account")):
        try:
            read()
            found.append(what)
        except ApiException as err:
            if err.status != 404:
                raise
    return found


def outcome(core, namespace: str, name: str, timeout: float = 60, settle: float = 5) -> tuple[list[str], str | None, float]:
    """What came of the Execution: runner objects made, the notice, and how long until either; then `settle`
    more seconds in which no runner object may appear."""
    began = time.monotonic()
    made, said = [], None
    while time.monotonic() - began < timeout and not made and not said:
        made, said = runner_objects(core, namespace, name), notice(core, namespace, name)
        time.sleep(0.25)
    took = time.monotonic() - began
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and not made:
        made = runner_objects(core, namespace, name)
        time.sleep(0.5)
    return made, said, took


@pytest.mark.threat("namespace-not-enabled", "a tenant with Execution rights in a namespace that never opted in "
                    "applies an Execution", "no runner pod, ServiceAccount or status; a Warning Event says how to opt in")
@pytest.mark.timeout(180)
def test_an_execution_in_a_namespace_not_opted_in_starts_nothing(api, core, kubeconfig, kube_env, custom,
                                                                  label_mode, result):
    op = label_mode.start()
    with fresh_namespace(core, enabled=False) as ns:
        tenant: Tenant = make_tenant(api, kubeconfig, kube_env, ns)
        try:
            created = tenant.kubectl("create", "-f", "-", input=json.dumps(manifest("sneaky", "flux_examples.quick:main")))
            assert created.returncode == 0, created.stderr
            made, said, after = outcome(core, ns, "sneaky")
            status = custom.get_namespaced_custom_object("workflows.flux.dev", "v1alpha1", ns, "executions",
                                                         "sneaky").get("status")
            result.figure(f"runner objects made: {made or 'none'}; status {'untouched' if not status else 'written'}; "
                          + (f"notice after {after:.1f} s" if said else "no notice"))
            assert op.proc.poll() is None, log_tail(op)
            assert made == [] and not status
            assert said and f"{ENABLED_NAMESPACE_LABEL}=true" in said
        finally:
            tenant.close()


@pytest.mark.threat("kube-system", "a user with Execution rights in kube-system, after an admin labelled kube-system "
                    "as enabled, applies an Execution", "no runner pod or ServiceAccount in kube-system; a Warning Event")
@pytest.mark.timeout(180)
def test_kube_system_is_never_served_even_labelled(api, core, kubeconfig, kube_env, custom, label_mode, result):
    op = label_mode.start()
    user, name = f"ops-{uuid.uuid4().hex[:6]}", f"sneaky-{uuid.uuid4().hex[:6]}"
    role = f"flux-hostile-{user}"
    grant(api, "kube-system", user, execution_rules(), name=role)
    core.patch_namespace("kube-system", {"metadata": {"labels": {ENABLED_NAMESPACE_LABEL: "true"}}})
    tenant = Tenant("kube-system", user, kubeconfig, kube_env)
    try:
        created = tenant.kubectl("create", "-f", "-", input=json.dumps(manifest(name, "flux_examples.quick:main")))
        assert created.returncode == 0, created.stderr
        made, said, after = outcome(core, "kube-system", name)
        result.figure(f"runner objects made in kube-system: {made or 'none'}; notice after {after:.1f} s"
                      if said else f"runner objects made in kube-system: {made or 'none'}; no notice")
        assert op.proc.poll() is None, log_tail(op)
        assert made == [] and said and "never acts in kube-system" in said
    finally:
        tenant.close()
        core.patch_namespace("kube-system", {"metadata": {"labels": {ENABLED_NAMESPACE_LABEL: None}}})
        rbac = client.RbacAuthorizationV1Api(api)
        for delete in (lambda: custom.delete_namespaced_custom_object("workflows.flux.dev", "v1alpha1", "kube-system",
                                                                      "executions", name),
                       lambda: rbac.delete_namespaced_role(role, "kube-system"),
                       lambda: rbac.delete_namespaced_role_binding(role, "kube-system")):
            try:
                delete()
            except ApiException as err:
                if err.status != 404:
                    raise
