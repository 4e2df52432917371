"""Traces end to end in a real Jaeger (pinned, built from the Go module proxy; memory storage, OTLP/HTTP and
its query API on loopback): an operator with --tracing-endpoint, a tree of executions cancelled at its root,
and the trace found through Jaeger's query API with the root's span, its cancel sequence, its runner's step
spans and its children's spans under it. The operator is a second one, serving only a namespace of its own
(the chart's RBAC for that namespace alone), so the session's operator never touches it."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
import yaml
from flux_api import tracecontext
from fluxtest import Executions, policies, wait_for
from fluxtest import identity as ids
from fluxtest.namespaces import fresh_namespace
from fluxtest.operators import OperatorProcess
from localcluster.jaeger import jaeger_config
from localcluster.layout import binaries_dir
from localcluster.procs import free_port, stop

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def jaeger(cluster, tmp_path_factory):
    work = tmp_path_factory.mktemp("jaeger")
    otlp, query, grpc = free_port(), free_port(), free_port()
    (work / "config.yaml").write_text(yaml.safe_dump(jaeger_config(otlp, query, grpc)))
    log = open(cluster.logs / "jaeger.log", "ab")
    proc = subprocess.Popen([str(binaries_dir(with_jaeger=True) / "jaeger"), "--config",
                             f"file:{work / 'config.yaml'}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{query}"
    try:
        wait_for(lambda: _get(f"{base}/api/services") is not None, timeout=60, what="Jaeger's query API")
        yield {"otlp": f"http://127.0.0.1:{otlp}", "query": base}
    finally:
        stop(proc, timeout=30)  # SIGKILL if it outlives the SIGTERM: a slow shutdown is no test's failure
        log.close()


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return None


@pytest.fixture(scope="module")
def traced(cluster, api, core, custom, kube_env, kubectl, crd_installed, jaeger):
    """A namespace served only by an operator that traces."""
    with fresh_namespace(core, enabled=False) as ns:
        release = ids.unique_release()
        who = ids.install(cluster, api, kube_env, "--set", f"watchNamespaces={{{ns}}}", release=release,
                          account=f"{release}-op")
        op = OperatorProcess(who.operator_env(kube_env), cluster.logs)
        op.log_path = cluster.logs / f"traced-{who.account}.log"
        try:
            with policies.also_operators(kubectl, who.user):
                op.start("--namespace", ns, "--leader-election-id", who.account,
                         "--tracing-endpoint", jaeger["otlp"])
                try:
                    yield Executions(custom, core, ns)
                finally:
                    op.stop()
        finally:
            ids.remove(kube_env, who)


def test_a_cancelled_tree_is_one_trace_with_steps_cancel_spans_and_children(traced, jaeger):
    fx = traced
    fx.spawn_tree()
    root_uid = fx.get("tree")["metadata"]["uid"]
    child_uid = fx.get("tree-left")["metadata"]["uid"]
    leaf_uid = fx.get("tree-left-leaf")["metadata"]["uid"]
    fx.cancel("tree", "traced")
    assert fx.wait_phase("tree", "Cancelled", timeout=90)["cancellation"]["outcome"] == "Graceful"
    trace_hex = tracecontext.of_execution({}, root_uid, 1.0)[0].trace_hex
    root_span = f"{tracecontext.span_id_for(root_uid):016x}"
    child_span = f"{tracecontext.span_id_for(child_uid):016x}"
    leaf_span = f"{tracecontext.span_id_for(leaf_uid):016x}"

    def spans():
        found = _get(f"{jaeger['query']}/api/traces/{trace_hex}") or {}
        data = found.get("data") or []
        return data[0]["spans"] if data else []

    def complete():
        names = {s["operationName"] for s in spans()}
        wanted = {f"execution {fx.ns}/tree", f"execution {fx.ns}/tree-left", f"execution {fx.ns}/tree-left-leaf",
                  "cancel", "cancel.signal"}
        return wanted <= names and any(n.startswith("step ") for n in names)

    wait_for(complete, timeout=60, what="the tree's spans in Jaeger")
    found = spans()
    by_id = {s["spanID"]: s for s in found}
    parents = {s["spanID"]: next((r["spanID"] for r in s.get("references", []) if r["refType"] == "CHILD_OF"), None)
               for s in found}
    assert by_id[root_span]["operationName"] == f"execution {fx.ns}/tree" and parents[root_span] is None
    assert by_id[child_span]["operationName"] == f"execution {fx.ns}/tree-left"
    assert parents[child_span] == root_span, "a child execution is a child span of its parent's"
    cancel = next(s for s in found if s["operationName"] == "cancel" and parents[s["spanID"]] == root_span)
    tags = {t["key"]: t["value"] for t in cancel["tags"]}
    assert tags["flux.cancel.source"] == "spec" and tags["flux.cancel.outcome"] == "Graceful"
    assert {f["value"] for log in cancel["logs"] for f in log["fields"] if f["key"] == "event"} >= {
        "requested", "signalled", "completed"}
    assert parents[leaf_span] == child_span
    leaf_steps = [s for s in found if s["operationName"].startswith("step ") and parents[s["spanID"]] == leaf_span]
    assert len(leaf_steps) >= 1, "the leaf's runner's steps are spans under the leaf's span"
    right_leaf_span = f"{tracecontext.span_id_for(fx.get('tree-right-leaf')['metadata']['uid']):016x}"
    assert all(parents[s["spanID"]] in (leaf_span, right_leaf_span)
               for s in found if s["operationName"].startswith("step ")), "every step under its own execution"
    processes = {p["serviceName"] for p in (_get(f"{jaeger['query']}/api/traces/{trace_hex}")["data"][0]
                                             ["processes"].values())}
    assert processes == {"flux-operator", "flux-runner"}
