"""`kubectl flux logs`: the runner's log through the API server, as users run the plugin."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from fluxtest import Executions, longrun, manifest

pytestmark = pytest.mark.cluster


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


@pytest.fixture
def flux(kube_env, namespace):
    env = {**kube_env, "NO_COLOR": "1"}

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl-flux", "logs", *args, "-n", namespace], env=env, capture_output=True,
                              text=True, timeout=timeout)
    return run


def error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_prints_the_runners_log(fx, flux):
    fx.create(manifest("quick", "flux_examples.quick:main", {"name": "logs"}))
    fx.wait_phase("quick", "Succeeded")
    result = flux("quick")
    assert result.returncode == 0, result.stderr
    assert f"execution {fx.ns}/quick, pod quick-runner" in result.stdout
    assert result.stdout.rstrip().endswith("finished: Succeeded")
    assert result.stderr == ""


def test_follow_waits_for_the_pod_and_follows_a_retry_to_the_end(fx, flux):
    # Each run works 2 s, the first fails; -f starts before any pod exists.
    fx.create(manifest("flaky", "flux_examples.flaky:main", {"failures": 1, "runSeconds": 2},
                       retry={"limit": 2, "backoffSeconds": 1}))
    result = flux("flaky", "-f")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "pod flaky-runner\n" in out and "pod flaky-runner-1\n" in out, out
    first, second = out.index("run 1 works for 2s"), out.index("run 2 works for 2s")
    assert first < out.index("transient failure in run 1") < second, "the failed run's end, then the retry"
    assert out.rstrip().endswith("finished: Succeeded")
    assert "runner pod flaky-runner-1 (a new attempt) follows flaky-runner" in result.stderr
    assert "execution flaky finished: Succeeded" in result.stderr
    assert fx.phase("flaky") == "Succeeded"


def test_no_such_execution(fx, flux):
    assert 'execution "nothere" not found' in error_line(flux("nothere"))


def test_pending_without_f_says_there_is_no_log_yet(fx, flux):
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fx.create(manifest("later", "flux_examples.quick:main", startAt=later))
    fx.wait_phase("later", "Pending")
    line = error_line(flux("later"))
    assert "execution later is Pending: no runner pod yet" in line and "use -f" in line


def test_after_the_pod_is_gone_the_log_is_gone_and_the_status_shown(fx, flux):
    fx.create(longrun("gone"))
    fx.wait_step("gone")
    fx.cancel("gone", "enough")
    fx.wait_phase("gone", "Cancelled")
    line = error_line(flux("gone"))
    assert "the log of execution gone is gone: its runner pod gone-runner no longer exists" in line
    assert "phase Cancelled; outcome Graceful" in line
