"""Code of one's own without `create pods`: a tenant who may create Executions and ConfigMaps, not pods, puts a
module in a ConfigMap and tries to have a runner pod load it instead of a workflow of the platform's image."""

from __future__ import annotations

import pytest
import yaml
from flux_api import GROUP, VERSION
from fluxtest.policies import eventually_admitted
from fluxtest.tenancy import grant

EVIL = "print('EVIL MODULE RAN', flush=True)\nasync def main(ctx, input):\n    return 'owned'\n"
CODE = {"volumes": [{"name": "code", "configMap": {"name": "mycode"}}]}
ATTACKS = {
    "PYTHONPATH": {**CODE, "env": [{"name": "PYTHONPATH", "value": "/code"}],
                   "volumeMounts": [{"name": "code", "mountPath": "/code"}]},
    "envFrom": {**CODE, "envFrom": [{"configMapRef": {"name": "mycode-env"}}],
                "volumeMounts": [{"name": "code", "mountPath": "/code"}]},
    "over-packages": {**CODE, "volumeMounts": [{"name": "code",
                                                 "mountPath": "/opt/flux/lib/python3.11/site-packages/evil"}]},
    "preload": {**CODE, "env": [{"name": "LD_PRELOAD", "value": "/code/evil.so"}],
                "volumeMounts": [{"name": "code", "mountPath": "/code"}]},
}
WHY = {
    "PYTHONPATH": "spec.podTemplate.env[0]: you may not create pods in {ns} (PYTHONPATH decides which code runs)",
    "envFrom": "spec.podTemplate.envFrom[0]: you may not create pods in {ns} (its keys could set PATH",
    "over-packages": "spec.podTemplate.volumeMounts[0]: you may not create pods in {ns} (a mount at /opt/flux/",
    "preload": "spec.podTemplate.env[0]: you may not create pods in {ns} (LD_PRELOAD decides which code runs)",
}
# The same module, ConfigMap and keys as data: a mount of its own, a prefix of its own.
HARMLESS = {**CODE, "env": [{"name": "APP_MODE", "value": "fast"}],
            "envFrom": [{"prefix": "APP_", "configMapRef": {"name": "mycode-env"}}],
            "volumeMounts": [{"name": "code", "mountPath": "/etc/app"}]}


def _execution(name: str, template: dict) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution", "metadata": {"name": name},
            "spec": {"workflow": "evil:main", "podTemplate": template}}


@pytest.mark.threat("own-code", "a tenant who may create Executions and ConfigMaps but not pods puts a module in a "
                    "ConfigMap and points the runner at it: PYTHONPATH, an envFrom of its keys, a mount over the "
                    "image's packages, LD_PRELOAD",
                    "each refused at kubectl apply, naming create pods and the field; no pod; the same ConfigMap "
                    "as data (a mount of its own, a prefix of its own) is admitted")
@pytest.mark.timeout(180)
def test_a_tenant_cannot_run_code_of_its_own_without_create_pods(api, tenant, fx, operators, result):
    ns = tenant.namespace
    grant(api, ns, tenant.user, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get"]}])
    for name, data in (("mycode", {"evil.py": EVIL}), ("mycode-env", {"PYTHONPATH": "/code"})):
        made = tenant.kubectl("create", "configmap", name, *[f"--from-literal={k}={v}" for k, v in data.items()])
        assert made.returncode == 0, made.stderr
    operators.start()
    answers = []
    for key, template in ATTACKS.items():
        name = f"own-{key.lower()}"
        applied = tenant.kubectl("apply", "-f", "-", input=yaml.safe_dump(_execution(name, template)))
        answers.append(f"{key}: exit {applied.returncode}")
        assert applied.returncode != 0, f"{key}: admitted, its runner would load the tenant's module"
        assert WHY[key].format(ns=ns) in applied.stderr, applied.stderr
        assert not fx.exists(name) and fx.pod(name) is None
    eventually_admitted(tenant.api, _execution("as-data", HARMLESS), ns)
    result.figure("; ".join(answers) + "; the same ConfigMap as data: admitted")
