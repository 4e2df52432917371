"""A runner's NetworkPolicy (--runner-egress): one per execution, owned by it, selecting only its runner pod,
refusing all ingress, and created with its RBAC before the pod."""

from __future__ import annotations

import pytest
from flux_api import Execution
from flux_operator import builders
from flux_operator.builders import RunnerSettings
from flux_operator.metrics import Metrics
from flux_operator.reconcile import Reconciler
from flux_operator.world import World
from flux_operator.testing import FakeKubeApi

pytestmark = pytest.mark.unit

EGRESS = ({"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"protocol": "TCP", "port": 6443}]},
          {"ports": [{"protocol": "UDP", "port": 53}]})


def execution() -> dict:
    return {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
            "metadata": {"name": "job", "namespace": "ns", "uid": "uid-job", "generation": 1,
                         "resourceVersion": "5"},
            "spec": {"workflow": "a:b"}}


def test_the_policy_fences_exactly_the_runner_pod() -> None:
    ex = Execution.model_validate(execution())
    settings = RunnerSettings(egress=EGRESS)
    policy = builders.network_policy(ex, settings)
    pod = builders.runner_pod(ex, settings)
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items(), "it selects the runner pod"
    sibling = builders.runner_pod(Execution.model_validate({**execution(), "metadata": {
        **execution()["metadata"], "name": "job-2", "uid": "uid-2"}}), settings)
    assert not selector.items() <= sibling["metadata"]["labels"].items(), "and no other execution's"
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and policy["spec"]["ingress"] == []
    assert policy["spec"]["egress"] == list(EGRESS)
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-job", "it goes with its execution"
    assert builders.network_policy(ex, RunnerSettings()) is None, "without --runner-egress: none"


@pytest.mark.parametrize("egress,kinds", [
    (EGRESS, ["ServiceAccount", "Role", "RoleBinding", "NetworkPolicy", "Pod"]),
    (None, ["ServiceAccount", "Role", "RoleBinding", "Pod"]),
])
def test_the_policy_is_created_before_the_pod(egress, kinds) -> None:
    api, world = FakeKubeApi(), World()
    world.execution_seen(api.put(execution()))
    Reconciler(world, api, RunnerSettings(egress=egress), Metrics()).reconcile(("ns", "job"))
    made = [c[1] for c in api.calls if c[0] == "create" and c[1] != "ExecutionProgress"]
    assert sorted(made[:2]) == sorted(kinds[:2]) and made[2:] == kinds[2:], "the account and Role go together"
