"""A runner pod a tenant holds with a finalizer: the cancel still ends once its containers have, and the operator
does not delete it over and over for ever."""

from __future__ import annotations

import pytest
from fluxtest import manifest
from fluxtest.tenancy import grant

HOLD = "tenant.example/hold"


@pytest.mark.threat("held-pod", f"a tenant who may patch pods (as `edit` grants) puts a finalizer ({HOLD}) on its "
                    "runner pod, whose workflow ignores SIGTERM, and cancels it",
                    "the execution ends Cancelled once the kubelet has killed the runner, though the pod object "
                    "stays; not Cancelling for ever, holding its slot and the stuck-cancel alert")
@pytest.mark.timeout(180)
def test_a_finalizer_on_a_runner_pod_does_not_hold_the_cancel(api, tenant, operators, fx, core, result):
    ns = tenant.namespace
    grant(api, ns, tenant.user, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]}])
    operators.start()
    grace = 3
    tenant.fx.create(manifest("held", "flux_examples.stubborn:main", {"onCancel": "ignore"},
                              gracePeriodSeconds=grace))
    fx.wait_step("held")
    pod = fx.pod("held").metadata.name
    tenant.core.patch_namespaced_pod(pod, ns, {"metadata": {"finalizers": [HOLD]}})
    try:
        fx.cancel("held")
        status = fx.wait_phase("held", "Cancelled", timeout=grace + 60)
        still = core.read_namespaced_pod(pod, ns)
        result.figure(f"Cancelled ({status['cancellation']['outcome']}); the pod object still there "
                      f"({still.status.phase}, finalizers {still.metadata.finalizers})")
        assert still.metadata.deletion_timestamp is not None and HOLD in (still.metadata.finalizers or [])
        assert still.status.phase in ("Succeeded", "Failed")
    finally:
        core.patch_namespaced_pod(pod, ns, {"metadata": {"finalizers": None}})
