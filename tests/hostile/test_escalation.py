"""Escalation through an Execution: a tenant with Execution rights only tries to get what they lack through the
operator (issue 17). The API server refuses it at the door; what an old object slips past, the operator refuses."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from flux_api import GROUP, VERSION
from fluxtest import TERMINAL, manifest, schedule
from fluxtest.policies import platform_limits
from kubernetes.client.rest import ApiException

SECRET = "hunter2-but-longer"


@pytest.mark.threat("secret-read", "a tenant runs flux_examples.environment with env PASSWORD from the Secret "
                    "db-admin they may not read (the issue's reproduction)",
                    "refused at kubectl apply, naming the permission; no pod, no value anywhere")
@pytest.mark.timeout(120)
def test_a_tenant_cannot_read_a_secret_through_an_execution(tenant, fx, core, operators, result):
    core.create_namespaced_secret(tenant.namespace, {"metadata": {"name": "db-admin"},
                                                     "data": {"password": base64.b64encode(SECRET.encode()).decode()}})
    operators.start()
    steal = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution", "metadata": {"name": "steal"},
             "spec": {"workflow": "flux_examples.environment:main", "input": {"names": ["PASSWORD"]},
                      "podTemplate": {"env": [{"name": "PASSWORD", "valueFrom": {
                          "secretKeyRef": {"name": "db-admin", "key": "password"}}}]}}}
    applied = tenant.kubectl("apply", "-f", "-", input=yaml.safe_dump(steal))
    message = applied.stderr.strip().splitlines()[-1] if applied.stderr else ""
    result.figure(f"kubectl apply exit {applied.returncode}: {message[-140:]!r}")
    assert applied.returncode != 0, "admitted: the operator would run it and write the value to the checkpoint"
    assert f"spec.podTemplate.env[0]: you may not get secret db-admin in {tenant.namespace}" in applied.stderr
    assert not fx.exists("steal") and fx.pod("steal") is None


@pytest.mark.threat("limits-backstop", "an Execution asking for 64Gi, admitted before the platform set a 1Gi "
                    "maximum, meets an operator started with that maximum",
                    "it ends Failed (LimitExceeded) with no pod; the bystander's execution runs")
@pytest.mark.timeout(180)
def test_an_execution_admitted_before_the_limits_gets_no_pod(tenant, fx, bystander, kubectl, operators, result):
    big = manifest("big", "flux_examples.quick:main",
                   podTemplate={"resources": {"limits": {"memory": "64Gi"}}})
    tenant.fx.create(big)  # no maximum yet: admitted
    with platform_limits(kubectl, maxResources={"memory": "1Gi"}):
        operators.start(None, True, "--tenancy-policy", '{"maxResources": {"memory": "1Gi"}}')
        bystander.create(manifest("ordinary", "flux_examples.quick:main"))
        status = fx.wait_phase("big", *TERMINAL, timeout=60)
        ordinary = bystander.wait_phase("ordinary", *TERMINAL, timeout=90)
    result.figure(f"big {status['phase']}: {status.get('message', '')[:110]!r}; bystander {ordinary['phase']}")
    assert status["phase"] == "Failed"
    assert status["message"].startswith("LimitExceeded: spec.podTemplate.resources.limits.memory: 64Gi is more than")
    assert fx.pod("big") is None and "LimitExceeded" in fx.events("big")
    assert ordinary["phase"] == "Succeeded"


# Quantities the CRD takes as strings and a parser can choke on: Decimal overflows on 10**1000000.
POISON_LIMITS = ["0e1000000", "7e1000000", "1e4294967296", "0e1000000", "7e1000000"]


@pytest.mark.threat("limits-poison", f"{len(POISON_LIMITS)} Executions (more than the operator's 4 workers) with "
                    "memory limits such as 0e1000000 and 1e4294967296, admitted before the platform set a 1Gi "
                    "maximum, meet an operator started with that maximum",
                    "each ends Failed (LimitExceeded) with no pod; no worker dies; the bystander's execution runs")
@pytest.mark.timeout(180)
def test_limits_that_choke_a_parser_stop_no_worker(tenant, fx, bystander, kubectl, operators, result):
    names = [f"poison-{i}" for i in range(len(POISON_LIMITS))]
    for name, memory in zip(names, POISON_LIMITS):
        tenant.fx.create(manifest(name, "flux_examples.quick:main",
                                  podTemplate={"resources": {"limits": {"memory": memory}}}))
    with platform_limits(kubectl, maxResources={"memory": "1Gi"}):
        operators.start(None, True, "--tenancy-policy", '{"maxResources": {"memory": "1Gi"}}')
        ends = {name: fx.wait_phase(name, *TERMINAL, timeout=60) for name in names}
        bystander.create(manifest("ordinary", "flux_examples.quick:main"))
        ordinary = bystander.wait_phase("ordinary", *TERMINAL, timeout=90)
    result.figure(f"{sum(s['phase'] == 'Failed' for s in ends.values())}/{len(names)} Failed (LimitExceeded), "
                  f"e.g. {ends[names[0]].get('message', '')[:90]!r}; bystander {ordinary['phase']}")
    for (name, status), memory in zip(ends.items(), POISON_LIMITS):
        assert status["phase"] == "Failed", (name, status)
        assert status["message"].startswith(f"LimitExceeded: spec.podTemplate.resources.limits.memory: {memory} is "), \
            status["message"]
        assert fx.pod(name) is None
    assert ordinary["phase"] == "Succeeded"


@pytest.mark.threat("limits-backtrack", "an Execution and a Schedule whose memory limit is 100,000 digits and an x "
                    "(a pattern that splits a digit run every way before failing took hours on a megabyte)",
                    "both refused by the API server at create, naming the 64-character bound; nothing is stored")
@pytest.mark.timeout(120)
def test_a_quantity_past_64_characters_is_refused_at_create(tenant, fx, result):
    memory = "1" * 100_000 + "x"
    template = {"resources": {"limits": {"memory": memory}}}
    refused = []
    with pytest.raises(ApiException) as on_execution:
        tenant.fx.create(manifest("slow", "flux_examples.quick:main", podTemplate=template))
    every_minute = schedule("slow", "flux_examples.quick:main")
    every_minute["spec"]["executionTemplate"]["spec"]["podTemplate"] = template
    with pytest.raises(ApiException) as on_schedule:
        tenant.schedules.create(every_minute)
    for caught in (on_execution, on_schedule):
        assert caught.value.status == 422, caught.value.body[:300]
        refused.append(json.loads(caught.value.body)["message"])
        assert "limits.memory: Too long: may not be more than 64" in refused[-1], refused[-1][-300:]
    result.figure(f"Execution: {refused[0][:150]!r}")
    assert not fx.exists("slow")
