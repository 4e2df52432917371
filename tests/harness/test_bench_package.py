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
MODULES = ["benchkit", "cancel_latency", "cluster_startup", "fairness", "observe", "padded_memory", "process_parts",
           "proxy", "report", "run", "scale"]


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
