"""kube.py and the whole CLI against a small fake API server speaking real HTTP.

The real `kubernetes` client talks to it, so URLs, label selectors, the merge-patch content
type, pagination and error bodies are exercised as on a cluster (which tests/cluster covers).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from flux_api import EXECUTION_LABEL, GROUP, PARENT_LABEL, PLURAL, VERSION
from flux_api.progress import PLURAL as PROGRESS
from flux_api.mergepatch import merge_patch
from flux_cli import connecting
from flux_cli import kube as kube_module
from flux_cli.connecting import connect
from flux_cli.kube import (
    ApiNotInstalledError,
    ForbiddenError,
    KubeconfigError,
    NotFoundError,
    RejectedError,
    UnauthorizedError,
    UnreachableError,
)
from flux_cli.main import app
from typer.testing import CliRunner

pytestmark = pytest.mark.unit

TOKEN = "s3cret-token"
BASE = f"/apis/{GROUP}/{VERSION}"


# The fake API server


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    """Enough of the label selector grammar for the plugin: k=v, k!=v, k in (a,b), k."""
    if not selector:
        return True
    for requirement in re.split(r",(?![^()]*\))", selector):
        requirement = requirement.strip()
        if m := re.fullmatch(r"(\S+)\s+in\s+\((.*)\)", requirement):
            if labels.get(m[1]) not in [v.strip() for v in m[2].split(",")]:
                return False
        elif m := re.fullmatch(r"([^!=\s]+)\s*!=\s*(\S*)", requirement):
            if labels.get(m[1]) == m[2]:
                return False
        elif m := re.fullmatch(r"([^!=\s]+)\s*==?\s*(\S*)", requirement):
            if labels.get(m[1]) != m[2]:
                return False
        elif requirement not in labels:
            return False
    return True


class FakeApi:
    def __init__(self) -> None:
        self.executions: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.forbidden: set[tuple[str, str]] = set()  # (verb, name)
        self.crd_installed = True
        self.page_size_cap: int | None = None  # forces pagination when set
        self.requests: list[dict[str, Any]] = []
        self.after_patch: Callable[[dict[str, Any]], None] | None = None
        self.lock = threading.Lock()
        self.splice: dict[str, str] = {}  # a string value in an object -> raw JSON text sent in its place
        self.progress: dict[tuple[str, str], dict[str, Any]] = {}  # ExecutionProgress objects
        self.progress_forbidden = False  # a tenant without get/list executionprogresses

    def add(self, name: str, namespace: str = "team-a", phase: str | None = "Running", parent: str | None = None, **extra: Any) -> dict[str, Any]:
        labels = {PARENT_LABEL: parent} if parent else {}
        obj = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Execution",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"workflow": "pkg.mod:main", "input": {}, **extra.pop("spec", {})},
            "status": ({"phase": phase} if phase else {}) | extra.pop("status", {}),
        }
        self.executions[(namespace, name)] = obj
        return obj

    def add_pod(self, name: str, execution: str, namespace: str = "team-a", phase: str = "Running") -> None:
        self.pods.append(
            {"metadata": {"name": name, "namespace": namespace, "labels": {EXECUTION_LABEL: execution}}, "status": {"phase": phase}}
        )


def _status(code: int, reason: str, message: str, name: str | None = None) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": name, "group": GROUP, "kind": PLURAL} if name else {},
        "code": code,
    }


def _handler(fake: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _send(self, code: int, body: Any) -> None:
            text = json.dumps(body)
            for placeholder, raw in fake.splice.items():  # JSON too deep for json.dumps to make
                text = text.replace(json.dumps(placeholder), raw)
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            with fake.lock:
                fake.requests.append(
                    {"method": method, "path": url.path, "query": query, "body": body, "contentType": self.headers.get("Content-Type")}
                )
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, _status(401, "Unauthorized", "Unauthorized"))
                code, payload = self._route(method, url.path, query, body)
            self._send(code, payload)

        def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
            if path.rstrip("/") == "/version":
                return 200, {
                    "major": "1", "minor": "31", "gitVersion": "v1.31.0", "gitCommit": "abc", "gitTreeState": "clean",
                    "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22", "compiler": "gc", "platform": "linux/amd64",
                }
            if not path.startswith(BASE) or not fake.crd_installed:
                return 404, _status(404, "NotFound", "the server could not find the requested resource")
            if path == BASE:
                return 200, {
                    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
                    "resources": [{"name": PLURAL, "singularName": "execution", "namespaced": True, "kind": "Execution", "verbs": ["get", "list", "patch"]}],
                }
            if m := re.fullmatch(rf"{BASE}/namespaces/([^/]+)/{PROGRESS}(?:/([^/]+))?", path):
                return self._progress(m[1], m[2], query)
            if m := re.fullmatch(rf"{BASE}(?:/namespaces/([^/]+))?/{PLURAL}", path):
                return self._list(m[1], query)
            if m := re.fullmatch(rf"{BASE}/namespaces/([^/]+)/{PLURAL}/([^/]+)", path):
                return self._one(method, m[1], m[2], body)
            return 404, _status(404, "NotFound", "the server could not find the requested resource")

        def _list(self, namespace: str | None, query: dict[str, str]) -> tuple[int, Any]:
            if ("list", namespace or "*") in fake.forbidden:
                return 403, _status(403, "Forbidden", f'executions.{GROUP} is forbidden: User "dev" cannot list resource "executions"')
            items = [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(fake.executions.items())
                if (namespace is None or ns == namespace) and _matches(obj["metadata"].get("labels", {}), query.get("labelSelector"))
            ]
            start = int(query.get("continue") or 0)
            size = min(int(query.get("limit") or len(items) or 1), fake.page_size_cap or 10**9)
            page, more = items[start : start + size], start + size < len(items)
            return 200, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ExecutionList", "metadata": {"continue": str(start + size) if more else ""}, "items": page}

        def _one(self, method: str, namespace: str, name: str, body: Any) -> tuple[int, Any]:
            verb = "get" if method == "GET" else "patch"
            if (verb, name) in fake.forbidden:
                message = f'executions.{GROUP} "{name}" is forbidden: User "dev" cannot {verb} resource "executions" in API group "{GROUP}" in the namespace "{namespace}"'
                return 403, _status(403, "Forbidden", message, name)
            obj = fake.executions.get((namespace, name))
            if obj is None:
                return 404, _status(404, "NotFound", f'executions.{GROUP} "{name}" not found', name)
            if method == "GET":
                return 200, copy.deepcopy(obj)
            old_cancel = obj["spec"].get("cancel")
            updated = merge_patch(obj, body)
            if old_cancel is not None and updated["spec"].get("cancel") != old_cancel:
                return 422, _status(422, "Invalid", f'Execution.{GROUP} "{name}" is invalid: spec.cancel: Invalid value: "object": cancel cannot be changed once set', name)
            fake.executions[(namespace, name)] = updated
            if fake.after_patch:
                fake.after_patch(updated)
            return 200, copy.deepcopy(updated)

        def _progress(self, namespace: str, name: str | None, query: dict[str, str]) -> tuple[int, Any]:
            if fake.progress_forbidden:
                return 403, _status(403, "Forbidden", f'{PROGRESS}.{GROUP} is forbidden: User "dev" cannot get it')
            if name is not None:
                obj = fake.progress.get((namespace, name))
                return (200, copy.deepcopy(obj)) if obj else (404, _status(404, "NotFound", "not found", name))
            items = [copy.deepcopy(o) for (ns, _), o in sorted(fake.progress.items()) if ns == namespace]
            start = int(query.get("continue") or 0)
            size = min(int(query.get("limit") or len(items) or 1), fake.page_size_cap or 10**9)
            more = start + size < len(items)
            return 200, {"kind": "ExecutionProgressList", "metadata": {"continue": str(start + size) if more else ""},
                         "items": items[start : start + size]}

        def _pods(self, namespace: str, query: dict[str, str]) -> tuple[int, Any]:
            items = [p for p in fake.pods if p["metadata"]["namespace"] == namespace and _matches(p["metadata"]["labels"], query.get("labelSelector"))]
            return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", url.path):
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                with fake.lock:
                    code, payload = self._pods(m[1], query)
                return self._send(code, payload)
            self._serve("GET")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    api = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield api
    server.shutdown()
    server.server_close()


def write_kubeconfig(path: Path, server: str, namespace: str | None = "team-a", token: str = TOKEN) -> Path:
    context: dict[str, Any] = {"cluster": "fake", "user": "dev"}
    if namespace:
        context["namespace"] = namespace
    path.write_text(
        json.dumps(  # JSON is YAML
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server}}],
                "users": [{"name": "dev", "user": {"token": token}}],
                "contexts": [{"name": "main", "context": context}, {"name": "other", "context": {"cluster": "fake", "user": "dev"}}],
                "current-context": "main",
            }
        )
    )
    return path


@pytest.fixture
def kubeconfig(fake: FakeApi, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "config", fake.url)  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _no_ambient_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Never pick up the developer's real cluster.
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


# connect(): finding the kubeconfig, the context and its namespace


def test_connect_uses_the_context_namespace(kubeconfig: Path) -> None:
    kube = connect(kubeconfig=str(kubeconfig))
    assert kube.default_namespace == "team-a"
    assert connect(kubeconfig=str(kubeconfig), context="other").default_namespace == "default"


def test_connect_reads_kubeconfig_env_with_a_list_of_files(kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{kubeconfig}")
    assert connect().default_namespace == "team-a"


def test_connect_reads_the_home_kubeconfig(fake: FakeApi, tmp_path: Path) -> None:
    home_config = tmp_path / "home" / ".kube" / "config"
    home_config.parent.mkdir(parents=True)
    write_kubeconfig(home_config, fake.url, namespace="from-home")  # type: ignore[attr-defined]
    assert connect().default_namespace == "from-home"


@pytest.mark.parametrize(
    ("setup", "complaint"),
    [
        ("missing-file", "does not exist"),
        ("env-names-nothing", "names no existing file"),
        ("nothing-at-all", "no kubeconfig found: use --kubeconfig, set KUBECONFIG or create ~/.kube/config"),
        ("bad-context", 'context "nope" not found'),
        ("not-yaml", "cannot read kubeconfig"),
        ("empty", "kubeconfig"),
    ],
)
def test_connect_problems_are_one_line(setup: str, complaint: str, kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs: dict[str, Any] = {}
    if setup == "missing-file":
        kwargs["kubeconfig"] = str(tmp_path / "absent")
    elif setup == "env-names-nothing":
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    elif setup == "bad-context":
        kwargs.update(kubeconfig=str(kubeconfig), context="nope")
    elif setup == "not-yaml":
        bad = tmp_path / "bad"
        bad.write_text("clusters: [unclosed")
        kwargs["kubeconfig"] = str(bad)
    elif setup == "empty":
        empty = tmp_path / "empty"
        empty.write_text("")
        kwargs["kubeconfig"] = str(empty)
    with pytest.raises(KubeconfigError) as caught:
        connect(**kwargs)
    assert complaint in str(caught.value) and "\n" not in str(caught.value)


def test_bad_context_lists_the_known_ones(kubeconfig: Path) -> None:
    with pytest.raises(KubeconfigError, match=r"\(contexts: main, other\)"):
        connect(kubeconfig=str(kubeconfig), context="nope")


def test_in_cluster_without_service_account_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr(connecting.k8s_config, "load_incluster_config", _raise_config_exception)
    with pytest.raises(KubeconfigError, match="in-cluster configuration: no token"):
        connect()
    with pytest.raises(KubeconfigError, match="needs a kubeconfig"):
        connect(context="x")


def _raise_config_exception(**kwargs: Any) -> None:
    raise connecting.ConfigException("no token")


# Kube: the calls on the wire


def test_get_and_list(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("a")
    fake.add("b")
    fake.add("c", namespace="prod")
    kube = connect(kubeconfig=str(kubeconfig))
    assert kube.get_execution("team-a", "a")["metadata"]["name"] == "a"
    assert [o["metadata"]["name"] for o in kube.list_executions("team-a")] == ["a", "b"]
    assert sorted(o["metadata"]["name"] for o in kube.list_executions(None)) == ["a", "b", "c"]
    assert [r["path"] for r in fake.requests][-1] == f"{BASE}/{PLURAL}"  # one cluster-wide call
    assert all(o["kind"] == "Execution" for o in kube.list_executions(None))


def test_list_follows_continue_tokens(fake: FakeApi, kubeconfig: Path) -> None:
    for i in range(7):
        fake.add(f"job-{i}")
    fake.page_size_cap = 3
    kube = connect(kubeconfig=str(kubeconfig))
    assert len(kube.list_executions("team-a")) == 7
    pages = [r for r in fake.requests if r["path"].endswith("/executions")]
    assert [r["query"].get("continue") for r in pages] == [None, "3", "6"]


def _progress(fake: FakeApi, name: str, sequence: int, namespace: str = "team-a") -> None:
    fake.progress[(namespace, name)] = {"metadata": {"name": name, "namespace": namespace},
                                        "status": {"checkpoint": {"state": "Running", "sequence": sequence}}}


def test_progress_of_a_few_is_a_get_each_and_of_many_one_paged_list(fake: FakeApi, kubeconfig: Path) -> None:
    for i in range(12):
        _progress(fake, f"run-{i}", i)
    _progress(fake, "other", 1, namespace="prod")
    fake.page_size_cap = 5
    kube = connect(kubeconfig=str(kubeconfig))
    few = kube.progress_of([("team-a", "run-1"), ("team-a", "missing"), ("prod", "other")])
    assert sorted(few) == [("prod", "other"), ("team-a", "run-1")]
    assert len([r for r in fake.requests if PROGRESS in r["path"]]) == 3, "one GET each"
    fake.requests.clear()
    many = kube.progress_of([("team-a", f"run-{i}") for i in range(10)] + [("team-a", "missing")])
    assert sorted(many) == sorted(("team-a", f"run-{i}") for i in range(10)), "only those asked for"
    assert many[("team-a", "run-7")]["status"]["checkpoint"]["sequence"] == 7
    paths = [(r["path"], r["query"].get("continue")) for r in fake.requests]
    assert paths == [(f"{BASE}/namespaces/team-a/{PROGRESS}", c) for c in (None, "5", "10")], "one list, paged"


def test_progress_of_what_may_not_be_read_is_none_not_an_error(fake: FakeApi, kubeconfig: Path) -> None:
    for i in range(12):
        _progress(fake, f"run-{i}", i)
    fake.progress_forbidden = True
    kube = connect(kubeconfig=str(kubeconfig))
    assert kube.progress_of([("team-a", f"run-{i}") for i in range(12)]) == {}
    assert kube.progress_of([("team-a", "run-1")]) == {}


def test_descendants_are_found_one_generation_per_call(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("p")
    fake.add("p-1", parent="p")
    fake.add("p-2", parent="p")
    fake.add("p-1-1", parent="p-1")
    fake.add("q-1", parent="q")
    kube = connect(kubeconfig=str(kubeconfig))
    found = kube.list_descendants("team-a", ["p"])
    assert sorted(o["metadata"]["name"] for o in found) == ["p-1", "p-1-1", "p-2"]
    selectors = [r["query"]["labelSelector"] for r in fake.requests if "labelSelector" in r["query"]]
    assert selectors == [f"{PARENT_LABEL} in (p)", f"{PARENT_LABEL} in (p-1,p-2)", f"{PARENT_LABEL} in (p-1-1)"]


def test_names_longer_than_a_label_value_are_never_put_in_a_selector(fake: FakeApi, kubeconfig: Path) -> None:
    kube = connect(kubeconfig=str(kubeconfig))
    assert kube.list_children("team-a", ["x" * 64]) == []
    assert not [r for r in fake.requests if "labelSelector" in r["query"]]


def test_patch_is_a_json_merge_patch(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("a")
    kube = connect(kubeconfig=str(kubeconfig))
    patch = {"spec": {"cancel": {"reason": "r", "cascade": True, "force": False}}}
    updated = kube.patch_execution("team-a", "a", patch)
    assert updated["spec"]["cancel"] == patch["spec"]["cancel"] and updated["spec"]["workflow"] == "pkg.mod:main"
    [request] = [r for r in fake.requests if r["method"] == "PATCH"]
    assert request["contentType"] == "application/merge-patch+json" and request["body"] == patch
    assert request["path"] == f"{BASE}/namespaces/team-a/{PLURAL}/a"


def test_pods_by_execution_label(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add_pod("a-pod", "a")
    fake.add_pod("b-pod", "b")
    fake.add_pod("c-pod", "c")
    kube = connect(kubeconfig=str(kubeconfig))
    pods = kube.list_pods("team-a", ["a", "b"])
    assert sorted(p["metadata"]["name"] for p in pods) == ["a-pod", "b-pod"]
    assert pods[0]["metadata"]["labels"] == {EXECUTION_LABEL: "a"}  # wire keys, not snake_case


def test_server_version_and_discovery(fake: FakeApi, kubeconfig: Path) -> None:
    kube = connect(kubeconfig=str(kubeconfig))
    assert kube.server_version() == "v1.31.0"
    assert kube.execution_api_served() is True
    fake.crd_installed = False
    assert kube.execution_api_served() is False


# Kube: failures become one line


def test_not_found(fake: FakeApi, kubeconfig: Path) -> None:
    with pytest.raises(NotFoundError, match=r'^execution "ghost" in namespace "team-a" not found$'):
        connect(kubeconfig=str(kubeconfig)).get_execution("team-a", "ghost")


def test_crd_missing(fake: FakeApi, kubeconfig: Path) -> None:
    fake.crd_installed = False
    with pytest.raises(ApiNotInstalledError, match="is the Flux CRD installed"):
        connect(kubeconfig=str(kubeconfig)).list_executions("team-a")


def test_forbidden_keeps_the_servers_explanation(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("a")
    fake.forbidden.add(("patch", "a"))
    with pytest.raises(ForbiddenError) as caught:
        connect(kubeconfig=str(kubeconfig)).patch_execution("team-a", "a", {"spec": {}})
    assert str(caught.value).startswith(f'executions.{GROUP} "a" is forbidden: User "dev" cannot patch')


def test_unauthorized(fake: FakeApi, tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "wrong", fake.url, token="wrong")  # type: ignore[attr-defined]
    with pytest.raises(UnauthorizedError, match="rejected the credentials"):
        connect(kubeconfig=str(config)).list_executions("team-a")


def test_rejected_change(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("a", spec={"cancel": {"reason": "first", "cascade": True, "force": False}})
    with pytest.raises(RejectedError, match="cancel cannot be changed once set"):
        connect(kubeconfig=str(kubeconfig)).patch_execution("team-a", "a", {"spec": {"cancel": {"reason": "second"}}})


def test_unreachable(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_kubeconfig(tmp_path / "dead", f"http://127.0.0.1:{port}")
    with pytest.raises(UnreachableError) as caught:
        connect(kubeconfig=str(config)).list_executions("team-a")
    message = str(caught.value)
    assert message.startswith(f"cannot reach the API server http://127.0.0.1:{port}: ") and "Connection refused" in message
    assert "HTTPConnection(" not in message and "\n" not in message


def test_translate_api_error_for_other_statuses() -> None:
    from kubernetes.client.exceptions import ApiException

    error = ApiException(status=500, reason="Internal Server Error")
    error.body = json.dumps({"message": "etcd is sad"})
    assert str(kube_module.translate_api_error(error, what="x")) == "API server error 500 Internal Server Error: etcd is sad"
    garbage = ApiException(status=404, reason="Not Found")
    garbage.body = "404 page not found"
    assert isinstance(kube_module.translate_api_error(garbage, what="x"), ApiNotInstalledError)


# The whole CLI over HTTP


def test_cli_cancel_end_to_end(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("etl")
    fake.add("etl-1", parent="etl")
    fake.add("etl-2", parent="etl", phase="Succeeded")
    result = cli("cancel", "etl", "--reason", "nightly", "--kubeconfig", str(kubeconfig))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "etl  cancel requested"
    assert "cancelled:  2 executions (itself and 1 child)" in result.stdout and "etl-1" in result.stdout
    assert fake.executions[("team-a", "etl")]["spec"]["cancel"] == {"reason": "nightly", "cascade": True, "force": False}
    # Once set, a second cancel does not patch again.
    patches = len([r for r in fake.requests if r["method"] == "PATCH"])
    again = cli("cancel", "etl", "--kubeconfig", str(kubeconfig), "-o", "json")
    assert again.exit_code == 0 and json.loads(again.stdout)[0]["alreadyCancelling"] is True
    assert len([r for r in fake.requests if r["method"] == "PATCH"]) == patches


def test_cli_cancel_wait_until_cancelled(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("etl")

    def operator(obj: dict[str, Any]) -> None:  # a very fast operator
        obj["status"]["phase"] = "Cancelled"

    fake.after_patch = operator
    result = cli("cancel", "etl", "--wait", "--timeout", "10s", "-o", "json", "--kubeconfig", str(kubeconfig))
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.stdout)
    assert item["phase"] == "Cancelled" and item["message"] == "cancelled"


def test_cli_cancel_wait_timeout_exits_4(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("etl")
    result = cli("cancel", "etl", "--wait", "--timeout", "1", "--kubeconfig", str(kubeconfig))
    assert result.exit_code == 4
    assert "timed out after 1s: still running: etl" in result.stdout


def test_cli_exit_codes_for_finished_and_missing(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("done", phase="Failed")
    finished = cli("cancel", "done", "--kubeconfig", str(kubeconfig))
    assert finished.exit_code == 3 and "already finished (Failed)" in finished.stdout
    mixed = cli("cancel", "done", "ghost", "--kubeconfig", str(kubeconfig), "-o", "json")
    assert mixed.exit_code == 1
    assert [item["message"] for item in json.loads(mixed.stdout)] == ["already finished (Failed)", 'execution "ghost" in namespace "team-a" not found']


def test_cli_dry_run_changes_nothing(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("etl")
    fake.add("etl-1", parent="etl")
    fake.add_pod("etl-pod", "etl")
    result = cli("cancel", "etl", "--dry-run", "--kubeconfig", str(kubeconfig))
    assert result.exit_code == 0
    assert not [r for r in fake.requests if r["method"] == "PATCH"]
    assert "pod etl-pod  Running" in result.stdout and "etl-1  Running" in result.stdout


def test_cli_namespace_flags(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("a")
    fake.add("b", namespace="prod")
    assert cli("list", "--kubeconfig", str(kubeconfig), "-o", "json").stdout.count('"name"') == 1
    prod = json.loads(cli("list", "-n", "prod", "--kubeconfig", str(kubeconfig), "-o", "json").stdout)
    assert [row["name"] for row in prod] == ["b"]
    everywhere = cli("list", "-A", "--kubeconfig", str(kubeconfig))
    assert everywhere.stdout.splitlines()[0].split() == ["NAMESPACE", "NAME", "PHASE", "REASON", "AGE"]
    assert len(everywhere.stdout.splitlines()) == 3


def test_cli_list_empty_is_a_note(fake: FakeApi, kubeconfig: Path) -> None:
    result = cli("list", "--kubeconfig", str(kubeconfig))
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr.strip() == 'note: no executions found in namespace "team-a"'


def test_cli_status_and_tree(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("etl", status={"checkpoint": {"state": "Running", "sequence": 2, "steps": [{"name": "extract"}], "data": {"n": 1}}})
    fake.add("etl-1", parent="etl", phase="Pending")
    status = cli("status", "etl", "--kubeconfig", str(kubeconfig))
    assert status.exit_code == 0 and "Last step:  extract" in status.stdout and "etl-1" in status.stdout
    data = json.loads(cli("status", "etl", "-o", "json", "--kubeconfig", str(kubeconfig)).stdout)
    assert data["checkpoint"]["stepsCount"] == 1 and data["children"] == [{"name": "etl-1", "phase": "Pending", "result": None, "error": None}]
    tree = cli("tree", "etl", "--kubeconfig", str(kubeconfig))
    assert tree.stdout.splitlines() == ["etl  Running", "└── etl-1  Pending"]


def test_cli_shows_objects_nested_as_deep_as_the_api_server_admits(fake: FakeApi, kubeconfig: Path) -> None:
    """The client's own json.loads dies on them (RecursionError); the plugin decodes through flux_api.nesting
    and shows the deep part as a short stub, in every verb that reads them."""
    fake.splice["@deep@"] = "[" * 9_990 + "]" * 9_990
    fake.add("deep", phase="Failed", spec={"input": {"deep": "@deep@"}},
             status={"message": "spec.input nests deeper than 100 levels", "checkpoint": {"state": "Failed",
                                                                                       "data": "@deep@"}})
    fake.add("deep-kid", parent="deep", phase="Running")
    status = cli("status", "deep", "--kubeconfig", str(kubeconfig))
    assert status.exit_code == 0 and "spec.input nests deeper than 100 levels" in status.stdout, status.stderr
    assert "not decoded" in status.stdout, "the checkpoint data shows as the stub"
    data = json.loads(cli("status", "deep", "-o", "json", "--kubeconfig", str(kubeconfig)).stdout)
    assert data["phase"] == "Failed"
    for verb in (("list",), ("tree", "deep"), ("list", "-o", "json")):
        shown = cli(*verb, "--kubeconfig", str(kubeconfig))
        assert shown.exit_code == 0 and "deep" in shown.stdout, (verb, shown.stderr)
    cancelled = cli("cancel", "deep-kid", "--kubeconfig", str(kubeconfig))
    assert cancelled.exit_code == 0, cancelled.stderr


def test_cli_errors_from_the_server_are_one_line(fake: FakeApi, kubeconfig: Path) -> None:
    missing = cli("status", "ghost", "--kubeconfig", str(kubeconfig))
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr == 'error: execution "ghost" in namespace "team-a" not found\n'
    fake.forbidden.add(("list", "team-a"))
    forbidden = cli("list", "--kubeconfig", str(kubeconfig))
    assert forbidden.exit_code == 1 and len(forbidden.stderr.splitlines()) == 1 and "forbidden" in forbidden.stderr
    fake.crd_installed = False
    assert "is the Flux CRD installed?" in cli("tree", "x", "--kubeconfig", str(kubeconfig)).stderr


def test_cli_version_with_server(fake: FakeApi, kubeconfig: Path) -> None:
    result = cli("version", "-o", "json", "--kubeconfig", str(kubeconfig))
    assert result.exit_code == 0
    assert json.loads(result.stdout) | {"plugin": "x"} == {"plugin": "x", "apiVersion": f"{GROUP}/{VERSION}", "server": "v1.31.0", "apiInstalled": True}


def test_cli_output_has_no_ansi_codes_even_when_colour_is_forced_off(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("a", phase="Failed")
    for env in ({}, {"NO_COLOR": "1"}, {"FORCE_COLOR": "1", "NO_COLOR": "1"}):
        result = cli("list", "--kubeconfig", str(kubeconfig), env=env)
        assert "\x1b" not in result.stdout and "Failed" in result.stdout


def test_force_color_on_a_pipe_colours_output(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("a", phase="Failed")
    assert "\x1b[" in cli("list", "--kubeconfig", str(kubeconfig), env={"FORCE_COLOR": "1"}).stdout
