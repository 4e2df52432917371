"""The chart renders only objects the API server would accept as written, checked offline and strictly.

Schemas come from the local API server's own OpenAPI document (localcluster.openapi_schemas) plus the
Execution CRD, so kubeconform needs no network, knows every kind the chart renders (nothing skipped),
and rejects unknown fields.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fluxtest import CRD, REPO
from fluxtest.paths import SCHEDULE_CRD, TENANCY_CRD

pytestmark = pytest.mark.cluster

CHART = REPO / "charts" / "flux-operator"
KUBE_VERSION = "1.35.4"
SUMMARY = re.compile(r"Summary: (?P<found>\d+) resources? found .*? - Valid: (?P<valid>\d+), "
                     r"Invalid: (?P<invalid>\d+), Errors: (?P<errors>\d+), Skipped: (?P<skipped>\d+)")


def run(*argv: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, input=input, timeout=120)


@pytest.fixture(scope="module")
def schemas(cluster, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("schemas")
    result = run(sys.executable, "-m", "localcluster.openapi_schemas", "--kubeconfig", str(cluster.kubeconfig),
                 "--out", str(out), "--crd", str(CRD), "--crd", str(SCHEDULE_CRD), "--crd", str(TENANCY_CRD))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def helm(cluster):
    def helm_(*args: str) -> subprocess.CompletedProcess:
        return run(str(cluster.bin / "helm"), *args)
    return helm_


@pytest.fixture(scope="module")
def kubeconform(cluster, schemas):
    def validate(manifests: str) -> tuple[subprocess.CompletedProcess, dict[str, int]]:
        result = run(str(cluster.bin / "kubeconform"), "-strict", "-summary",
                     "-schema-location", f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json", "-",
                     input=manifests)
        match = SUMMARY.search(result.stdout)
        assert match, f"no kubeconform summary in: {result.stdout}{result.stderr}"
        return result, {k: int(v) for k, v in match.groupdict().items()}
    return validate


def render(helm, *values: str) -> str:
    result = helm("template", "t", str(CHART), "--include-crds", "--kube-version", KUBE_VERSION, *values)
    assert result.returncode == 0, result.stderr
    return result.stdout


def documents(manifests: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(manifests) if d]


def test_schemas_are_named_for_kubeconform_and_strict(schemas):
    names = {p.name for p in schemas.iterdir()}
    for expected in ("deployment-apps-v1.json", "service-v1.json", "serviceaccount-v1.json",
                     "clusterrole-rbac-v1.json", "rolebinding-rbac-v1.json",
                     "customresourcedefinition-apiextensions-v1.json", "execution-workflows-v1alpha1.json"):
        assert expected in names
    deployment = json.loads((schemas / "deployment-apps-v1.json").read_text())
    assert deployment["additionalProperties"] is False
    assert deployment["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]["additionalProperties"] is False
    assert all(not ref.startswith("http") for ref in re.findall(r'"\$ref":\s*"([^"]+)"', json.dumps(deployment)))


def test_helm_lint_strict_passes(helm):
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values,kinds", [
    ([], {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment",
          "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "TenancyPolicy"}),
    (["--set", "watchNamespaces={a,b}"], {"Role", "RoleBinding"}),
    (["--set", "logFormat=json"], {"Deployment"}),
    (["--set", "watchNamespaces={a,b}", "--set", "logFormat=json", "--set", "metrics.port=0"], {"Role"}),
], ids=["defaults", "watch-a-b", "json-logs", "watch-json-no-metrics"])
def test_every_rendered_object_is_strictly_valid_and_none_is_skipped(helm, kubeconform, values, kinds):
    manifests = render(helm, *values)
    rendered = documents(manifests)
    assert kinds <= {d["kind"] for d in rendered}
    result, summary = kubeconform(manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary == {"found": len(rendered), "valid": len(rendered), "invalid": 0, "errors": 0, "skipped": 0}


def test_watch_namespaces_render_roles_in_exactly_those_namespaces(helm):
    rendered = documents(render(helm, "--set", "watchNamespaces={a,b}", "--set", "logFormat=json"))
    roles = sorted((d["metadata"]["namespace"], d["metadata"]["name"]) for d in rendered if d["kind"] == "Role")
    # ...and the leader-election Role, on leases only, in the release namespace.
    assert roles == [("a", "t-flux-operator-application"), ("a", "t-flux-operator-framework"),
                     ("b", "t-flux-operator-application"), ("b", "t-flux-operator-framework"),
                     ("default", "t-flux-operator-leader-election")]
    election = next(d for d in rendered if d["kind"] == "Role" and d["metadata"]["name"].endswith("-leader-election"))
    assert election["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                  "verbs": ["get", "create", "update"]}]
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--namespace=a", "--namespace=b", "--log-format=json"} <= set(args)
    cluster_application = [d for d in rendered if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith(
        "-application")]
    assert cluster_application == [], "watching some namespaces grants nothing cluster-wide on executions or pods"


def test_the_examples_are_valid_executions(kubeconform):
    manifests = "\n---\n".join(p.read_text() for p in sorted((REPO / "examples" / "manifests").glob("*.yaml")))
    result, summary = kubeconform(manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary["valid"] == summary["found"] >= 2 and summary["skipped"] == 0


def _with_typo(doc: dict, path: list[str], key: str) -> dict:
    node = doc
    for part in path:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[key] = 1
    return doc


@pytest.mark.parametrize("kind,path,typo", [
    ("Deployment", ["spec"], "replicass"),
    ("Deployment", ["spec", "template", "spec", "containers", "0"], "imagePullPolicyy"),
    ("Deployment", ["metadata"], "label"),
    ("Service", ["spec", "ports", "0"], "targetport"),
    ("ClusterRole", ["rules", "0"], "verb"),
    ("CustomResourceDefinition", ["spec", "versions", "0", "schema", "openAPIV3Schema"], "additionalProperty"),
])
def test_an_unknown_field_in_a_rendered_object_fails(helm, kubeconform, kind, path, typo):
    doc = next(d for d in documents(render(helm)) if d["kind"] == kind)
    result, summary = kubeconform(yaml.safe_dump(_with_typo(doc, path, typo)))
    assert result.returncode != 0
    assert summary["invalid"] == 1 and summary["valid"] == 0
    assert f"'{typo}' not allowed" in result.stdout


@pytest.mark.parametrize("spec,message", [
    ({"workflow": "flux_examples.quick:main", "cancel": {"reason": "x", "forcee": True}}, "'forcee' not allowed"),
    ({"workflow": "flux_examples.quick:main", "gracePeriodSecond": 3}, "'gracePeriodSecond' not allowed"),
    ({"workflow": "flux_examples.quick:main", "gracePeriodSeconds": 3601}, "maximum"),
    ({"input": {}}, "missing property 'workflow'"),
])
def test_an_invalid_execution_fails(kubeconform, spec, message):
    doc = {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution", "metadata": {"name": "x"}, "spec": spec}
    result, summary = kubeconform(yaml.safe_dump(doc))
    assert result.returncode != 0 and summary["invalid"] == 1
    assert message in result.stdout


def test_a_kind_without_a_schema_is_an_error_not_a_skip(kubeconform):
    result, summary = kubeconform("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    assert result.returncode != 0
    assert summary["errors"] == 1 and summary["skipped"] == 0
    assert "could not find schema for Widget" in result.stdout


def test_values_schema_rejects_an_unknown_log_format(helm):
    result = helm("template", "t", str(CHART), "--set", "logFormat=xml")
    assert result.returncode != 0
    assert "/logFormat" in result.stderr and "'text', 'json'" in result.stderr, result.stderr


def test_values_schema_rejects_unknown_keys(helm):
    result = helm("template", "t", str(CHART), "--set", "logformat=json")
    assert result.returncode != 0
    assert "logformat" in result.stderr, result.stderr


def test_runner_defaults_reach_the_operator_as_flags_it_accepts(helm):
    from flux_operator.main import parse_args

    manifests = render(helm, "--set-json", 'runner.podTemplate={"nodeSelector":{"pool":"batch: a #b"},'
                                           '"imagePullSecrets":[{"name":"reg"}]}',
                       "--set", "runner.ttlSecondsAfterFinished=600", "--set", "runner.resources.limits.memory=1Gi")
    deployment = next(d for d in documents(manifests) if d["kind"] == "Deployment")
    argv = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    args = parse_args(argv)
    assert args.runner_pod_template.nodeSelector == {"pool": "batch: a #b"}
    assert args.runner_resources["limits"] == {"memory": "1Gi"}
    assert args.default_ttl_seconds_after_finished == 600
    plain = next(d for d in documents(render(helm)) if d["kind"] == "Deployment")
    defaults = parse_args(plain["spec"]["template"]["spec"]["containers"][0]["args"])
    assert defaults.runner_pod_template is None and defaults.default_ttl_seconds_after_finished is None


# --- multi-tenancy: the policies, the TenancyPolicy and the operator's flag from one set of values ---------

def test_the_chart_installs_the_generated_policies_as_templates_so_upgrades_upgrade_them(helm):
    from flux_api import policy

    rendered = documents(render(helm))
    kinds = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    def key(d):
        return d["kind"], d["metadata"]["name"]
    assert sorted((d for d in rendered if d["kind"] in kinds), key=key) == sorted(policy.documents(), key=key)
    crds_only = documents(helm("show", "crds", str(CHART)).stdout)
    assert {d["kind"] for d in crds_only} == {"CustomResourceDefinition"}, "Helm never upgrades crds/"
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"] == ">=1.33.0-0"
    too_old = helm("template", "t", str(CHART), "--kube-version", "1.32.9")
    assert too_old.returncode != 0 and "kubeVersion" in too_old.stderr


def test_tenancy_values_reach_the_tenancy_policy_and_the_operator_alike(helm):
    from flux_api.tenancy import limits_of
    from flux_operator.main import options, parse_args

    manifests = render(helm, "-n", "platform", "--set", "serviceAccount.name=runner-boss",
                       "--set-json", 'tenancy.allowedImages=["registry.example.com/wf/"]',
                       "--set-json", 'tenancy.allowedNodeSelectors={"pool":["batch"]}',
                       "--set-json", 'tenancy.serviceAccountAnnotations={"iam.gke.io/gcp-service-account":'
                                     '"flux-{namespace}@p.iam.gserviceaccount.com"}',
                       "--set", "tenancy.maxResources.memory=4Gi", "--set", "runner.ttlSecondsAfterFinished=600")
    rendered = documents(manifests)
    policy_object = next(d for d in rendered if d["kind"] == "TenancyPolicy")
    assert policy_object["metadata"]["name"] == "flux-tenancy"
    assert policy_object["spec"]["operators"] == ["system:serviceaccount:platform:runner-boss"]
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    operator = options(parse_args(deployment["spec"]["template"]["spec"]["containers"][0]["args"]))
    assert operator.runner.limits == limits_of(policy_object["spec"]), "the start-up check would be red"
    assert operator.runner.limits.allowedImages == ["registry.example.com/wf/"]
    assert operator.runner.limits.defaultTtlSecondsAfterFinished == 600
    from flux_api.policy import reader_rules
    check = next(d for d in rendered if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-check"))
    assert check["rules"] == reader_rules()


def test_by_default_the_platform_allows_nothing_beyond_kubernetes_permissions(helm):
    from flux_api.tenancy import TenancyLimits, limits_of

    spec = next(d for d in documents(render(helm)) if d["kind"] == "TenancyPolicy")["spec"]
    assert limits_of(spec) == TenancyLimits(), "every allowed* list unset: the fields need create pods"


def test_values_schema_rejects_a_maximum_that_is_no_quantity(helm):
    result = helm("template", "t", str(CHART), "--set", "tenancy.maxResources.memory=lots")
    assert result.returncode != 0 and "maxResources" in result.stderr, result.stderr
