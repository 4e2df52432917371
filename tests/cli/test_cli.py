"""The typer layer without a cluster: argument errors are one line on stderr and exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from flux_cli import connecting
from flux_cli import app as shared
from flux_cli.executions import commands as execution_commands
from flux_cli.main import app
from typer.testing import CliRunner

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Argument errors must be found before any connection; make a connection attempt obvious.
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("no connection expected for bad arguments")

    monkeypatch.setattr(shared, "connect", refuse)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env)


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["cancel"], "nothing to cancel: give NAME..., -l SELECTOR or --all"),
        (["cancel", "a", "--all"], "give NAME arguments or --all, not both"),
        (["cancel", "a", "-l", "x=y"], "give NAME arguments or -l/--selector, not both"),
        (["cancel", "--all", "-l", "x=y"], "give --all or -l/--selector, not both"),
        (["cancel", "a", "-A"], "-A/--all-namespaces works with -l or --all"),
        (["cancel", "a", "--wait", "--timeout", "soon"], "--timeout: invalid duration 'soon'"),
        (["cancel", "a", "--wait", "--timeout", "-5s"], "--timeout: invalid duration '-5s'"),
        (["cancel", "a", "--timeout", "5s"], "--timeout only applies with --wait"),
        (["cancel", "a", "--stale", "5 minutes"], "--stale: invalid duration '5 minutes'"),
        (["cancel", "a", "--wait", "--dry-run"], "--wait and --dry-run do not go together"),
        (["cancel", "a", "--reason", " "], "--reason must not be empty"),
        (["cancel", "a", "--reason", "x" * 1025], "--reason is too long (1025 characters, at most 1024)"),
        (["cancel", "Not_Valid"], "invalid execution name 'Not_Valid'"),
        (["cancel", "a", "-o", "yaml"], "'yaml' is not one of 'text', 'json'"),
        (["cancel", "a", "--bogus"], "No such option: --bogus"),
        (["list", "--phase", "Sleeping"], "'Sleeping' is not one of 'pending', 'running'"),
        (["list", "-l", ""], "-l/--selector needs a label selector"),
        (["list", "-o", "wide"], "'wide' is not one of 'text', 'json'"),
        (["status"], "Missing argument 'NAME'"),
        (["status", "a", "b"], "unexpected extra argument"),
        (["status", "UPPER"], "invalid execution name 'UPPER'"),
        (["tree"], "Missing argument 'NAME'"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_1_with_one_line(args: list[str], complaint: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    error_lines = result.stderr.splitlines()
    assert len(error_lines) == 1, result.stderr
    assert error_lines[0].startswith("error: ") and complaint in error_lines[0]
    assert "Traceback" not in result.stderr


def test_usage_errors_point_at_the_command_help() -> None:
    assert "(see 'kubectl flux list --help')" in invoke("list", "--phase", "x").stderr


def test_phase_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def fake_list(kube: object, namespace: str | None, selector: str | None, phase: str | None) -> list[object]:
        seen["phase"] = phase
        return []

    class Kube:
        default_namespace = "ns"

    monkeypatch.setattr(shared, "connect", lambda **kwargs: Kube())
    monkeypatch.setattr(execution_commands.actions, "list_executions", fake_list)
    result = invoke("list", "--phase", "running", "-o", "json")
    assert result.exit_code == 0 and seen["phase"] == "Running" and result.stdout.strip() == "[]"


def test_help_documents_the_exit_codes() -> None:
    result = invoke("cancel", "--help")
    assert result.exit_code == 0
    for line in ["0  done", "1  error", "3  nothing to cancel", "4  --wait timed out", "1, then 4, then 3, then 0"]:
        assert line in result.stdout
    for flag in ["--reason", "--no-cascade", "--force", "--wait", "--timeout", "--dry-run", "--stale", "--kubeconfig", "--context", "--namespace", "--all-namespaces"]:
        assert flag in result.stdout


@pytest.mark.parametrize("verb", ["cancel", "status", "list", "tree"])
def test_every_verb_has_the_kubectl_flags(verb: str) -> None:
    out = invoke(verb, "--help").stdout
    for flag in ["--kubeconfig", "--context", "--namespace", "-n", "--output", "-o"]:
        assert flag in out


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert result.exit_code == 0 and "cancel" in result.stdout and "status" in result.stdout


def test_version_client_only() -> None:
    result = invoke("version", "--client", "-o", "json")
    assert result.exit_code == 0
    assert '"plugin"' in result.stdout and '"apiVersion": "workflows.flux.dev/v1alpha1"' in result.stdout


def test_missing_kubeconfig_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shared, "connect", connecting.connect)
    result = invoke("list", "--kubeconfig", str(tmp_path / "absent"))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: kubeconfig {tmp_path / 'absent'} does not exist"


def test_cancel_failures_are_error_lines_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    from flux_cli.executions.actions import CancelRun
    from flux_cli.executions.cancelling import CancelResult

    missing = CancelResult("gone", "ns", error=True, message='execution "gone" in namespace "ns" not found')
    done = CancelResult("etl", "ns", phase="Running", accepted=True, cancelled_count=1, reason="r",
                        message="cancel requested")

    class Kube:
        default_namespace = "ns"

    monkeypatch.setattr(shared, "connect", lambda **kwargs: Kube())
    monkeypatch.setattr(execution_commands.actions, "cancel", lambda *args, **kwargs: CancelRun([done, missing]))
    text = invoke("cancel", "etl", "gone")
    assert text.exit_code == 1
    assert text.stderr == 'error: execution "gone" in namespace "ns" not found\n'
    assert text.stdout.startswith("etl  cancel requested") and "gone" not in text.stdout
    as_json = invoke("cancel", "etl", "gone", "-o", "json")
    assert as_json.exit_code == 1 and '"name": "gone"' in as_json.stdout
    assert as_json.stderr == text.stderr

    monkeypatch.setattr(execution_commands.actions, "cancel", lambda *args, **kwargs: CancelRun([missing]))
    only = invoke("cancel", "gone")
    assert only.exit_code == 1 and only.stdout == "" and len(only.stderr.splitlines()) == 1
