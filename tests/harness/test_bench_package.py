"""The benchmark suite is a package: its modules import as `bench.*` (no sys.path), and share the test
suite's helpers (fluxtest) and nodes (localcluster.nodes)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from fluxtest.operators import OperatorProcess
from localcluster.layout import Layout, Ports

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
MODULES = ["benchkit", "books", "busy", "cancel_latency", "cascade", "cluster_startup", "cpuwindow", "fairness",
           "kubelet_starts", "observe", "padded_memory", "pod_status_policy", "process_parts", "proxy", "report",
           "report_starts", "rows", "run", "scale", "starts", "steps", "traffic", "verdicts"]


@pytest.mark.parametrize("name", MODULES)
def test_every_bench_module_imports_as_part_of_the_package(name: str) -> None:
    importlib.import_module(f"bench.{name}")


def test_no_bench_module_changes_sys_path() -> None:
    for path in (REPO / "bench").glob("*.py"):
        assert "sys.path" not in path.read_text(), path


def test_the_suite_runs_as_a_module() -> None:
    out = subprocess.run([sys.executable, "-m", "bench.run", "--help"], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert "--parts" in out.stdout


def test_a_bench_operator_is_the_suites_operator_process(monkeypatch) -> None:
    from bench import benchkit

    monkeypatch.delenv("FLUX_RUNNER_IMAGE", raising=False)
    layout = Layout(root=Path("/clusters/c1"), bin=Path("/cache/bin"), ports=Ports(1, 2, 3, 4, 5), node="real")
    started: list[tuple] = []
    monkeypatch.setattr(OperatorProcess, "start", lambda self, *args, **kw: started.append((args, kw)))
    op = benchkit.Operator(layout, ["ns-a", "ns-b"], "x", ("--qps", "0"), command=("flux-operator",)).start()
    assert isinstance(op, OperatorProcess) and op.command == ["flux-operator"] and op.base_args == ()
    assert op.env["FLUX_RUNNER_IMAGE"] == "localhost/flux-examples:dev"  # the real node runs images
    args, kw = started[0]
    assert args == ("--no-metrics-secure", "--leader-election-id", "flux-bench-x", "--namespace", "ns-a",
                    "--namespace", "ns-b", *benchkit.OPERATOR_EXTRA, "--qps", "0")
    assert kw["error"] is benchkit.BenchError and op.log_path == Path("/clusters/c1/logs/operator-x.log")


def test_the_cascade_row_compares_with_bare_pods_and_an_old_result_still_reads() -> None:
    from bench.report import _cascade_row
    new = _cascade_row({"source": "process node", "size": 31, "depth": 4, "fanout": 2,
                        "tree_s": [6.0, 5.0, 7.0], "bare_s": [4.0, 5.0, 4.5]})
    assert (new["ratio"], new["target"], new["met"]) == ("1.33x", "<= 1.5x", True)
    assert "31 bare pods deleted at once" in new["baseline"]
    old = _cascade_row({"source": "process node", "size": 31, "depth": 4, "fanout": 2,
                        "tree_s": [4.0], "single_s": [0.5]})
    assert (old["ratio"], old["met"]) == ("8.00x", False)


def test_the_cascade_counts_the_api_servers_requests_by_verb_and_resource() -> None:
    from bench.cascade import api_requests
    metrics = "\n".join([
        "# TYPE apiserver_request_total counter",
        'apiserver_request_total{code="200",group="workflows.flux.dev",resource="executions",'
        'subresource="status",verb="PATCH",version="v1alpha1"} 100',
        'apiserver_request_total{code="409",group="workflows.flux.dev",resource="executions",'
        'subresource="status",verb="PATCH",version="v1alpha1"} 8',
        'apiserver_request_total{code="201",group="",resource="events",subresource="",verb="POST",version="v1"} 31',
        'apiserver_request_total{code="304",group="",resource="",subresource="apis",verb="GET",version=""} 1',
        'apiserver_request_duration_seconds_sum{resource="events",verb="POST"} 0.5',
    ])
    assert api_requests(metrics) == {"PATCH executions/status": 108, "POST events": 31, "GET apis": 1}


def test_the_busy_row_is_the_p95_ratio() -> None:
    from bench.report import figures
    busy = {"source": "process node", "busyExecutions": 50, "stepSeconds": 0.1,
            "start_s": {"idle": [1.0] * 20, "busy": [1.2] * 19 + [2.0]},
            "p50": {"idle": 1.0, "busy": 1.2}, "p95": {"idle": 1.0, "busy": 1.96},
            "operator_cpu_s": {"idle": [0.1], "busy": [0.5]}}
    [row] = figures({"parts": {"busy": busy}})
    assert (row["ratio"], row["met"]) == ("1.96x", False)
    assert "N=20" in row["figure"]
    assert "load generator" not in row["figure"], "the runners' own traffic, unless said otherwise"
    [generated] = figures({"parts": {"busy": {**busy, "load": "generator"}}})
    assert "their traffic from the load generator" in generated["figure"]


def test_the_deadline_row_says_when_runner_traffic_ran_beside_it() -> None:
    from bench.report import figures
    deadline = {"observed": {"n": 1000, "p50": 0.1, "p99": 0.5, "max": 0.9}, "outcomes": {}, "missing": 0}
    [quiet] = figures({"parts": {"scale": {"deadline": deadline}}})
    assert "checkpoint" not in quiet["figure"] and quiet["met"]
    loaded = {"deadline": deadline, "traffic": {"rate": 50, "executions": 1000, "requests": 30000, "failed": 0}}
    [row] = figures({"parts": {"scale": loaded}})
    assert "while 1000 others checkpoint (50 writes/s)" in row["figure"]


def test_the_starts_row_is_the_ratio_of_medians_against_jobs() -> None:
    from bench.report import figures
    starts = {"source": "real node", "n": 50, "executions_s": [11.0] * 10, "jobs_s": [10.0] * 10,
              "executions_p50": 11.0, "executions_p95": 12.0, "jobs_p50": 10.0, "jobs_p95": 10.5}
    [row] = figures({"parts": {"starts": starts}})
    assert (row["ratio"], row["target"], row["met"]) == ("1.10x", "<= 1.1x", True)
    [slow] = figures({"parts": {"starts": {**starts, "executions_p50": 11.5}}})
    assert slow["met"] is False


def test_the_jobs_with_more_on_their_pods_are_diagnosis_rows_beside_the_starts_row() -> None:
    from bench.report import figures
    starts = {"source": "real node", "n": 40, "executions_s": [11.0] * 20, "jobs_s": [10.0] * 20,
              "executions_p50": 11.0, "executions_p95": 12.0, "jobs_p50": 10.0, "jobs_p95": 10.5,
              "jobs_hardened_s": [10.5] * 20, "jobs_hardened_p50": 10.5, "jobs_hardened_p95": 11.0}
    [row, hardened] = figures({"parts": {"starts": starts}})
    assert row["ratio"] == "1.10x" and "runner pod" in hardened["figure"]
    assert (hardened["ratio"], hardened["target"], hardened["met"]) == ("1.05x", "-", None), "not a target's row"


def test_the_hardened_jobs_pod_is_the_runner_pod_but_for_its_program_and_identity(monkeypatch) -> None:
    from bench import starts
    from flux_api import Execution
    from flux_operator import builders
    from localcluster.nodes import choice

    class RealNode:
        kind, python_image = "real", "localhost/flux-runner:dev"

    monkeypatch.setattr(choice, "of", lambda layout: RealNode())
    job = starts._comparable_job(None, "j", 30, "jobs-hardened-1", "hardened")
    pod = job["spec"]["template"]["spec"]
    ex = Execution.model_validate({"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
                                   "metadata": {"name": "stand-in", "namespace": "bench", "uid": "0"},
                                   "spec": {"workflow": starts.LONGRUN, "gracePeriodSeconds": 30}})
    runner = builders.runner_pod(ex, builders.RunnerSettings())["spec"]
    assert pod["containers"][0]["command"][:2] == ["python3", "-c"] and "serviceAccountName" not in pod
    for key in ("securityContext", "volumes", "enableServiceLinks", "terminationGracePeriodSeconds"):
        assert pod[key] == runner[key], key
    for key in ("securityContext", "volumeMounts", "env", "resources"):
        assert pod["containers"][0][key] == runner["containers"][0][key], key
    bare = starts._comparable_job(None, "j", 30, "jobs-1", "bare")["spec"]["template"]["spec"]
    assert bare["automountServiceAccountToken"] is False and "volumes" not in bare


def test_a_windows_cpu_is_told_by_kind_of_process() -> None:
    from bench.cpuwindow import CLOCK_TICKS, Snapshot, kind_of, recorded, used_between
    assert kind_of("/usr/local/bin/python3 /usr/local/bin/flux-runner") == "runner"
    assert kind_of("python3 -c import flux_runner.main\nimport signal") == "comparable"
    assert kind_of(".venv-operator/bin/python .venv-operator/bin/flux-operator --runner-image x/flux-runner") == \
        "operator"
    assert kind_of("/c/bin/kube-apiserver --kubelet-client-key=k --etcd-servers=e") == "kube-apiserver"
    assert kind_of("/c/bin/containerd-shim-runc-v2 -namespace k8s.io") == "containerd-shim"
    assert kind_of("/usr/bin/sshd") == "other" and kind_of("") == "kernel" and kind_of("/pause") == "pause"
    t = CLOCK_TICKS
    before = Snapshot(used={("10", 1): 5 * t, ("11", 2): t, ("12", 3): t},
                      kinds={("10", 1): "kubelet", ("11", 2): "runner", ("12", 3): "etcd"})
    after = Snapshot(used={("10", 1): 7 * t, ("11", 9): 3 * t, ("13", 4): t},  # 11 is a new process of that pid
                     kinds={("10", 1): "kubelet", ("11", 9): "runner", ("13", 4): "runner"})
    assert used_between(before, after) == {"runner": 4.0, "kubelet": 2.0}, "a pid used again is a new process"
    windows: list = []
    with recorded(windows):
        sum(i * i for i in range(10))
    with recorded(None):
        pass
    assert len(windows) == 1 and isinstance(windows[0], dict), "one window recorded, none without a list"


def test_the_queues_rows_are_the_hand_over_ratio_idle_requests_per_queued_one_and_the_drain_order() -> None:
    from bench.report import figures
    queues = {"source": "KWOK node", "n": 1000, "max": 10, "handover_s": [0.2] * 20, "start_s": [0.1] * 20,
              "handover_p50": 0.2, "handover_p95": 0.3, "start_p50": 0.1, "start_p95": 0.25,
              "idle_requests_before": 30.0, "idle_requests_queued": 129.0, "idle_window_s": 75,
              "drain": [{"inOrder": True}, {"inOrder": False}]}
    hand, idle, drain = figures({"parts": {"queues": queues}})
    assert (hand["ratio"], hand["met"]) == ("1.20x", True) and "N=20" in hand["figure"]
    assert (idle["ratio"], idle["met"]) == ("0.100 per queued execution", False)
    assert (drain["measured"], drain["met"]) == ("1 out of creation order", False)
    [_, quiet, _] = figures({"parts": {"queues": {**queues, "idle_requests_queued": 25.0}}})
    assert quiet["met"] is True, "fewer requests than before the queue is none per queued execution"


def test_the_readme_table_takes_only_the_parts_named_after_a_run() -> None:
    """`run.json:busy,steps`: a run's newer figures for some parts, an older run's for the others."""
    from bench.report import readme_table

    run = REPO / "bench" / "results" / "20261206T051242Z.json"
    whole = readme_table([str(run)])
    some = readme_table([f"{run}:busy,writes"])
    assert "patch -> SIGTERM" in whole and "patch -> SIGTERM" not in some
    rows = [line for line in some.splitlines()[2:] if line.startswith("| ")]
    assert len(rows) == 2 and all("`20261206T051242Z`" in row for row in rows), rows
    assert any(row.startswith("| start p95 among 50") for row in rows), rows


def test_make_bench_ends_by_naming_each_figure_that_misses_with_its_ratio_and_target(tmp_path) -> None:
    """`python -m bench.report --since <stamp>`: the runs made since, and what misses, said plainly."""
    import json

    from bench.report import missed, since

    run = json.loads((REPO / "bench" / "results" / "20261206T060344Z.json").read_text())
    for stamp in ("20261206T000000Z", "20261206T060344Z", "20261206T070000Z"):
        (tmp_path / f"{stamp}.json").write_text(json.dumps(run))
    (tmp_path / "20261206T060344Z-kubelet-pod-starts.json").write_text("{}")
    found = since("20261206T060344Z", tmp_path)
    assert [p.rsplit("/", 1)[1] for p in found] == ["20261206T060344Z.json", "20261206T070000Z.json"]
    said = missed(found[:1]).splitlines()
    assert said[0] == "2 of 3 figures with a target meet it; 1 miss:", said
    assert said[1].startswith("- patch -> SIGTERM p50, p99 (N=20) (real node, `20261206T060344Z`): 34.8 ms"), said
    assert said[1].endswith("1.53x, 1.45x, target <= 1.5x"), said
    met = {**run, "figures": [r for r in run["figures"] if r["met"] is not False]}
    (tmp_path / "met.json").write_text(json.dumps(met))
    assert missed([str(tmp_path / "met.json")]) == "2 of 2 figures with a target meet it."
