"""Fixtures of the fault tests, and the results table they fill (tests/faults/RESULTS.md, also printed).

Every test names its row with `@pytest.mark.row(key)` and records its figure through the `result`
fixture; the row's verdict is the test's outcome. The fault tests break the cluster on purpose
(etcd paused, the API server restarted, the process node killed), so `make faults` runs them on a
cluster of their own (.cluster-faults) whose supervisor has the fault hooks (localcluster.faults).
Those marked `kubelet` also run on the real node (`make faults-real`, .cluster-faults-real), whose
table is RESULTS-real.md: the file names and the title follow FLUX_NODE.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fluxtest import Executions
from fluxtest.faults import Operators
from fluxtest.identity import OPERATOR_NAMESPACE
from fluxtest.results import cell, row_hooks
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.faults import ClusterFaults
from localcluster.nodes import choice

HERE = Path(__file__).parent
NODE = choice.node_kind()
# The process node's files and title are the suite's own; another node's run writes files of its own.
SUFFIX = "" if NODE == "process" else f"-{NODE}"
RESULTS = HERE / f"RESULTS{SUFFIX}.md"
TITLE = "# Fault tests: results" if NODE == "process" else f"# Fault tests on the {NODE} node: results"

# (key, fault, must hold, what the figure is), in the order.
ROWS = [
    ("operator-kill", "operator killed -9 mid-cancel, ×10", "0 stuck, each Event once", "time to recover"),
    ("apiserver-restart", "apiserver restarted mid-cancel", "0 lost cancels", "requests in the minute after"),
    ("etcd-pause", "etcd paused 20 s during runs", "at most one step re-run per runner", "re-runs"),
    ("api-unreachable", "API unreachable to the operator for 60 s (drop, not refuse)",
     "all cancels concluded within grace + 30 s after; health red meanwhile", "recovery time"),
    ("cancel-race", "cancel racing completion, ×100", "exactly one terminal phase each", "–"),
    ("concurrent-cancels", "200 concurrent cancels", "0 lost", "–"),
    ("poison", "poison objects beside a healthy one with a 5 s deadline", "the healthy one is Cancelled on time",
     "lateness"),
    ("forgery", "runner forges phase, timestamps, or another object's status", "denied by the API server", "–"),
    ("spawn-bomb", "spawn bomb", "capped, clear error", "objects created"),
    ("node-killed", "process node killed, then cancel", "terminal within grace + escalation margin", "time"),
    ("status-growth", "status growth to the budget", "CheckpointTooLarge once, no restart loop", "restarts"),
    ("recreate", "recreate under the same name", "new execution uses its own pod", "–"),
    ("eviction", "runner pod evicted mid-run", "resumes, no finished step re-run", "re-runs"),
    ("watch-silent", "every open connection of the operator dies silently (its watches with them)",
     "the watches are re-opened; an execution created meanwhile runs", "time to run it"),
    ("watch-refused", "a watch cannot be re-opened (403 after an API server restart); meanwhile a runner pod is "
     "deleted, and no DELETED event can tell", "the operator lives; /healthz red naming it; heals once allowed; "
     "the next listing proves the pod gone: its execution resumes and succeeds", "time to red, to healed"),
]
# On the real node the faults are its own: the kubelet and containerd die with their containers.
REAL_FAULTS = {"node-killed": "the node killed (kubelet, containerd, shims and containers, -9), then cancel"}
_KEYS = {row[0] for row in ROWS}
_results: dict[str, dict] = {}
_selected: list[str] = []  # the rows of the tests this session runs
_began = time.monotonic()


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "row(key): the row of tests/faults/RESULTS.md this test fills")
    config.addinivalue_line("markers", "kubelet: a fault where a real kubelet matters (SIGTERM, SIGKILL, "
                                       "eviction, node loss): make faults-real runs it on the real node")


def pytest_collection_finish(session) -> None:
    _selected.extend(m.args[0] for item in session.items if (m := item.get_closest_marker("row")))


def _entry(key: str) -> dict:
    return _results.setdefault(key, {"figure": "", "notes": [], "outcome": "not run"})


result, pytest_runtest_makereport = row_hooks("row", _entry, f"<one of {_KEYS}>", known=_KEYS)


def rows() -> list[tuple[str, str, str, str]]:
    """Every row on the process node; on another, the rows of the tests it ran, in its own words."""
    if NODE == "process":
        return ROWS
    return [(key, REAL_FAULTS.get(key, fault) if NODE == "real" else fault, must, what)
            for key, fault, must, what in ROWS if key in _selected]


def table() -> str:
    lines = ["| fault | must hold | result | figure |", "|---|---|---|---|"]
    for key, fault, must, what in rows():
        entry = _results.get(key, {"figure": "", "outcome": "not run"})
        figure = entry["figure"] or ("–" if what == "–" else "")
        lines.append(f"| {cell(fault)} | {cell(must)} | {cell(entry['outcome'])} | {cell(figure)} |")
    return "\n".join(lines)


def pytest_sessionfinish(session, exitstatus) -> None:
    if not _results:
        return
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    notes = [f"- **{key}**: {note}" for key, *_ in rows() for note in _results.get(key, {}).get("notes", [])]
    RESULTS.write_text(f"{TITLE}\n\nGenerated by `make faults{SUFFIX}` (tests/faults/conftest.py) on {stamp}."
                       f"{about_node()}\n\n{table()}\n\n## Notes\n\n" + "\n".join(notes) + "\n")
    (HERE / f"RESULTS{SUFFIX}.json").write_text(json.dumps(_results, indent=2) + "\n")


def about_node() -> str:
    """What a run on another node than the process node was: which node, which tests, how long."""
    if NODE == "process":
        return ""
    minutes = (time.monotonic() - _began) / 60
    return (f" FLUX_NODE={NODE}: a kubelet, containerd and runc at the pinned versions run each runner pod as "
            f"containers of {choice.KINDS[NODE].runner_image}. Only the tests marked `kubelet`, where the node's "
            f"own handling of SIGTERM, SIGKILL, eviction and node loss matters; the other rows need no kubelet "
            f"and are in RESULTS.md (the process node). The run took {minutes:.1f} min, the cluster's start and "
            f"stop included.")


def pytest_terminal_summary(terminalreporter) -> None:
    if _results:
        terminalreporter.write_sep("=", f"fault tests: results table (tests/faults/{RESULTS.name})")
        terminalreporter.write_line(table())


# --- fixtures -----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def faults(cluster) -> ClusterFaults:
    injector = ClusterFaults(cluster)
    if not injector.supported:
        pytest.fail(f"the cluster in {cluster.root} was started by a supervisor without the fault hooks "
                    f"(no components.json): stop it (FLUX_CLUSTER_DIR={cluster.root} make cluster-down) and run again")
    return injector


@pytest.fixture(scope="session")
def alone(api, crd_installed) -> None:
    """Fails if an operator watching every namespace (another session's) is active on this cluster: it would
    act on our namespaces too and no fault here would mean anything."""
    try:
        spec = client.CoordinationV1Api(api).read_namespaced_lease("flux-operator", OPERATOR_NAMESPACE).spec
    except ApiException as err:
        if err.status == 404:
            return
        raise
    if spec.holder_identity and spec.renew_time:
        age = (datetime.now(timezone.utc) - spec.renew_time).total_seconds()
        if age <= (spec.lease_duration_seconds or 0) + 2:
            pytest.fail(f"operator {spec.holder_identity} acts on every namespace of this cluster; run the fault "
                        f"tests on a cluster of their own (make faults uses .cluster-faults)")


@pytest.fixture
def operators(operator_env, cluster, namespace, alone, faults) -> Operators:
    ops = Operators(operator_env, cluster, namespace)
    yield ops
    ops.stop_all()


@pytest.fixture
def fx(custom, core, namespace) -> Executions:
    return Executions(custom, core, namespace)


@pytest.fixture(autouse=True)
def _cluster_restored(request, faults):
    """Whatever a test held down comes back before the next one starts."""
    yield
    faults.release_all()
    deadline = time.monotonic() + 120
    for name in ("etcd", "kube-apiserver", *faults.node_components):
        while not faults.healthy(name) and time.monotonic() < deadline:
            time.sleep(0.5)
