"""The platform's limits (the TenancyPolicy, the chart's `tenancy` values): what they allow, any Execution may
use without further rights; what they leave out, no one gets, whatever their rights. And runner pods meet the
Pod Security Standard `restricted`.

The TenancyPolicy is one object for the cluster: each test sets it for its own length (fluxtest.policies
.platform_limits) and the API server reads it through an informer, so answers are awaited, not taken once.
"""

from __future__ import annotations

import json

import pytest
from flux_api import GROUP, VERSION
from fluxtest import Executions, manifest
from fluxtest.policies import eventually_admitted, eventually_refused, platform_limits
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster


def execution(template: dict | None = None, **spec) -> dict:
    body = manifest("x", "flux_examples.quick:main", **spec)
    if template is not None:
        body["spec"]["podTemplate"] = template
    return body


# (limits, what the tenant may then use, what no one may use, the refusal's words)
LIMITS = {
    "images": ({"allowedImages": ["registry.example.com/workflows/"]},
               {"image": "registry.example.com/workflows/etl:1"}, {"image": "evil.example.com/miner:1"},
               "spec.image: evil.example.com/miner:1 is not an image the platform allows (images starting with: "
               "registry.example.com/workflows/)"),
    # A prefix ends where a registry host or a path segment does: not a longer host, not a longer name.
    "image-boundary": ({"allowedImages": ["registry.example.com"]},
                       {"image": "registry.example.com/workflows/etl:1"}, {"image": "registry.example.com.evil.io/m:1"},
                       "spec.image: registry.example.com.evil.io/m:1 is not an image the platform allows (images "
                       "starting with: registry.example.com)"),
    "priority": ({"allowedPriorityClasses": ["batch-low"]},
                 {"podTemplate": {"priorityClassName": "batch-low"}},
                 {"podTemplate": {"priorityClassName": "system-cluster-critical"}},
                 "spec.podTemplate.priorityClassName: system-cluster-critical is not a priority class the platform "
                 "allows (batch-low)"),
    "nodes": ({"allowedNodeSelectors": {"pool": ["batch"]},
               "allowedTolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]},
              {"podTemplate": {"nodeSelector": {"pool": "batch"},
                               "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]}},
              {"podTemplate": {"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}}},
              "spec.podTemplate.nodeSelector.node-role.kubernetes.io/control-plane: node-role.kubernetes.io/"
              "control-plane= is not a node selector the platform allows"),
    "tolerations": ({"allowedTolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]},
                    {"podTemplate": {"tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]}},
                    {"podTemplate": {"tolerations": [{"operator": "Exists"}]}},
                    "spec.podTemplate.tolerations[0]: not a toleration the platform allows"),
    "labels": ({"allowedPodLabels": ["team"]}, {"podTemplate": {"metadata": {"labels": {"team": "data"}}}},
               {"podTemplate": {"metadata": {"labels": {"app": "payments-db"}}}},
               "spec.podTemplate.metadata.labels.app: not a pod label the platform allows (team)"),
    "cloud-role": ({"serviceAccountAnnotations": {"eks.amazonaws.com/role-arn":
                                                  "arn:aws:iam::123456789012:role/flux-{namespace}"}},
                   {"podTemplate": {"serviceAccountAnnotations": {
                       "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/flux-{ns}"}}},
                   {"podTemplate": {"serviceAccountAnnotations": {
                       "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/admin"}}},
                   "spec.podTemplate.serviceAccountAnnotations.eks.amazonaws.com/role-arn: the platform allows only "
                   "arn:aws:iam::123456789012:role/flux-{ns} here"),
    "volumes": ({"allowedVolumeTypes": ["persistentVolumeClaim"]},
                {"podTemplate": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}},
                {"podTemplate": {"volumes": [{"name": "d", "csi": {"driver": "secrets-store.csi.k8s.io"}}]}},
                "spec.podTemplate.volumes[0]: csi volumes are not allowed: the platform allows "
                "persistentVolumeClaim besides emptyDir, downwardAPI, configMap and secret"),
    "resources": ({"maxResources": {"memory": "1Gi", "cpu": "2"}},
                  {"podTemplate": {"resources": {"requests": {"memory": "512Mi"},
                                                 "limits": {"memory": "1Gi", "cpu": "1500m"}}}},
                  {"podTemplate": {"resources": {"limits": {"memory": "64Gi", "cpu": "2"}}}},
                  "spec.podTemplate.resources.limits.memory: 64Gi is more than 1Gi, the platform maximum"),
    # The kubelet sets no cgroup limit for 0, so 0 (however written) would be more than any maximum.
    "zero-limit": ({"maxResources": {"memory": "1Gi", "cpu": "2"}},
                   {"podTemplate": {"resources": {"requests": {"cpu": "0"}, "limits": {"memory": "1Gi", "cpu": "1"}}}},
                   {"podTemplate": {"resources": {"limits": {"memory": "0", "cpu": "1"}}}},
                   "spec.podTemplate.resources.limits.memory: 0 is no limit at all; at most 1Gi, the platform "
                   "maximum"),
}


def _filled(spec: dict, ns: str) -> dict:
    return json.loads(json.dumps(spec).replace("{ns}", ns))


@pytest.mark.parametrize("key", list(LIMITS))
def test_the_platforms_list_decides_for_everyone(kubectl, tenant, privileged, namespace, key):
    limits, allowed, refused, words = LIMITS[key]
    with platform_limits(kubectl, **limits):
        eventually_admitted(tenant.api, execution(**_filled(allowed, namespace)), namespace)
        for who in (tenant, privileged):
            message = eventually_refused(who.api, execution(**_filled(refused, namespace)), namespace)
            assert words.replace("{ns}", namespace) in message, message


def test_resources_need_a_limit_under_a_maximum(kubectl, privileged, namespace):
    with platform_limits(kubectl, maxResources={"memory": "1Gi"}):
        message = eventually_refused(privileged.api, execution({"resources": {"requests": {"cpu": "10m"}}}),
                                     namespace)
        assert "spec.podTemplate.resources.limits.memory: must be set, at most 1Gi (the platform maximum)" in message


def test_volume_types_outside_restricted_are_refused_even_for_the_privileged(privileged, namespace):
    message = eventually_refused(privileged.api, execution({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
                                 namespace)
    assert ("spec.podTemplate.volumes[0]: hostPath volumes are not allowed: runner pods meet the Pod Security "
            "Standard restricted") in message
    confined = {"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/runner": "unconfined"}}}
    message = eventually_refused(privileged.api, execution(confined), namespace)
    assert "not allowed: runner pods meet the Pod Security Standard restricted" in message


def test_the_operator_still_makes_its_runner_under_the_platforms_lists(kubectl, core, custom, operator, privileged,
                                                                       namespace):
    """flux-operator-makes-only-runners reads the lists the tenant policies read. Under a list of ServiceAccount
    annotations and one of volume types without `projected`, the operator's own runner ServiceAccount (its
    create-token annotation besides the platform's) and pod (the pod's own token volume, which the API server
    adds) still pass it."""
    value = "runner@{namespace}.iam.gserviceaccount.com"
    with platform_limits(kubectl, serviceAccountAnnotations={"iam.gke.io/gcp-service-account": value},
                         allowedVolumeTypes=["persistentVolumeClaim"]):
        eventually_refused(privileged.api, execution({"volumes": [{"name": "d", "csi": {"driver": "x"}}]}),
                           namespace)  # the lists are in effect
        template = {"serviceAccountAnnotations": {"iam.gke.io/gcp-service-account": value.format(namespace=namespace)}}
        privileged.fx.create(manifest("listed", "flux_examples.quick:main", {"name": "x"}, podTemplate=template))
        fx = Executions(custom, core, namespace)
        status = fx.wait_phase("listed", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded", status.get("message")
    token = [v for v in fx.pod("listed").spec.volumes or [] if v.projected and any(
        s.service_account_token for s in v.projected.sources or [])]
    assert token, "the API server added the pod's own token volume: the case the policy must let through"
    account = core.read_namespaced_service_account("flux-runner-listed", namespace)
    assert set(account.metadata.annotations) >= {"iam.gke.io/gcp-service-account", "workflows.flux.dev/create-token"}


# The local real node puts every pod on the host network (an admission policy of the local cluster), which
# `restricted` refuses: this runs where pods keep the spec they were given.
@pytest.mark.process_node_only
def test_runner_pods_meet_the_restricted_pod_security_standard(core, custom, operator, privileged, namespace):
    """PodSecurity admission enforces `restricted` in this namespace: the runner pod, with a template using
    what a tenant may use, is admitted by it and runs to the end."""
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted",
                                                             "pod-security.kubernetes.io/enforce-version": "latest"}}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "creds"}, "string_data": {"token": "t"}})
    template = {
        "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}],
        "envFrom": [{"secretRef": {"name": "creds"}}],
        "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "settings"}},
                    {"name": "both", "projected": {"sources": [{"secret": {"name": "creds"}},
                                                               {"downwardAPI": {"items": [{"path": "name", "fieldRef": {
                                                                   "fieldPath": "metadata.name"}}]}}]}}],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}, {"name": "conf", "mountPath": "/conf"},
                         {"name": "both", "mountPath": "/both"}],
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    }
    body = manifest("restricted", "flux_examples.environment:main", {"names": ["MODE"], "paths": ["/scratch"]},
                    podTemplate=template)
    privileged.fx.create(body)
    fx = Executions(custom, core, namespace)
    status = fx.wait_phase("restricted", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded", status
    assert status["checkpoint"]["result"] == {"env": {"MODE": "fast"}, "paths": {"/scratch": True}}
    # The same namespace refuses a pod that is not restricted: the label is enforced, not decoration.
    loose = {"metadata": {"name": "loose"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, loose, dry_run="All")
    assert 'violates PodSecurity "restricted:latest"' in json.loads(refused.value.body)["message"]


def test_a_schedule_template_meets_the_same_limits(kubectl, tenant, namespace):
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Schedule", "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 2 * * *", "executionTemplate": {"spec": {
                "workflow": "flux_examples.quick:main", "image": "evil.example.com/miner:1"}}}}
    with platform_limits(kubectl, allowedImages=["registry.example.com/workflows/"]):
        message = eventually_refused(tenant.api, body, namespace, "schedules")
        assert "spec.executionTemplate.spec.image: evil.example.com/miner:1 is not an image the platform allows" \
            in message, message
