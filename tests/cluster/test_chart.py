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
from flux_api import policy_runner_pod
from fluxtest import CRD, REPO
from fluxtest.paths import SCHEDULE_CRD, TENANCY_CRD
from localcluster.layout import monitoring_crds

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
    monitoring = [arg for crd in monitoring_crds() for arg in ("--crd", str(crd))]
    result = run(sys.executable, "-m", "localcluster.openapi_schemas", "--kubeconfig", str(cluster.kubeconfig),
                 "--out", str(out), "--crd", str(CRD), "--crd", str(SCHEDULE_CRD), "--crd", str(TENANCY_CRD),
                 *monitoring)
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
          "NetworkPolicy", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "TenancyPolicy"}),
    (["--set", "watchNamespaces={a,b}"], {"Role", "RoleBinding"}),
    (["--set", "logFormat=json"], {"Deployment"}),
    (["--set", "watchNamespaces={a,b}", "--set", "logFormat=json", "--set", "metrics.port=0"], {"Role"}),
    (["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.podMonitor.enabled=true",
      "--set", "metrics.prometheusRule.enabled=true", "--set", "dashboards.enabled=true",
      "--set", "tracing.enabled=true", "--set", "tracing.endpoint=http://jaeger-collector.observability:4318",
      "--set-json", "tracing.samplingRatio=0.5", "--set-json", 'tracing.egress=[{"ports": [{"port": 4318}]}]',
      "--set", "logFormat=json"],
     {"ServiceMonitor", "PodMonitor", "PrometheusRule", "Secret", "ConfigMap"}),
    (["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.secure=false"], {"ServiceMonitor"}),
], ids=["defaults", "watch-a-b", "json-logs", "watch-json-no-metrics", "observability", "plain-metrics-monitor"])
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
    assert roles == [("a", "t-flux-operator-application"), ("b", "t-flux-operator-application"),
                     ("default", "t-flux-operator-leader-election")]
    election = next(d for d in rendered if d["kind"] == "Role" and d["metadata"]["name"].endswith("-leader-election"))
    assert election["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                  "resourceNames": ["flux-operator"], "verbs": ["get", "update"]},
                                 {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                  "verbs": ["create"]}], "its own Lease: the namespace may hold others'"
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--namespace=a", "--namespace=b", "--log-format=json", "--leader-election-id=flux-operator"} <= set(args)
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


# --- least privilege, opt-in namespaces and the network (the chart's own block of values) ---------------

RBAC_KINDS = ("ClusterRole", "Role")


def rights(docs: list[dict], kind: str, name_suffix: str, namespace: str | None = None) -> set[tuple[str, str, str]]:
    """(verb, group, resource) of every rule in the matching Roles/ClusterRoles."""
    found = set()
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix) and \
                (namespace is None or d["metadata"].get("namespace") == namespace):
            for rule in d["rules"]:
                found |= {(v, g, r) for v in rule["verbs"] for g in rule.get("apiGroups", [""])
                          for r in rule.get("resources", [])}
    return found


@pytest.mark.parametrize("values", [[], ["--set", "watchNamespaces={a,b}"], ["--set", "metrics.secure=false"],
                                    ["--set", "runnerNetworkPolicy.enabled=false", "--set", "metrics.port=0"]],
                         ids=["cluster-mode", "listed", "metrics-insecure", "no-runner-policy-no-metrics"])
def test_no_wildcard_anywhere_in_the_rbac(helm, values):
    for doc in documents(render(helm, *values)):
        if doc["kind"] in RBAC_KINDS or doc["kind"].startswith("Cluster") and "rules" in doc:
            for rule in doc["rules"]:
                for key in ("verbs", "resources", "apiGroups", "nonResourceURLs"):
                    assert not any("*" in item for item in rule.get(key, [])), (doc["metadata"]["name"], rule)


def test_cluster_mode_grants_exactly_the_operators_table(helm):
    """Every right the chart grants is one the operator's code names (flux_operator.startup), and no more."""
    from flux_operator import startup

    docs = documents(render(helm))
    assert rights(docs, "ClusterRole", "-application") == set(startup.NAMESPACED + startup.NETWORK_POLICIES)
    assert rights(docs, "ClusterRole", "-framework") == set(startup.KOPF_OBSERVERS + startup.METRICS_AUTH)
    assert rights(docs, "Role", "-leader-election", "default") == set(startup.LEADER_ELECTION)
    assert {d["kind"] for d in docs if d["kind"] == "Role"} == {"Role"}, "only the Lease's Role is namespaced"
    reader = next(d for d in docs if d["metadata"]["name"].endswith("-metrics-reader"))
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    bound = {d["roleRef"]["name"] for d in docs if d["kind"] == "ClusterRoleBinding"}
    assert reader["metadata"]["name"] not in bound, "for your Prometheus to bind: the operator does not hold it"


def test_listed_namespaces_get_the_table_there_and_nothing_namespaced_cluster_wide(helm):
    from flux_operator import startup

    docs = documents(render(helm, "--set", "watchNamespaces={a,b}", "--set", "runnerNetworkPolicy.enabled=false",
                            "--set", "metrics.secure=false"))
    for ns in ("a", "b"):
        assert rights(docs, "Role", "-application", ns) == set(startup.NAMESPACED)
    assert rights(docs, "ClusterRole", "") - rights(docs, "ClusterRole", "-check") == set(startup.KOPF_OBSERVERS), \
        "cluster-wide only what is cluster-scoped: CRDs and namespaces, list and watch"
    assert not [d for d in docs if d["metadata"]["name"].endswith("-enabled-namespaces")], \
        "no policy needed: the Roles already hold it to its namespaces"


def test_kube_namespaces_cannot_be_listed(helm):
    result = helm("template", "t", str(CHART), "--set", "watchNamespaces={team-a,kube-system}")
    assert result.returncode != 0 and "watchNamespaces" in result.stderr, result.stderr


def test_the_namespace_policy_is_the_one_the_api_package_generates(helm):
    from flux_api.namespace_policy import policy

    docs = documents(render(helm, "--namespace", "flux-system"))
    rendered = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"
                    and d["metadata"]["name"].endswith("-enabled-namespaces"))
    name = rendered["metadata"]["name"]
    assert name == "t-flux-operator-enabled-namespaces"
    assert rendered["spec"] == policy("system:serviceaccount:flux-system:t-flux-operator", name)["spec"]
    binding = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding" and d["metadata"]["name"] == name)
    assert binding["spec"] == {"policyName": name, "validationActions": ["Deny"]}
    off = documents(render(helm, "--set", "namespacePolicy.enabled=false"))
    assert not [d for d in off if d["metadata"]["name"].endswith("-enabled-namespaces")]


def test_the_operators_network_policy_admits_its_probe_and_scrapes_and_lets_it_reach_only_the_api(helm):
    docs = documents(render(helm, "--set", "metrics.port=9443", "--set", "health.port=8082",
                            "--set-json", 'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":'
                                          '{"kubernetes.io/metadata.name":"monitoring"}}}]',
                            "--set-json", 'networkPolicy.apiServer.cidrs=["10.0.0.1/32"]',
                            "--set-json", "networkPolicy.apiServer.ports=[6443]"))
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    health, metrics = policy["spec"]["ingress"]
    assert health == {"ports": [{"protocol": "TCP", "port": ports["health"]}]}, "the kubelet's probe, from anywhere"
    assert metrics["ports"] == [{"protocol": "TCP", "port": ports["metrics"]}]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert policy["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
                                         "ports": [{"protocol": "TCP", "port": 6443}]}], "the API server, nothing else"
    assert not [d for d in documents(render(helm, "--set", "networkPolicy.enabled=false"))
                if d["kind"] == "NetworkPolicy"]
    nodes = documents(render(helm, "--set-json", 'networkPolicy.healthFrom=[{"ipBlock":{"cidr":"192.0.2.0/24"}}]'))
    health = next(d for d in nodes if d["kind"] == "NetworkPolicy")["spec"]["ingress"][0]
    assert health["from"] == [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "the probe from the nodes only"


def test_runner_egress_reaches_the_operator_as_the_api_server_and_dns_or_not_at_all(helm):
    from flux_operator.main import parse_args

    def args(*values: str):
        deployment = next(d for d in documents(render(helm, *values)) if d["kind"] == "Deployment")
        return parse_args(deployment["spec"]["template"]["spec"]["containers"][0]["args"])

    egress = args().runner_egress
    api, dns = egress
    assert {p["port"] for p in api["ports"]} == {443, 6443} and all(p["protocol"] == "TCP" for p in api["ports"])
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    assert args("--set", "runnerNetworkPolicy.enabled=false").runner_egress is None


def test_metrics_are_served_securely_by_default_and_from_a_mounted_certificate_when_given(helm):
    from flux_operator.main import parse_args

    def deployment(*values: str) -> dict:
        return next(d for d in documents(render(helm, *values)) if d["kind"] == "Deployment")

    plain = deployment()
    args = parse_args(plain["spec"]["template"]["spec"]["containers"][0]["args"])
    assert args.metrics_secure and not args.metrics_cert_file
    mounted = deployment("--set", "metrics.tls.secretName=flux-metrics-tls")
    container, volumes = mounted["spec"]["template"]["spec"]["containers"][0], mounted["spec"]["template"]["spec"]["volumes"]
    args = parse_args(container["args"])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "metrics-tls")
    assert args.metrics_cert_file == f"{mount['mountPath']}/tls.crt" and mount["readOnly"] is True
    assert {"name": "metrics-tls", "secret": {"secretName": "flux-metrics-tls"}} in volumes
    insecure = deployment("--set", "metrics.secure=false")
    assert parse_args(insecure["spec"]["template"]["spec"]["containers"][0]["args"]).metrics_secure is False


def test_the_operator_pods_priority_class_is_a_value(helm):
    def pod(*values: str) -> dict:
        return next(d for d in documents(render(helm, *values)) if d["kind"] == "Deployment")["spec"]["template"]["spec"]

    assert "priorityClassName" not in pod()
    assert pod("--set", "priorityClassName=system-cluster-critical")["priorityClassName"] == "system-cluster-critical"


# --- multi-tenancy: the policies, the TenancyPolicy and the operator's flag from one set of values ---------

def test_the_chart_installs_the_generated_policies_as_templates_so_upgrades_upgrade_them(helm):
    from flux_api import policy

    rendered = documents(render(helm))
    kinds = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    def key(d):
        return d["kind"], d["metadata"]["name"]
    ours = [d for d in rendered if d["kind"] in kinds and not d["metadata"]["name"].endswith("-enabled-namespaces")]
    assert sorted(ours, key=key) == sorted(policy.documents(), key=key), "the namespace policy is tested below"
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
                       "--set", "tenancy.maxResources.memory=4Gi", "--set", "runner.ttlSecondsAfterFinished=600",
                       "--set", "tenancy.maxExecutionsPerTree=50")
    rendered = documents(manifests)
    policy_object = next(d for d in rendered if d["kind"] == "TenancyPolicy")
    assert policy_object["metadata"]["name"] == "flux-tenancy"
    assert policy_object["spec"]["operators"] == ["system:serviceaccount:platform:runner-boss"]
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    operator = options(parse_args(deployment["spec"]["template"]["spec"]["containers"][0]["args"]))
    assert operator.runner.limits == limits_of(policy_object["spec"]), "the start-up check would be red"
    assert operator.runner.limits.allowedImages == ["registry.example.com/wf/"]
    assert operator.runner.limits.defaultTtlSecondsAfterFinished == 600
    assert operator.runner.limits.maxExecutionsPerTree == policy_object["spec"]["maxExecutionsPerTree"] == 50
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
    no_tree = helm("template", "t", str(CHART), "--set", "tenancy.maxExecutionsPerTree=0")
    assert no_tree.returncode != 0 and "maxExecutionsPerTree" in no_tree.stderr, no_tree.stderr


def test_the_monitors_scrape_with_a_token_that_may_only_get_metrics(helm):
    rendered = documents(render(helm, "--set", "metrics.serviceMonitor.enabled=true",
                                "--set", "metrics.podMonitor.enabled=true"))
    scraper = "t-flux-operator-metrics-scraper"
    binding = next(d for d in rendered if d["kind"] == "ClusterRoleBinding" and d["metadata"]["name"] == scraper)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": scraper, "namespace": "default"}]
    role = next(d for d in rendered if d["kind"] == "ClusterRole" and d["metadata"]["name"] == binding["roleRef"]["name"])
    assert role["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    assert not [d for d in rendered if d["kind"] in ("RoleBinding", "ClusterRoleBinding") and d is not binding
                and any(s.get("name") == scraper for s in d.get("subjects", []))]
    for kind, field in (("ServiceMonitor", "endpoints"), ("PodMonitor", "podMetricsEndpoints")):
        endpoint = next(d for d in rendered if d["kind"] == kind)["spec"][field][0]
        assert endpoint["scheme"] == "https"
        assert endpoint["authorization"]["credentials"] == {"name": scraper, "key": "token"}
    service = next(d for d in rendered if d["kind"] == "Service" and d["metadata"]["name"].endswith("-metrics"))
    selector = next(d for d in rendered if d["kind"] == "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()


def test_tracing_values_reach_the_operator_as_flags_it_accepts_and_open_the_way_to_the_collector(helm):
    from flux_operator.main import parse_args
    rendered = documents(render(helm, "--set", "tracing.enabled=true", "--set", "tracing.endpoint=http://c.o:4318",
                                "--set-json", "tracing.samplingRatio=0.25",
                                "--set-json", 'tracing.egress=[{"ports": [{"port": 4318, "protocol": "TCP"}]}]'))
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    args = parse_args(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
    assert (args.tracing_endpoint, args.tracing_sampling_ratio) == ("http://c.o:4318", 0.25)
    collector = {"ports": [{"port": 4318, "protocol": "TCP"}]}
    assert collector in args.runner_egress, "runners export their step spans to the collector"
    policy = next(d for d in rendered if d["kind"] == "NetworkPolicy")
    assert collector in policy["spec"]["egress"]
    assert helm("template", "t", str(CHART), "--kube-version", KUBE_VERSION,
                "--set", "tracing.enabled=true").returncode != 0, "no endpoint: refused"


def test_listed_mode_holds_runner_pod_access_to_the_listed_namespaces_too(helm):
    """Listed namespaces need not carry the opt-in label: a second binding names them (policy_runner_pod)."""
    listed = [d for d in documents(render(helm, "--set", "watchNamespaces={a,b}"))
              if d["kind"] == "ValidatingAdmissionPolicyBinding" and d["spec"]["policyName"] == policy_runner_pod.NAME]
    expected = policy_runner_pod.access_binding(
        {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "b"]}]},
        f"{policy_runner_pod.NAME}-listed")
    by_name = {d["metadata"]["name"]: d for d in listed}
    assert set(by_name) == {policy_runner_pod.NAME, expected["metadata"]["name"]}
    assert by_name[expected["metadata"]["name"]]["spec"] == expected["spec"]
    labelled = [d for d in documents(render(helm)) if d["kind"] == "ValidatingAdmissionPolicyBinding"
                and d["spec"]["policyName"] == policy_runner_pod.NAME]
    assert [d["metadata"]["name"] for d in labelled] == [policy_runner_pod.NAME]
