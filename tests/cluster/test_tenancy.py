"""Multi-tenancy: an Execution grants its creator nothing they could not do themselves (issue 17).

Every request here is made through impersonation, as the API server would see it from a real user: a
*tenant* who may only create, get, list, watch and patch Executions and Schedules in the namespace (and
cannot read its Secrets), and a *privileged* user who may do anything in the namespace. Each escalation is
refused for the tenant, by the API server, with a message naming the missing permission, and the privileged
user still succeeds; what no one but the operator may do is refused for both. Dry runs ask the API server
without creating anything; the issue's own reproduction and a few others run for real through the operator.
"""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from flux_api import GROUP, PARENT_LABEL, PLURAL, VERSION
from fluxtest import Executions, longrun, manifest, wait_for
from fluxtest.faults import as_runner
from fluxtest.policies import eventually_admitted, own_policy, refusal
from fluxtest.tenancy import Tenant, grant
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

PASSWORD = "correct horse battery staple"


@pytest.fixture
def team(core, namespace, operator) -> str:
    """A team's namespace with a Secret the tenant must not read, a ConfigMap, and a running operator."""
    core.create_namespaced_secret(namespace, {"metadata": {"name": "db-admin"},
                                              "data": {"password": base64.b64encode(PASSWORD.encode()).decode()}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}})
    return namespace


@pytest.fixture
def tenant_namespace(team) -> str:
    """fluxtest's `tenant` and `privileged` fixtures act in the team's namespace."""
    return team


def execution(name: str = "x", template: dict | None = None, **spec) -> dict:
    body = manifest(name, "flux_examples.quick:main", **spec)
    if template is not None:
        body["spec"]["podTemplate"] = template
    return body


def secret_env(name: str = "db-admin") -> dict:
    return {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": name, "key": "password"}}}


# Results for the steps, which the runner returns without running them: whoever sets it steers the workflow.
FORGED_SEED = {"done": {"names": ["greet"]}, "results": {"greet": "https://attacker.example/collect"}}


# --- the issue's reproduction ----------------------------------------------------------------------------

ISSUE_MANIFEST = {
    "apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution", "metadata": {"name": "steal"},
    "spec": {"workflow": "flux_examples.environment:main", "input": {"names": ["PASSWORD"]},
             "podTemplate": {"env": [secret_env()]}},
}


def test_the_secret_read_of_the_issue_is_refused_at_kubectl_apply(tenant, team, fx_admin):
    applied = tenant.kubectl("apply", "-f", "-", input=yaml.safe_dump(ISSUE_MANIFEST))
    assert applied.returncode != 0, f"the tenant's Execution was admitted: {applied.stdout}"
    assert f"spec.podTemplate.env[0]: you may not get secret db-admin in {team}" in applied.stderr
    assert not fx_admin.exists("steal"), "nothing was created: no pod, no checkpoint with the value"


def test_the_privileged_user_still_runs_it_and_reads_the_secret(privileged, fx_admin):
    privileged.kubectl("apply", "-f", "-", input=yaml.safe_dump(ISSUE_MANIFEST), check=True)
    status = fx_admin.wait_phase("steal", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded", status
    assert status["checkpoint"]["result"]["env"]["PASSWORD"] == PASSWORD


@pytest.fixture
def fx_admin(custom, core, team) -> Executions:
    """The team's namespace as the test (the cluster admin) sees it: to observe, never to act."""
    return Executions(custom, core, team)


# --- each escalation: refused for the tenant, admitted for the privileged user ---------------------------

PROJECTED_TOKEN = {"serviceAccountToken": {"audience": "sts.amazonaws.com", "path": "token"}}
ESCALATIONS = {
    "env-secret": ({"env": [secret_env()]}, "spec.podTemplate.env[0]: you may not get secret db-admin in {ns}"),
    # With a prefix of its own: without one it also needs create pods (flux_api.steering), another policy's
    # refusal, and which of two the API server reports is its choice.
    "envFrom-secret": ({"envFrom": [{"prefix": "DB_", "secretRef": {"name": "db-admin"}}]},
                       "spec.podTemplate.envFrom[0]: you may not get secret db-admin in {ns}"),
    "secret-volume": ({"volumes": [{"name": "s", "secret": {"secretName": "db-admin"}}]},
                      "spec.podTemplate.volumes[0]: you may not get secret db-admin in {ns}"),
    # One source: with a ConfigMap the tenant may not read beside it, which policy's refusal is reported
    # first is the API server's choice.
    "projected-secret": ({"volumes": [{"name": "p", "projected": {"sources": [{"secret": {"name": "db-admin"}}]}}]},
                         "spec.podTemplate.volumes[0].projected.sources[0]: you may not get secret db-admin in {ns}"),
    "image-pull-secret": ({"imagePullSecrets": [{"name": "registry"}]},
                          "spec.podTemplate.imagePullSecrets[0]: you may not get secret registry in {ns}"),
    "env-configmap": ({"env": [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}]},
                      "spec.podTemplate.env[0]: you may not get configmap settings in {ns}"),
    "configmap-volume": ({"volumes": [{"name": "c", "configMap": {"name": "settings"}}]},
                         "spec.podTemplate.volumes[0]: you may not get configmap settings in {ns}"),
    "pvc-volume": ({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "other-teams-data"}}]},
                   "spec.podTemplate.volumes[0]: you may not create pods in {ns} (a persistentVolumeClaim volume "
                   "needs it)"),
    "projected-token": ({"volumes": [{"name": "t", "projected": {"sources": [PROJECTED_TOKEN]}}]},
                        "spec.podTemplate.volumes[0]: you may not create pods in {ns} (a projected volume needs it)"),
    "priority-class": ({"priorityClassName": "system-cluster-critical"},
                       "spec.podTemplate.priorityClassName: you may not create pods in {ns}"),
    "node-selector": ({"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}},
                      "spec.podTemplate.nodeSelector: you may not create pods in {ns}"),
    "tolerations": ({"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]},
                    "spec.podTemplate.tolerations: you may not create pods in {ns}"),
    "affinity": ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "Exists"}]}]}}}},
        "spec.podTemplate.affinity: you may not create pods in {ns}"),
    "pod-labels": ({"metadata": {"labels": {"app": "payments-db"}}},
                   "spec.podTemplate.metadata.labels: you may not create pods in {ns}"),
    "pod-annotations": ({"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}}},
                        "spec.podTemplate.metadata.annotations: you may not create pods in {ns}"),
    # What decides which code runs (flux_api.steering): code of one's own, as an image of one's own.
    "env-pythonpath": ({"env": [{"name": "PYTHONPATH", "value": "/scratch"}]},
                       "spec.podTemplate.env[0]: you may not create pods in {ns} (PYTHONPATH decides which code runs)"),
    "env-path": ({"env": [{"name": "GREETING", "value": "hi"}, {"name": "PATH", "value": "/scratch:/usr/bin"}]},
                 "spec.podTemplate.env[1]: you may not create pods in {ns} (PATH decides which code runs)"),
    "mount-over-code": ({"volumes": [{"name": "s", "emptyDir": {}}], "volumeMounts": [
        {"name": "s", "mountPath": "/data"}, {"name": "s", "mountPath": "/usr/local/lib/python3.11/site-packages/"}]},
        "spec.podTemplate.volumeMounts[1]: you may not create pods in {ns} (a mount at "
        "/usr/local/lib/python3.11/site-packages/ covers code of the image)"),
    "mount-above-code": ({"volumes": [{"name": "s", "emptyDir": {}}], "volumeMounts": [
        {"name": "s", "mountPath": "/etc"}]},
        "spec.podTemplate.volumeMounts[0]: you may not create pods in {ns} (a mount at /etc covers code"),
    "cloud-role": ({"serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/admin"}},
                   "spec.podTemplate.serviceAccountAnnotations: you may not create pods in {ns}"),
}


@pytest.mark.parametrize("key", list(ESCALATIONS))
def test_an_escalation_through_the_pod_template_is_refused_for_the_tenant_alone(tenant, privileged, team, key):
    template, message = ESCALATIONS[key]
    expected, last = message.format(ns=team), [None]

    def refused_so() -> bool:  # the authorizer's RBAC cache may lag the tenant's grants by a moment
        last[0] = refusal(tenant.api, execution(template=template), team)
        return last[0] is not None and expected in last[0]
    try:
        wait_for(refused_so, timeout=15, what=expected)
    except AssertionError:
        raise AssertionError(f"expected {expected!r}, got {last[0]!r}") from None
    eventually_admitted(privileged.api, execution(template=template), team)


def test_an_image_of_ones_own_needs_create_pods(tenant, privileged, team):
    refused = refusal(tenant.api, execution(image="attacker.example/steal:1"), team)
    assert refused and f"spec.image: you may not create pods in {team} (an image of your own needs it)" in refused
    eventually_admitted(privileged.api, execution(image="attacker.example/steal:1"), team)


def test_service_account_annotations_also_need_create_serviceaccounts(api, kubeconfig, kube_env, team):
    grant(api, team, f"podmaker-{team}", [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["create"]},
                                          {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}])
    podmaker = Tenant(team, f"podmaker-{team}", kubeconfig, kube_env)
    template, _ = ESCALATIONS["cloud-role"]
    refused = refusal(podmaker.api, execution(template=template), team)
    assert refused and (f"spec.podTemplate.serviceAccountAnnotations: you may not create serviceaccounts in {team}"
                        in refused), refused
    podmaker.close()


def test_a_schedule_is_checked_against_who_writes_it(tenant, privileged, team):
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Schedule", "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 2 * * *", "executionTemplate": {"spec": {
                "workflow": "flux_examples.quick:main", "podTemplate": {"env": [secret_env()]}}}}}
    refused = refusal(tenant.api, body, team, "schedules")
    message = f"spec.executionTemplate.spec.podTemplate.env[0]: you may not get secret db-admin in {team}"
    assert refused and message in refused, refused
    eventually_admitted(privileged.api, body, team, "schedules")
    schedules = client.CustomObjectsApi(privileged.api)
    schedules.create_namespaced_custom_object(GROUP, VERSION, team, "schedules", body | {"spec": body["spec"] | {
        "suspend": True}})
    with pytest.raises(ApiException) as forged:  # every later run would start from the tenant's results
        client.CustomObjectsApi(tenant.api).patch_namespaced_custom_object(
            GROUP, VERSION, team, "schedules", "nightly",
            {"spec": {"executionTemplate": {"spec": {"seed": FORGED_SEED}}}})
    assert message in forged.value.body
    stored = schedules.get_namespaced_custom_object(GROUP, VERSION, team, "schedules", "nightly")
    assert "seed" not in stored["spec"]["executionTemplate"]["spec"]


def test_a_schedule_needs_the_right_to_create_its_runs(api, kubeconfig, kube_env, team):
    """Its runs are Executions the operator makes: a writer of Schedules alone would get what they may not make."""
    grant(api, team, f"scheduler-{team}", [{"apiGroups": [GROUP], "resources": ["schedules"], "verbs": ["create"]}])
    scheduler = Tenant(team, f"scheduler-{team}", kubeconfig, kube_env)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Schedule", "metadata": {"name": "hourly"},
            "spec": {"schedule": "0 * * * *", "executionTemplate": {"spec": {"workflow": "flux_examples.quick:main"}}}}
    expected = f"spec.executionTemplate: you may not create executions in {team} (its runs are Executions)"
    last: list[str | None] = [None]

    def refused_so() -> bool:  # the authorizer's RBAC cache may lag the grant by a moment
        last[0] = refusal(scheduler.api, body, team, "schedules")
        return last[0] is not None and expected in last[0]
    try:
        wait_for(refused_so, timeout=15, what=expected)
    except AssertionError:
        raise AssertionError(f"expected {expected!r}, got {last[0]!r}") from None
    scheduler.close()


# --- what no one but the operator may do ------------------------------------------------------------------

@pytest.mark.parametrize("who", ["tenant", "privileged"])
def test_only_the_operator_labels_children_and_makes_executions_owners(request, team, fx_admin, who):
    user: Tenant = request.getfixturevalue(who)
    fx_admin.create(longrun("victim", startAt="2099-01-01T00:00:00Z"))
    victim = fx_admin.get("victim")
    forged_child = execution("forged")
    forged_child["metadata"]["labels"] = {PARENT_LABEL: "victim"}
    refused = refusal(user.api, forged_child, team)
    assert refused and f"metadata.labels.{PARENT_LABEL}: only the flux operator sets this label" in refused, refused
    owned = execution("owned")
    owned["metadata"]["ownerReferences"] = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution",
                                             "name": "victim", "uid": victim["metadata"]["uid"]}]
    refused = refusal(user.api, owned, team)
    assert refused and "metadata.ownerReferences: only the flux operator may make Execution victim an owner" in refused
    with pytest.raises(ApiException) as relabel:
        user.fx.patch("victim", {"metadata": {"labels": {"workflows.flux.dev/depth": "0"}}})
    assert "only the flux operator sets this label" in relabel.value.body


def test_a_schedule_template_cannot_carry_the_operators_labels(privileged, team):
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Schedule", "metadata": {"name": "forger"},
            "spec": {"schedule": "* * * * *", "executionTemplate": {
                "metadata": {"labels": {PARENT_LABEL: "victim"}},
                "spec": {"workflow": "flux_examples.quick:main"}}}}
    refused = refusal(privileged.api, body, team, "schedules")
    assert refused and f"cannot set {GROUP}/*" in refused, refused


def test_runner_objects_with_the_operators_marks_are_refused_and_the_garbage_collector_still_orphans(
        privileged, core, team, fx_admin):
    forged_pod = {"metadata": {"name": "fake-runner", "labels": {"workflows.flux.dev/execution": "victim"}},
                  "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"]}]}}
    with pytest.raises(ApiException) as pod:
        privileged.core.create_namespaced_pod(team, forged_pod, dry_run="All")
    assert "metadata.labels.workflows.flux.dev/execution: only the flux operator sets this label" in pod.value.body
    fx_admin.create(longrun("orphaned"))
    fx_admin.wait_step("orphaned")
    account = {"metadata": {"name": "flux-runner-squat", "ownerReferences": [
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution", "name": "orphaned",
         "uid": fx_admin.get("orphaned")["metadata"]["uid"]}]}}
    with pytest.raises(ApiException) as squat:
        privileged.core.create_namespaced_service_account(team, account, dry_run="All")
    assert "only the flux operator may make Execution orphaned an owner" in squat.value.body
    # The garbage collector (not the operator) removes an ownerReference when it orphans: that stays open.
    privileged.custom.delete_namespaced_custom_object(GROUP, VERSION, team, PLURAL, "orphaned",
                                                      propagation_policy="Orphan")
    wait_for(lambda: not core.read_namespaced_pod("orphaned-runner", team).metadata.owner_references,
             timeout=60, what="the garbage collector to orphan the runner pod")
    core.delete_namespaced_pod("orphaned-runner", team, grace_period_seconds=0)


# --- updates: checked like a create only when what runs changes -------------------------------------------

IMMUTABLE = "cannot change once the Execution exists (each new runner pod reads them again)"


def test_what_runs_cannot_change_once_the_execution_exists(tenant, privileged, team, fx_admin):
    """A colleague who may patch your Execution cannot swap its workflow or input, nor hand it results for steps it
    would then skip (seed): the next runner pod would run them under your name. Neither can you, nor an admin."""
    privileged.fx.create(execution("theirs", template={"env": [secret_env()]}, startAt="2099-01-01T00:00:00Z"))
    changes = {"workflow": "flux_examples.environment:main", "input": {"target": "elsewhere"}, "seed": FORGED_SEED,
               "image": "attacker.example/steal:1", "podTemplate": {"env": []}}
    for who in (tenant, privileged):
        for field, value in changes.items():
            with pytest.raises(ApiException) as changed:
                who.fx.patch("theirs", {"spec": {field: value}})
            assert IMMUTABLE in changed.value.body, (who.user, field, changed.value.body)
    stored = fx_admin.get("theirs")["spec"]
    assert "seed" not in stored and stored["input"] == {} and stored["workflow"] == "flux_examples.quick:main"
    tenant.fx.patch("theirs", {"spec": {"startAt": "2098-01-01T00:00:00Z"}})  # when it starts may still move
    tenant.fx.cancel("theirs", "a colleague may still cancel it")
    fx_admin.wait_phase("theirs", "Cancelled")


def test_deleting_sooner_through_the_ttl_needs_delete(tenant, privileged, team):
    tenant.fx.create(execution("kept", ttlSecondsAfterFinished=3600, startAt="2099-01-01T00:00:00Z"))
    with pytest.raises(ApiException) as sooner:
        tenant.fx.patch("kept", {"spec": {"ttlSecondsAfterFinished": 0}})
    assert (f"spec.ttlSecondsAfterFinished: you may not delete executions in {team} (kept): 0s deletes it sooner "
            "than 3600s") in sooner.value.body
    tenant.fx.patch("kept", {"spec": {"ttlSecondsAfterFinished": 7200}})  # later is no deletion
    privileged.fx.patch("kept", {"spec": {"ttlSecondsAfterFinished": 0}})  # who may delete may delete sooner


DANGLING_OWNER = {"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "never-made",
                                                     "uid": "00000000-0000-0000-0000-000000000001"}]}}


def test_deleting_through_an_owner_or_a_schedules_history_needs_delete(tenant, privileged, team):
    tenant.fx.create(execution("kept-too", startAt="2099-01-01T00:00:00Z"))
    with pytest.raises(ApiException) as owned:  # the garbage collector deletes what a missing owner owned
        tenant.fx.patch("kept-too", DANGLING_OWNER)
    assert (f"metadata.ownerReferences: you may not delete executions in {team} (kept-too): an owner lets the "
            "garbage collector delete it (ConfigMap never-made)") in owned.value.body
    schedules = client.CustomObjectsApi(tenant.api)

    def patch_schedule(body: dict) -> None:
        schedules.patch_namespaced_custom_object(GROUP, VERSION, team, "schedules", "history", body)

    schedules.create_namespaced_custom_object(GROUP, VERSION, team, "schedules", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Schedule", "metadata": {"name": "history"},
        "spec": {"schedule": "0 2 * * *", "suspend": True,
                 "executionTemplate": {"spec": {"workflow": "flux_examples.quick:main"}}}})
    with pytest.raises(ApiException) as owned:
        patch_schedule(DANGLING_OWNER)
    assert f"metadata.ownerReferences: you may not delete schedules in {team} (history)" in owned.value.body
    for fewer in ({"successfulExecutionsHistoryLimit": 0}, {"cancelledExecutionsHistoryLimit": 0},
                  {"executionTemplate": {"spec": {"ttlSecondsAfterFinished": 0}}}):
        with pytest.raises(ApiException) as runs:
            patch_schedule({"spec": fewer})
        assert (f"spec: you may not delete executions in {team}: lower history limits or a sooner "
                "ttlSecondsAfterFinished in the template delete runs of the Schedule") in runs.value.body, fewer
    patch_schedule({"spec": {"successfulExecutionsHistoryLimit": 10}})  # keeping more deletes nothing
    client.CustomObjectsApi(privileged.api).patch_namespaced_custom_object(  # who may delete may
        GROUP, VERSION, team, "schedules", "history", {"spec": {"successfulExecutionsHistoryLimit": 0}})


# --- children inherit, runners keep to their status ---------------------------------------------------------

def test_children_inherit_the_checked_template(privileged, fx_admin):
    template = {"env": [secret_env()]}
    privileged.fx.create(manifest("family", "flux_examples.tree:main", {"steps": 1, "stepSeconds": 0.1},
                                  podTemplate=template))
    assert fx_admin.wait_phase("family", "Succeeded", "Failed", timeout=120)["phase"] == "Succeeded"
    for child in ("family-left", "family-right", "family-left-leaf"):
        inherited = {k: v for k, v in fx_admin.get(child)["spec"]["podTemplate"].items() if v}
        assert inherited == template, child


def test_a_runner_writes_nothing_once_its_execution_has_finished(kubeconfig, team, fx_admin):
    fx_admin.create(execution("done"))
    fx_admin.wait_phase("done", "Succeeded", timeout=60)
    runner = client.CustomObjectsApi(as_runner(kubeconfig, team, "done"))
    with pytest.raises(ApiException) as late:
        runner.patch_namespaced_custom_object_status(GROUP, VERSION, team, PLURAL, "done",
                                                     {"status": {"checkpoint": {"state": "Failed", "sequence": 99}}})
    assert "the execution has finished (Succeeded): its runner may no longer write its status" in late.value.body
    assert fx_admin.status("done")["checkpoint"]["state"] == "Succeeded"


# --- the cost budget: 256 env entries, each a Secret ---------------------------------------------------------

def _many_secrets(count: int, distinct: int) -> dict:
    return {"env": [secret_env(f"s{i % distinct}") | {"name": f"E{i}"} for i in range(count)]}


def test_names_are_checked_once_each_within_the_api_servers_cost_budget(api, kubeconfig, kube_env, tenant,
                                                                         privileged, team):
    refused = refusal(tenant.api, execution(template=_many_secrets(256, 256)), team)
    assert refused and f"spec.podTemplate.env[0]: you may not get secret s0 in {team}" in refused, refused
    eventually_admitted(privileged.api, execution(template=_many_secrets(256, 256)), team)
    names = [f"s{i}" for i in range(20)]
    grant(api, team, f"named-{team}", [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["create"]},
                                       {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                                        "resourceNames": names}])
    named = Tenant(team, f"named-{team}", kubeconfig, kube_env)
    eventually_admitted(named.api, execution(template=_many_secrets(256, 20)), team)
    refused = refusal(named.api, execution(template=_many_secrets(256, 21)), team)
    assert refused and f"21 secrets are named; past 20, you need get on all secrets in {team}" in refused, refused
    named.close()



def test_the_cost_budget_the_policies_are_designed_for(api, kubectl, namespace):
    """The measurement behind flux_api.admission's design, on the pinned API server: two authorizer checks fit
    in one expression and three do not; 28 fit in one policy and 29 do not."""
    name = f"flux-test-budget-{namespace}"
    checks = "authorizer.group('').resource('secrets').namespace(request.namespace).name(variables.names[{i}])" \
             ".check('get').allowed()"
    spec = {"failurePolicy": "Fail", "matchConstraints": {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                           "resources": ["configmaps"]}]},
        "variables": [{"name": "names", "expression": "object.data.map(k, string(object.data[k]))"}],
        "validations": [
            {"expression": "!('one-expression' in object.metadata.labels) || "
                           "object.data.all(k, authorizer.group('').resource('secrets')"
                           ".namespace(request.namespace).name(k).check('get').allowed())"},
            *[{"expression": f"('one-expression' in object.metadata.labels) || size(variables.names) <= {i}"
                             f" || {checks.format(i=i)}"} for i in range(32)]]}
    core = client.CoreV1Api(api)

    def answer(count: int, one_expression: bool = False) -> str | None:
        labels = {"one-expression": "yes", "probe": "1"} if one_expression else {"probe": "1"}
        body = {"metadata": {"name": "probe", "labels": labels}, "data": {f"k{i}": f"s{i}" for i in range(count)}}
        try:
            core.create_namespaced_config_map(namespace, body, dry_run="All")
        except ApiException as err:
            return json.loads(err.body)["message"]
        return None

    with own_policy(kubectl, name, spec):
        wait_for(lambda: answer(29) is not None, timeout=30, what="the budget policy to be in effect")
        assert answer(2, one_expression=True) is None
        assert "cost limit exceeded" in (answer(3, one_expression=True) or "")
        assert answer(28) is None
        assert "running out of cost budget" in (answer(29) or "")
