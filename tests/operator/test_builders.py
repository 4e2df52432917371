"""Manifest builders are pure: an execution in, dicts out."""

from __future__ import annotations

import pytest
from flux_api import EXECUTION_LABEL, PARENT_LABEL, Execution
from flux_api.names import CANCELLED_BY_ANNOTATION, DEPTH_LABEL, ROOT_LABEL
from flux_operator import builders
from flux_operator.main import parse_args

pytestmark = pytest.mark.unit

SETTINGS = builders.RunnerSettings(image="registry.example/runner:1", command=("flux-runner",))


def execution(**spec) -> Execution:
    return Execution.model_validate({
        "metadata": {"name": "job", "namespace": "team", "uid": "uid-1"},
        "spec": {"workflow": "pkg.mod:main", **spec},
    })


def test_pod_is_owned_labelled_and_locked_down():
    pod = builders.runner_pod(execution(gracePeriodSeconds=45), SETTINGS)
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "job-runner" and meta["namespace"] == "team"
    assert meta["labels"][EXECUTION_LABEL] == "job"
    assert meta["ownerReferences"] == [{"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
                                        "name": "job", "uid": "uid-1", "controller": True,
                                        "blockOwnerDeletion": True}]
    assert spec["terminationGracePeriodSeconds"] == 45
    assert spec["restartPolicy"] == "OnFailure"
    assert spec["serviceAccountName"] == "flux-runner-job"
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 65532
    container = spec["containers"][0]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["image"] == "registry.example/runner:1"
    assert container["command"] == ["flux-runner"]
    env = {e["name"]: e for e in container["env"]}
    assert env["FLUX_EXECUTION_NAME"]["value"] == "job"
    assert env["FLUX_EXECUTION_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    # No user site: a HOME of the template's choosing must not load .pth files of its own.
    assert {"name": "PYTHONNOUSERSITE", "value": "1"} in container["env"]


def test_spec_image_overrides_the_default():
    pod = builders.runner_pod(execution(image="mine:2"), SETTINGS)
    assert pod["spec"]["containers"][0]["image"] == "mine:2"


def test_default_grace_period_comes_from_settings_when_unset():
    ex = builders.with_defaults(execution(), builders.RunnerSettings(default_grace_period=90))
    assert ex.spec.gracePeriodSeconds == 90
    assert builders.with_defaults(execution(gracePeriodSeconds=0), SETTINGS).spec.gracePeriodSeconds == 0


def test_role_grants_get_and_watch_on_itself_and_patch_on_its_status_only():
    rules = builders.role(execution())["rules"]
    assert rules == [
        {"apiGroups": ["workflows.flux.dev"], "resources": ["executions"], "resourceNames": ["job"],
         "verbs": ["get", "watch"]},
        {"apiGroups": ["workflows.flux.dev"], "resources": ["executions/status"], "resourceNames": ["job"],
         "verbs": ["patch"]},
        {"apiGroups": ["workflows.flux.dev"], "resources": ["executionprogresses"], "resourceNames": ["job"],
         "verbs": ["get"]},
        {"apiGroups": ["workflows.flux.dev"], "resources": ["executionprogresses/status"], "resourceNames": ["job"],
         "verbs": ["patch"]},
    ]
    assert all("*" not in rule["verbs"] for rule in rules)


def test_the_progress_object_has_the_executions_name_and_is_owned_by_it():
    body = builders.progress_object(execution())
    assert body["kind"] == "ExecutionProgress" and body["metadata"]["name"] == "job"
    assert body["metadata"]["ownerReferences"] == [builders.owner_reference(execution())]
    assert "status" not in body, "the runner writes the status; a create could not set it anyway"


def test_role_binding_binds_the_runner_account():
    binding = builders.role_binding(execution())
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "flux-runner-job"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "flux-runner-job", "namespace": "team"}]
    assert builders.service_account(execution())["metadata"]["name"] == "flux-runner-job"


def test_child_execution_is_owned_labelled_and_inherits_grace_and_image():
    parent = builders.with_defaults(execution(image="mine:2"), SETTINGS)
    child = builders.child_execution(parent, "job-left", "pkg.mod:branch", {"x": 1})
    assert child["metadata"]["labels"] == {PARENT_LABEL: "job", DEPTH_LABEL: "1", ROOT_LABEL: "uid-1"}, "its root's UID"
    assert child["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert child["spec"] == {"workflow": "pkg.mod:branch", "input": {"x": 1}, "gracePeriodSeconds": 30,
                             "image": "mine:2"}


def test_a_child_carries_its_parents_own_labels_but_never_the_operators():
    """So a limit that counts the parent by its labels counts its children too (with includeChildren)."""
    parent = execution()
    parent.metadata["labels"] = {"pipeline": "etl", "app.kubernetes.io/managed-by": "helm", DEPTH_LABEL: "2",
                                 PARENT_LABEL: "grandparent", "workflows.flux.dev/schedule": "nightly",
                                 "app.kubernetes.io/name": "flux-runner", ROOT_LABEL: "origin"}
    child = builders.child_execution(parent, "job-left", "pkg.mod:branch", {})
    assert child["metadata"]["labels"] == {"pipeline": "etl", "app.kubernetes.io/managed-by": "helm",
                                           PARENT_LABEL: "job", DEPTH_LABEL: "3", ROOT_LABEL: "origin"}


def test_child_cancel_patch_marks_the_parent_as_source():
    patch = builders.child_cancel_patch("job", "parent job cancelled: x", force=True)
    assert patch == {"metadata": {"annotations": {CANCELLED_BY_ANNOTATION: "job"}},
                     "spec": {"cancel": {"reason": "parent job cancelled: x", "cascade": True, "force": True}}}


def test_builders_do_not_mutate_their_input():
    ex = execution()
    before = ex.model_dump()
    builders.runner_pod(ex, SETTINGS)
    builders.role(ex)
    assert ex.model_dump() == before


# --- the operator's command line ----------------------------------------------------------------------

def test_operator_flags_and_env_fallbacks(monkeypatch):
    monkeypatch.setenv("FLUX_NAMESPACES", "a, b")
    monkeypatch.setenv("FLUX_LOG_FORMAT", "json")
    args = parse_args([])
    assert args.namespaces == ["a", "b"] and args.log_format == "json"
    args = parse_args(["--namespace", "x", "--log-format", "text", "--metrics-port", "0"])
    assert args.namespaces == ["x"] and args.log_format == "text" and args.metrics_port == 0


def test_the_checkpoint_interval_reaches_the_runner_pod(monkeypatch):
    assert parse_args([]).checkpoint_interval == 1.0
    monkeypatch.setenv("FLUX_CHECKPOINT_INTERVAL", "0.25")
    assert parse_args([]).checkpoint_interval == 0.25
    pod = builders.runner_pod(execution(), builders.RunnerSettings(checkpoint_interval=0.25))
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["FLUX_CHECKPOINT_INTERVAL"] == "0.25"


@pytest.mark.parametrize("argv", [["--log-format", "xml"], ["--default-grace-period", "4000"],
                                  ["--metrics-port", "many"], ["--checkpoint-interval", "-1"],
                                  ["--checkpoint-interval", "soon"]])
def test_operator_rejects_bad_flags(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert "flux-operator: error:" in capsys.readouterr().err


def test_operator_rejects_bad_environment_values_clearly(monkeypatch, capsys):
    monkeypatch.setenv("FLUX_METRICS_PORT", "nine")
    with pytest.raises(SystemExit):
        parse_args([])
    assert "--metrics-port: invalid int value: 'nine'" in capsys.readouterr().err


# --- spec.podTemplate -----------------------------------------------------------------------------

TEMPLATE = {
    "metadata": {"labels": {"team": "data", EXECUTION_LABEL: "forged"}, "annotations": {"a": "b"}},
    "env": [{"name": "MODE", "value": "fast"}, {"name": "FLUX_EXECUTION_NAME", "value": "forged"},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
    "envFrom": [{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "creds", "optional": True}}],
    "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi", "cpu": 1}},
    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
    "nodeSelector": {"pool": "batch"},
    "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
    "priorityClassName": "batch-low",
    "imagePullSecrets": [{"name": "registry"}],
    "serviceAccountAnnotations": {"iam.gke.io/gcp-service-account": "runner@p.iam.gserviceaccount.com"},
}


def test_pod_template_settings_reach_the_pod():
    pod = builders.runner_pod(execution(podTemplate=TEMPLATE), SETTINGS)
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert pod["metadata"]["labels"]["team"] == "data"
    assert pod["metadata"]["annotations"] == {"a": "b"}
    env = {e["name"]: e for e in container["env"]}
    assert env["MODE"] == {"name": "MODE", "value": "fast"}
    assert env["PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "db", "key": "password"}}
    assert container["envFrom"] == TEMPLATE["envFrom"]
    assert container["resources"] == TEMPLATE["resources"]
    assert {"name": "data", "mountPath": "/data", "readOnly": True} in container["volumeMounts"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data"}} in spec["volumes"]
    assert spec["nodeSelector"] == {"pool": "batch"}
    assert spec["tolerations"] == TEMPLATE["tolerations"]
    assert spec["affinity"] == TEMPLATE["affinity"]
    assert spec["priorityClassName"] == "batch-low"
    assert spec["imagePullSecrets"] == [{"name": "registry"}]


def test_owned_fields_win_over_the_template():
    pod = builders.runner_pod(execution(podTemplate=TEMPLATE, gracePeriodSeconds=7), SETTINGS)
    container = pod["spec"]["containers"][0]
    assert pod["metadata"]["labels"][EXECUTION_LABEL] == "job"
    names = [e["name"] for e in container["env"]]
    assert names.count("FLUX_EXECUTION_NAME") == 1
    assert {"name": "FLUX_EXECUTION_NAME", "value": "job"} in container["env"]
    assert container["command"] == ["flux-runner"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["terminationGracePeriodSeconds"] == 7
    assert pod["spec"]["serviceAccountName"] == "flux-runner-job"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_service_account_annotations_do_not_widen_the_role():
    ex = execution(podTemplate=TEMPLATE)
    account = builders.service_account(ex)
    assert account["metadata"]["annotations"] == TEMPLATE["serviceAccountAnnotations"]
    assert builders.role(ex) == builders.role(execution())
    assert "annotations" not in builders.service_account(execution())["metadata"]


def test_default_resources_come_from_settings_unless_the_template_sets_them():
    chart = builders.RunnerSettings(resources={"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}})
    assert builders.runner_pod(execution(), chart)["spec"]["containers"][0]["resources"] == \
        {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}
    assert builders.runner_pod(execution(), SETTINGS)["spec"]["containers"][0]["resources"]["requests"] == \
        {"cpu": "50m", "memory": "64Mi"}


def test_a_retry_gets_a_fresh_pod_name():
    ex = execution().model_copy(update={"status": execution().status.model_copy(update={"retries": 2})})
    assert builders.runner_pod(ex, SETTINGS)["metadata"]["name"] == "job-runner-2"


def test_default_ttl_applies_to_top_level_executions_only():
    settings = builders.RunnerSettings(default_ttl=600)
    assert builders.with_defaults(execution(), settings).spec.ttlSecondsAfterFinished == 600
    assert builders.with_defaults(execution(ttlSecondsAfterFinished=5), settings).spec.ttlSecondsAfterFinished == 5
    child = Execution.model_validate({"metadata": {"name": "c", "labels": {PARENT_LABEL: "p"}},
                                      "spec": {"workflow": "pkg.mod:main"}})
    assert builders.with_defaults(child, settings).spec.ttlSecondsAfterFinished is None


def test_children_inherit_the_pod_template():
    body = builders.child_execution(execution(podTemplate=TEMPLATE), "job-child-1", "pkg.mod:child", {})
    assert body["spec"]["podTemplate"]["envFrom"] == TEMPLATE["envFrom"]


def test_operator_flags_set_runner_defaults():
    args = parse_args(["--runner-resources", '{"requests": {"cpu": "1"}}', "--default-ttl-seconds-after-finished",
                       "3600"])
    assert args.runner_resources == {"requests": {"cpu": "1"}}
    assert args.default_ttl_seconds_after_finished == 3600
    assert parse_args([]).default_ttl_seconds_after_finished is None
    for bad in (["--runner-resources", "{"], ["--runner-resources", '{"cpu": 1}'],
                ["--default-ttl-seconds-after-finished", "-1"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_chart_pod_template_defaults_sit_under_the_executions_own():
    from flux_api.types import PodTemplate

    defaults = PodTemplate.model_validate({
        "metadata": {"labels": {"tier": "batch", "team": "default"}},
        "env": [{"name": "REGION", "value": "eu"}, {"name": "MODE", "value": "slow"}],
        "nodeSelector": {"pool": "batch"}, "imagePullSecrets": [{"name": "registry"}],
        "tolerations": [{"key": "batch", "operator": "Exists"}],
        "serviceAccountAnnotations": {"cloud/role": "default"}})
    settings = builders.RunnerSettings(pod_template=defaults)
    ex = execution(podTemplate={"metadata": {"labels": {"team": "data"}}, "env": [{"name": "MODE", "value": "fast"}],
                                "tolerations": [{"key": "gpu", "operator": "Exists"}]})
    pod = builders.runner_pod(ex, settings)
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert pod["metadata"]["labels"]["tier"] == "batch" and pod["metadata"]["labels"]["team"] == "data"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["REGION"] == "eu" and env["MODE"] == "fast"
    assert spec["nodeSelector"] == {"pool": "batch"} and spec["imagePullSecrets"] == [{"name": "registry"}]
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists"}]  # a list the execution sets replaces
    assert builders.service_account(ex, settings)["metadata"]["annotations"] == {"cloud/role": "default"}
    assert builders.runner_pod(execution(), settings)["spec"]["nodeSelector"] == {"pool": "batch"}


def test_an_empty_value_in_the_executions_template_takes_nothing_from_the_platforms():
    """`affinity: {}` passes every check of a value (there is none), so it must not mean "no affinity": the
    platform's placement of runners (a sandboxed pool) would be a tenant's to drop (audit round 3)."""
    from flux_api.types import PodTemplate

    pinned = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["sandboxed-runners"]}]}]}}}
    settings = builders.RunnerSettings(pod_template=PodTemplate.model_validate(
        {"affinity": pinned, "tolerations": [{"key": "sandbox", "operator": "Exists"}]}))
    for emptied in ({"affinity": {}}, {"affinity": {}, "tolerations": []}):
        spec = builders.runner_pod(execution(podTemplate=emptied), settings)["spec"]
        assert spec["affinity"] == pinned and spec["tolerations"] == [{"key": "sandbox", "operator": "Exists"}]
    own = {"podAffinity": {}}
    assert builders.runner_pod(execution(podTemplate={"affinity": own}), settings)["spec"]["affinity"] == own


def test_a_pod_template_flag_with_owned_fields_is_refused():
    args = parse_args(["--runner-pod-template", '{"nodeSelector": {"pool": "batch"}}'])
    assert args.runner_pod_template.nodeSelector == {"pool": "batch"}
    for bad in ('{"env": [{"name": "FLUX_POD_NAME", "value": "x"}]}',
                '{"metadata": {"labels": {"workflows.flux.dev/execution": "x"}}}',
                '{"volumeMounts": [{"name": "t", "mountPath": "/tmp"}]}', '{"env": [{}]}', "not json",
                '{"env": [{"name": "PYTHONNOUSERSITE", "value": ""}]}',
                '{"volumeMounts": [{"name": "t", "mountPath": "/data/../usr"}]}',
                '{"volumeMounts": [{"name": "t", "mountPath": "data"}]}'):
        with pytest.raises(SystemExit):
            parse_args(["--runner-pod-template", bad])


def test_the_runner_logs_in_the_operators_format_and_knows_its_executions_uid():
    import dataclasses
    ex = execution()
    ex.metadata["uid"] = "uid-1"
    pod = builders.runner_pod(ex, dataclasses.replace(SETTINGS, log_format="json"))
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["FLUX_LOG_FORMAT"] == "json" and env["FLUX_EXECUTION_UID"] == "uid-1"
    assert parse_args(["--log-format", "json"]).log_format == "json"


def test_what_the_builders_make_fits_what_the_operators_identity_may_create():
    """flux-operator-makes-only-runners, restated for the builders: names, one owner, the Role's reach, the
    bounds its lists are checked within. The cluster suites prove the rest (every runner they start passes it)."""
    from flux_api import policy_operator_pod as policy_pod
    from flux_api import policy_operator
    from flux_api.pod_template import PodTemplate

    most = PodTemplate.model_fields["volumes"].metadata[-1].max_length
    template = {"volumes": [{"name": f"v{i}", "emptyDir": {}} for i in range(most)]}
    ex = execution(podTemplate=template)
    pod = builders.runner_pod(ex, SETTINGS)
    assert len(pod["spec"]["volumes"]) <= policy_pod.MOST_VOLUMES
    assert pod["metadata"]["name"].removesuffix(policy_operator.RUNNER_SUFFIX) == "job"
    assert len(pod["spec"]["containers"]) == 1 and "ALL" in pod["spec"]["containers"][0]["securityContext"][
        "capabilities"]["drop"]
    assert pod["spec"]["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["metadata"]["labels"][EXECUTION_LABEL] == "job"
    binding = builders.role_binding(ex)
    assert binding["roleRef"]["name"] == binding["metadata"]["name"] == "flux-runner-job"
    assert [s["name"] for s in binding["subjects"]] == ["flux-runner-job"]
    made = [pod, builders.service_account(ex), builders.role(ex), binding]
    assert all([r["name"] for r in body["metadata"]["ownerReferences"] if r["controller"]] == ["job"] for body in made)
