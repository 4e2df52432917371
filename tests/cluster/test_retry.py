"""Retry and resubmit on a real cluster: a new Execution, the original untouched; a retry skips the steps it
keeps and runs the rest again."""

from __future__ import annotations

import json
import subprocess

import pytest
from fluxtest import Executions, longrun

pytestmark = pytest.mark.cluster


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


@pytest.fixture
def plugin(kube_env):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl-flux", *args], env=kube_env, capture_output=True, text=True, timeout=180)
    return run


def cancelled_after_steps(fx: Executions, name: str, steps: int) -> dict:
    fx.create(longrun(name, steps=8, seconds=0.4))
    fx.wait_step(name, steps=steps)
    fx.cancel(name, "retry it later")
    return fx.wait_phase(name, "Cancelled", timeout=60)


def test_retry_from_a_step_skips_the_ones_before_and_runs_the_rest_again(fx, plugin):
    original = cancelled_after_steps(fx, "flaky", 4)
    done = original["checkpoint"]["steps"]
    made = plugin("retry", "flaky", "--from-step", "step-3", "-n", fx.ns, "--wait", "--timeout", "90s", "-o", "json")
    assert made.returncode == 0, made.stderr
    answer = json.loads(made.stdout)
    assert answer["retryOf"] == "flaky" and answer["skipped"] == ["step-1", "step-2"]
    assert answer["phase"] == "Succeeded"
    retried = fx.get(answer["name"])
    assert retried["spec"]["retryOf"] == "flaky"
    steps = retried["status"]["checkpoint"]["steps"]
    assert [s["name"] for s in steps] == [f"step-{i}" for i in range(1, 9)]
    assert steps[:2] == done[:2], "the steps before step-3 were not run again"
    assert steps[2]["completedAt"] > done[2]["completedAt"], "step-3 ran again"
    assert fx.get("flaky")["status"] == original, "the original is never changed"


def test_a_dry_run_creates_nothing_and_resubmit_starts_from_scratch(fx, plugin):
    cancelled_after_steps(fx, "again", 2)
    dry = plugin("retry", "again", "-n", fx.ns, "--dry-run", "-o", "json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["execution"]["spec"]["seed"]["stepCount"] >= 2
    assert len(fx.custom.list_namespaced_custom_object("workflows.flux.dev", "v1alpha1", fx.ns, "executions")[
        "items"]) == 1, "a dry run creates nothing"
    made = plugin("resubmit", "again", "-n", fx.ns, "--wait", "--timeout", "90s", "-o", "json")
    assert made.returncode == 0, made.stderr
    fresh = fx.get(json.loads(made.stdout)["name"])
    assert "seed" not in fresh["spec"] and "retryOf" not in fresh["spec"] and "cancel" not in fresh["spec"]
    first = fresh["status"]["checkpoint"]["steps"][0]["completedAt"]
    assert first > fx.status("again")["checkpoint"]["steps"][-1]["completedAt"], "every step ran anew"


def test_a_running_execution_is_not_retried(fx, plugin):
    fx.create(longrun("busy", steps=600, seconds=0.5))
    fx.wait_step("busy")
    refused = plugin("retry", "busy", "-n", fx.ns)
    assert refused.returncode == 1 and "is still Running" in refused.stderr, refused
