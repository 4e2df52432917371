"""A runner pod the API server refuses ends its execution clearly; one refused for now (a full quota) waits
visibly and starts once there is room (issue 16 item 5)."""

from __future__ import annotations

import time

import pytest
from fluxtest import TERMINAL, longrun, manifest, wait_for
from fluxtest.faults import log_tail, metric
from fluxtest.tenancy import grant

REFUSED_TEMPLATES = {
    "toleration": ({"tolerations": [{"key": "x", "operator": "Bogus"}]}, "Bogus"),
    "env-name": ({"env": [{"name": "A=B", "value": "x"}]}, "A=B"),
}


@pytest.mark.threat("refused-pod", "podTemplate the API server refuses on the pod (a toleration with operator "
                    "Bogus; an env name with '=')", "Failed within seconds with the API server's message and a "
                    "Warning Event; no retry loop")
@pytest.mark.timeout(120)
def test_a_refused_runner_pod_fails_the_execution_clearly(tenant, api, operators, fx, result):
    # Tolerations need create pods (flux-tenant-pod-settings): this tenant may create pods, and asks for one
    # that the API server's pod validation refuses.
    grant(api, tenant.namespace, tenant.user, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}])
    op = operators.start()
    figures = []
    for name, (template, quoted) in REFUSED_TEMPLATES.items():
        created = time.monotonic()
        tenant.fx.create(manifest(name, "flux_examples.quick:main", podTemplate=template))
        try:
            status = fx.wait_phase(name, *TERMINAL, timeout=20)
        except AssertionError:
            raise AssertionError(f"{name}: {fx.status(name)} after 20 s: {log_tail(op, 1500)}") from None
        took = time.monotonic() - created
        events = fx.events(name)
        figures.append(f"{name}: {status['phase']} in {took:.1f}s ({status.get('message', '')[:100]!r})")
        assert status["phase"] == "Failed", status
        assert quoted in status["message"], status["message"]
        assert "RunnerRefused" in events, events
        assert took < 15, f"{name} took {took:.1f}s"
    calls = metric(op, "flux_api_requests")
    time.sleep(6)
    later = metric(op, "flux_api_requests")
    result.figure("; ".join(figures) + f"; then {later - calls:.0f} API requests in 6 s (the Lease's renewals)")
    assert later - calls <= 4, f"{later - calls} requests in 6 s after both ended: still retrying"


@pytest.mark.threat("quota-wait", "a ResourceQuota with room for one pod; a second execution's runner is refused "
                    "(exceeded quota)", "Pending with a visible message, retried with backoff, not re-sending the "
                    "runner's ServiceAccount/Role/RoleBinding; starts once there is room")
@pytest.mark.timeout(180)
def test_a_full_quota_waits_visibly_and_starts_when_there_is_room(tenant, operators, fx, core, result):
    core.create_namespaced_resource_quota(tenant.namespace, {"metadata": {"name": "pods"},
                                                             "spec": {"hard": {"pods": "1"}}})
    op = operators.start()
    tenant.fx.create(longrun("first", steps=600, seconds=0.5))
    fx.wait_phase("first", "Running", timeout=60)
    quiet = metric(op, "flux_api_requests")
    time.sleep(10)
    baseline = (metric(op, "flux_api_requests") - quiet) * 2  # what 20 s cost with nothing waiting (the Lease)
    tenant.fx.create(manifest("second", "flux_examples.quick:main"))
    waiting = wait_for(lambda: (s := fx.status("second")).get("message") and s, timeout=20,
                       what="a message on the waiting execution")
    creates_before = metric(op, "flux_api_requests")
    time.sleep(20)
    spent = metric(op, "flux_api_requests") - creates_before - baseline
    assert waiting.get("phase") == "Pending", waiting
    assert "quota" in waiting["message"], waiting["message"]
    fx.cancel("first", "make room")
    fx.wait_phase("first", "Cancelled", timeout=60)
    started = time.monotonic()
    done = fx.wait_phase("second", *TERMINAL, timeout=90)
    result.figure(f"second waited with {waiting['message'][:120]!r}; {spent:.0f} API requests in 20 s of waiting "
                  f"(beyond the {baseline:.0f} of a quiet 20 s); {done['phase']} {time.monotonic() - started:.0f}s "
                  "after room was made")
    assert done["phase"] == "Succeeded", done
    assert spent <= 8, "bounded backoff: a few tries in 20 s, one create each (no ServiceAccount/Role/RoleBinding)"
