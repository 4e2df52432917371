"""The backstop: the platform's limits checked again when the operator builds a pod (guard.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from flux_api import Execution
from flux_api.tenancy import TenancyLimits
from flux_operator import guard
from flux_operator.execution.actions import EmitEvent, PatchStatus
from flux_operator.builders import RunnerSettings
from flux_operator.metrics import Metrics
from flux_operator.reconcile import Reconciler
from flux_operator.world import World
from flux_operator.testing import FakeKubeApi

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=timezone.utc)


def ex(template: dict | None = None, image: str | None = None) -> Execution:
    spec = {"workflow": "pkg.mod:main", **({"podTemplate": template} if template is not None else {}),
            **({"image": image} if image else {})}
    return Execution.model_validate({"metadata": {"name": "job", "namespace": "team-a", "uid": "u", "generation": 1},
                                     "spec": spec})


LIMITS = TenancyLimits(
    allowedImages=["registry.example.com/wf/"], allowedPriorityClasses=["batch-low"],
    allowedNodeSelectors={"pool": ["batch"]}, allowedTolerations=[{"key": "batch", "operator": "Exists"}],
    allowedPodLabels=["team"], allowedPodAnnotations=["example.com/owner"],
    serviceAccountAnnotations={"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/flux-{namespace}"},
    maxResources={"memory": "1Gi", "cpu": "2"}, allowedVolumeTypes=["persistentVolumeClaim"])


def test_within_every_limit_nothing_is_refused():
    template = {"priorityClassName": "batch-low", "nodeSelector": {"pool": "batch"},
                "tolerations": [{"key": "batch", "operator": "Exists"}],
                "metadata": {"labels": {"team": "data"}, "annotations": {"example.com/owner": "data"}},
                "serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/flux-team-a"},
                "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "1024Mi", "cpu": 2}},
                "volumes": [{"name": "e", "emptyDir": {}}, {"name": "c", "configMap": {"name": "x"}},
                            {"name": "p", "projected": {"sources": [{"secret": {"name": "s"}}]}},
                            {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}
    assert guard.limit_problems(ex(template, "registry.example.com/wf/etl:1"), LIMITS) == []


@pytest.mark.parametrize("template,image,problem", [
    (None, "evil.example.com/x:1", "spec.image: evil.example.com/x:1 is not an image the platform allows"),
    ({"priorityClassName": "system-cluster-critical"}, None, "spec.podTemplate.priorityClassName: system-cluster"),
    ({"nodeSelector": {"pool": "gpu"}}, None, "spec.podTemplate.nodeSelector.pool: pool=gpu is not"),
    ({"tolerations": [{"operator": "Exists"}]}, None, "spec.podTemplate.tolerations[0]: not a toleration"),
    ({"metadata": {"labels": {"app": "db"}}}, None, "spec.podTemplate.metadata.labels.app: not a pod label"),
    ({"metadata": {"annotations": {"x": "y"}}}, None, "spec.podTemplate.metadata.annotations.x: not a pod annotation"),
    ({"serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/admin"}}, None,
     "spec.podTemplate.serviceAccountAnnotations.eks.amazonaws.com/role-arn: not a value"),
    ({"resources": {"limits": {"memory": "2Gi", "cpu": "1"}}}, None,
     "spec.podTemplate.resources.limits.memory: 2Gi is more than 1Gi"),
    ({"resources": {"requests": {"cpu": "10m"}}}, None, "spec.podTemplate.resources.limits.memory: must be set"),
    # Quantities the API server admits (its parser wraps or skips such exponents) and Decimal overflows on.
    ({"resources": {"limits": {"memory": "1e4294967296", "cpu": "1"}}}, None,
     "spec.podTemplate.resources.limits.memory: 1e4294967296 is more than 1Gi"),
    ({"resources": {"limits": {"memory": "7e1000000", "cpu": "1"}}}, None,
     "spec.podTemplate.resources.limits.memory: 7e1000000 is more than 1Gi"),
    ({"resources": {"limits": {"memory": "0e1000000", "cpu": "1"}}}, None,
     "spec.podTemplate.resources.limits.memory: 0e1000000 is no limit at all; at most 1Gi"),
    ({"resources": {"limits": {"memory": "1Gi", "cpu": "0"}}}, None,
     "spec.podTemplate.resources.limits.cpu: 0 is no limit at all; at most 2"),
    ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, None, "spec.podTemplate.volumes[0]: hostPath volumes"),
    ({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}, None,
     "spec.podTemplate.volumes[0]: projected volumes"),
])
def test_each_limit_is_refused_with_its_path(template, image, problem):
    problems = guard.limit_problems(ex(template, image), LIMITS)
    assert any(p.startswith(problem) for p in problems), problems


def test_unset_lists_leave_the_field_to_admission_but_restricted_holds():
    unset = TenancyLimits()
    free_for_creators = {"priorityClassName": "high", "nodeSelector": {"a": "b"}, "metadata": {"labels": {"a": "b"}},
                         "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]}
    assert guard.limit_problems(ex(free_for_creators, "any/image"), unset) == []
    confined = {"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/runner": "unconfined"}},
                "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}
    assert len(guard.limit_problems(ex(confined), unset)) == 2
    assert guard.limit_problems(ex(confined), None) == [], "no --tenancy-policy: no backstop"


def test_a_refusal_fails_the_execution_with_a_warning_and_no_pod():
    actions = guard.refusal(ex(), ["spec.image: x is not an image the platform allows"], NOW)
    event, status = actions
    assert isinstance(event, EmitEvent) and (event.reason, event.type) == ("LimitExceeded", "Warning")
    assert isinstance(status, PatchStatus)
    assert status.patch["phase"] == "Failed" and status.patch["message"].startswith("LimitExceeded: spec.image")
    finished = next(c for c in status.patch["conditions"] if c["type"] == "Finished")
    assert finished["reason"] == "LimitExceeded"


def test_the_reconciler_builds_no_pod_past_the_limits():
    api, world = FakeKubeApi(), World()
    body = {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
            "metadata": {"name": "job", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {"workflow": "pkg.mod:main", "podTemplate": {"resources": {"limits": {"memory": "64Gi"}}}}}
    world.execution_seen(api.put(body))
    reconciler = Reconciler(world, api, RunnerSettings(limits=TenancyLimits(maxResources={"memory": "1Gi"})),
                            Metrics(), clock=lambda: NOW)
    reconciler.reconcile(("ns", "job"))
    assert not [c for c in api.calls if c[0] == "create"], "no ServiceAccount, Role, RoleBinding or pod"
    status = api.objects[("ns", "job")]["status"]
    assert status["phase"] == "Failed"
    assert "spec.podTemplate.resources.limits.memory: 64Gi is more than 1Gi, the platform maximum" in status["message"]
    assert [e["reason"] for e in api.events.values()] == ["LimitExceeded"]
