"""Runner NetworkPolicies as the API server stores them.

Said plainly: the local cluster has no network plugin, so no NetworkPolicy is enforced here and nothing
in this file shows a connection being refused. What is tested is what can be: the operator (with the
chart's --runner-egress, as fluxtest.identity runs it) gives each runner pod a NetworkPolicy the API
server accepts, which selects that pod and no other, refuses all ingress, allows exactly the chart's egress
(the API server and DNS), and goes with its Execution. The chart's own policy for the operator is checked
as rendered in test_chart.py.
"""

from __future__ import annotations

import json

import pytest
from fluxtest import Executions, gone, longrun, wait_for
from kubernetes import client

pytestmark = pytest.mark.cluster


def selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def test_each_runner_gets_a_policy_that_fences_exactly_its_pod(api, custom, core, namespace, operator,
                                                                operator_env):
    fx = Executions(custom, core, namespace)
    for name in ("fenced", "neighbour"):
        fx.create(longrun(name, steps=600, seconds=0.5))
    for name in ("fenced", "neighbour"):
        fx.wait_step(name)
    net = client.NetworkingV1Api(api)
    policy = api.sanitize_for_serialization(net.read_namespaced_network_policy("flux-runner-fenced", namespace))
    owner = policy["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Execution", "fenced", fx.get("fenced")["metadata"]["uid"])
    spec = policy["spec"]
    selected = core.list_namespaced_pod(namespace, label_selector=selector(spec["podSelector"]["matchLabels"])).items
    assert [p.metadata.name for p in selected] == ["fenced-runner"], "its runner pod, not the neighbour's"
    assert spec["policyTypes"] == ["Ingress", "Egress"] and not spec.get("ingress"), "nothing may connect to it"
    assert spec["egress"] == json.loads(operator_env["FLUX_RUNNER_EGRESS"]), "the chart's egress, as rendered"
    ports = sorted((p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 443), ("TCP", 6443), ("UDP", 53)], "the API server and DNS only"

    fx.cancel("fenced", "done")
    fx.wait_phase("fenced", "Cancelled", timeout=60)
    custom.delete_namespaced_custom_object("workflows.flux.dev", "v1alpha1", namespace, "executions", "fenced")
    wait_for(lambda: gone(net.read_namespaced_network_policy, "flux-runner-fenced", namespace), timeout=60,
             what="the garbage collector to take the policy with its execution")
    assert net.read_namespaced_network_policy("flux-runner-neighbour", namespace)
