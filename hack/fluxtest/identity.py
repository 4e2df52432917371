"""The identity the tests' operators run as: a ServiceAccount bound to exactly the chart's RBAC.

The chart is rendered (`helm template`) and its ServiceAccount, Roles, ClusterRoles, bindings and admission
policies are applied as they are, so what the cluster tests exercise is the chart's least privilege, never
the admin's. The operator logs in with a token of that ServiceAccount (a kubeconfig with `tokenFile`) and
elects its leader in the release namespace, as the chart's Deployment does. Its user name is
`OPERATOR_USER`: admission policies that must tell the operator from tenants use this one constant.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from flux_api import EXECUTION_LABEL, GROUP, VERSION
from flux_api.progress import KIND as PROGRESS_KIND
from kubernetes import client
from localcluster.kube import create_unless_there
from localcluster.layout import Layout

from fluxtest.paths import REPO

CHART = REPO / "charts" / "flux-operator"
KUBE_VERSION = "1.35.4"
OPERATOR_NAMESPACE = "flux-system"  # the release namespace: the Lease lives here
OPERATOR_ACCOUNT = "flux-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"
RELEASE = "fluxtest"  # ClusterRoles fluxtest-flux-operator-*: apart from a real `helm install` of the chart
# Who scrapes /metrics in the tests: bound to the chart's metrics-reader ClusterRole, nothing else.
SCRAPER_ACCOUNT = "flux-metrics-scraper"
# OperatorProcess.metrics() reads the scraper's token from the file this names in the operator's env.
SCRAPER_TOKEN_ENV = "FLUXTEST_METRICS_TOKEN_FILE"
TOKEN_SECONDS = 2 * 24 * 3600
APPLIED_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                 "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


@dataclass
class Identity:
    user: str
    namespace: str
    account: str
    kubeconfig: Path
    objects: list[dict] = field(default_factory=list)  # what was applied for it
    env: dict[str, str] = field(default_factory=dict)  # for the operator process, beside KUBECONFIG

    def operator_env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, **self.env, "KUBECONFIG": str(self.kubeconfig)}

    def kubeconfig_via(self, server: str, path: Path) -> Path:
        """This identity's kubeconfig, reaching the API server at `server` instead (e.g. through a proxy)."""
        config = json.loads(self.kubeconfig.read_text())
        config["clusters"][0]["cluster"]["server"] = server
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path


def render(layout: Layout, release: str, namespace: str, *values: str) -> list[dict]:
    result = subprocess.run([str(layout.bin / "helm"), "template", release, str(CHART), "-n", namespace,
                             "--kube-version", KUBE_VERSION, *values], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed: {result.stderr}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def deployment_arg(docs: list[dict], flag: str) -> str | None:
    """The value of `--flag=value` in the rendered Deployment's args."""
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    for arg in deployment["spec"]["template"]["spec"]["containers"][0]["args"]:
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    return None


def apply(kube_env: dict[str, str], docs: list[dict]) -> None:
    result = subprocess.run(["kubectl", "apply", "--server-side", "--force-conflicts", "-f", "-"], env=kube_env,
                            input="\n---\n".join(json.dumps(d) for d in docs), capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"kubectl apply failed: {result.stderr}")


def ensure_namespace(core: client.CoreV1Api, name: str) -> None:
    create_unless_there(core.create_namespace, {"metadata": {"name": name}})


def token_kubeconfig(layout: Layout, token: str, directory: Path, name: str) -> Path:
    """A kubeconfig for the cluster that logs in with `token`, kept in a file it names (re-read by the operator)."""
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / f"{name}.token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    path = directory / f"{name}.kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": "flux-local", "cluster": {"server": layout.server,
                                                        "certificate-authority": str(layout.pki / "ca.crt")}}],
        "users": [{"name": name, "user": {"tokenFile": str(token_file)}}],
        "contexts": [{"name": name, "context": {"cluster": "flux-local", "user": name, "namespace": "default"}}],
    }, indent=2))
    path.chmod(0o600)
    return path


def whoami(api: client.ApiClient) -> str:
    """The user name the API server knows `api`'s credentials by (a SelfSubjectReview)."""
    review = client.AuthenticationV1Api(api).create_self_subject_review(
        client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"))
    return review.status.user_info.username


def mint_token(core: client.CoreV1Api, namespace: str, account: str) -> str:
    return core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": TOKEN_SECONDS}}).status.token


def account_kubeconfig(api: client.ApiClient, layout: Layout, namespace: str, account: str, path: Path) -> Path:
    """ServiceAccount `account` in `namespace`, and a kubeconfig at `path` that authenticates as it with a token
    (an hour's): the admin's kubeconfig with its user replaced."""
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
    token = core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    config = yaml.safe_load(layout.kubeconfig.read_text())
    config["users"] = [{"name": account, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = account
    path.write_text(yaml.safe_dump(config))
    return path


def bind_account(api: client.ApiClient, namespace: str, account: str, rules: list[dict]) -> None:
    """A Role `account` of `rules` in `namespace`, bound to the ServiceAccount `account` there."""
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": account}, "rules": rules})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": account},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})


def test_leases(namespace: str, account: str, release: str) -> list[dict]:
    """The tests' one addition to the chart's RBAC: each test elects its operators' leader under a Lease name of
    its own (--leader-election-id), and the chart's Role names only its own Lease. A chart install
    (tests/cluster/test_helm_install.py) runs without it."""
    name = f"{release}-{account}-test-leases"
    return [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": name, "namespace": namespace},
             "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "update"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": name, "namespace": namespace},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]}]


def install(layout: Layout, api: client.ApiClient, kube_env: dict[str, str], *values: str,
            release: str = RELEASE, namespace: str = OPERATOR_NAMESPACE, account: str = OPERATOR_ACCOUNT) -> Identity:
    """Renders the chart with `values`, applies its identity objects, and mints a token for its ServiceAccount."""
    core = client.CoreV1Api(api)
    ensure_namespace(core, namespace)
    docs = render(layout, release, namespace, "--set", f"serviceAccount.name={account}", *values)
    # Of the admission policies only the release's own (its namespace policy): fluxtest.policies installs
    # the shared ones (fixed names), and `remove` must not take those away from the rest of the session.
    objects = [d for d in docs if d["kind"] in APPLIED_KINDS
               and (not d["kind"].startswith("ValidatingAdmission") or d["metadata"]["name"].startswith(release))]
    objects += test_leases(namespace, account, release)
    apply(kube_env, objects)
    user = f"system:serviceaccount:{namespace}:{account}"
    if any(d["kind"] == "ValidatingAdmissionPolicyBinding" for d in objects):
        _wait_policy_in_effect(kube_env, user)
    directory = layout.root / "identity"
    kubeconfig = token_kubeconfig(layout, mint_token(core, namespace, account), directory, f"{release}-{account}")
    env = {"POD_NAMESPACE": namespace}  # the Lease's namespace, as in the chart's Deployment
    egress = deployment_arg(docs, "--runner-egress")
    env["FLUX_RUNNER_EGRESS"] = egress or ""
    reader = next((d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"
                   and d["metadata"]["name"].endswith("-metrics-reader")), None)
    if reader:
        env[SCRAPER_TOKEN_ENV] = str(_scraper(layout, core, kube_env, namespace, reader, directory))
    return Identity(user, namespace, account, kubeconfig, objects, env)


def _wait_policy_in_effect(kube_env: dict[str, str], user: str, timeout: float = 30) -> None:
    """A new admission policy takes a moment to reach the API server's admission chain: until the operator's
    own ExecutionProgress in kube-public is refused (its ClusterRole alone would allow it), tests must not rely on
    it. Not a pod: flux-operator-makes-only-runners would refuse that one first, for its name."""
    probe = json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": PROGRESS_KIND,
                        "metadata": {"name": "policy-probe", "namespace": "kube-public"}})
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(["kubectl", "create", f"--as={user}", "--dry-run=server", "-f", "-"], env=kube_env,
                                input=probe, capture_output=True, text=True, timeout=60)
        if "never acts in kube-public" in result.stderr:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the namespace policy for {user} is not in effect after {timeout}s: "
                                 f"{result.stdout}{result.stderr}")
        time.sleep(0.2)


def _scraper(layout: Layout, core: client.CoreV1Api, kube_env: dict[str, str], namespace: str, reader: str,
             directory: Path) -> Path:
    """A ServiceAccount allowed only to get /metrics (the chart's metrics-reader ClusterRole); its token file."""
    apply(kube_env, [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SCRAPER_ACCOUNT, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": f"{reader}-{SCRAPER_ACCOUNT}"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": reader},
         "subjects": [{"kind": "ServiceAccount", "name": SCRAPER_ACCOUNT, "namespace": namespace}]},
    ])
    path = directory / f"{reader}.token"
    path.write_text(mint_token(core, namespace, SCRAPER_ACCOUNT))
    path.chmod(0o600)
    return path


def remove(kube_env: dict[str, str], identity: Identity) -> None:
    """Deletes what `install` applied (a test's own identity; the session's stays for the next run)."""
    subprocess.run(["kubectl", "delete", "--ignore-not-found", "--wait=false", "-f", "-"], env=kube_env,
                   input="\n---\n".join(json.dumps(d) for d in identity.objects), capture_output=True, text=True,
                   timeout=120)


def unique_release(prefix: str = "fluxtest") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def runner_shaped(kind: str, namespace: str, execution: str = "probe") -> dict:
    """A Pod or ServiceAccount shaped as the operator makes it for Execution `execution`: the operator's identity
    may create it (flux-operator-makes-only-runners), so a probe of it meets only the namespace policy."""
    owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution", "name": execution, "uid": str(uuid.uuid4()),
             "controller": True}
    account = f"flux-runner-{execution}"
    if kind == "ServiceAccount":
        return {"apiVersion": "v1", "kind": kind,
                "metadata": {"name": account, "namespace": namespace, "ownerReferences": [owner]}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{execution}-runner", "namespace": namespace, "ownerReferences": [owner],
                         "labels": {EXECUTION_LABEL: execution}},
            "spec": {"serviceAccountName": account,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "runner", "image": "busybox",
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]}}}]}}


def runner_account(core: client.CoreV1Api, namespace: str, execution: str = "probe") -> None:
    """The ServiceAccount a runner-shaped pod names: the API server looks it up before any policy is asked."""
    create_unless_there(core.create_namespaced_service_account, namespace,
                        {"metadata": {"name": f"flux-runner-{execution}"}})
