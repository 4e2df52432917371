"""`kubectl-flux` as users run it: the real executable against the real cluster.

Each test checks what the command prints (stdout, stderr, exit code) and what it did to the cluster.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pytest
from flux_api import CANCEL_ANNOTATION, GROUP
from fluxtest import Executions, longrun, manifest, wait_for
from fluxtest.namespaces import fresh_namespace
from localcluster.procs import free_port

pytestmark = pytest.mark.cluster

CANCEL_JSON_KEYS = {"name", "namespace", "phase", "accepted", "alreadyFinished", "alreadyCancelling", "cancelledCount",
                    "reason", "children", "message", "error", "timedOut", "dryRun"}
TREE = ["tree", "tree-left", "tree-left-leaf", "tree-right", "tree-right-leaf"]


# --- running the plugin ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def plugin_env(kube_env) -> dict[str, str]:
    # Piped output is never wrapped unless COLUMNS says so; NO_COLOR keeps ANSI codes out for sure.
    env = {key: value for key, value in kube_env.items() if key != "COLUMNS"}
    return {**env, "NO_COLOR": "1"}


@pytest.fixture(scope="session")
def flux(plugin_env):
    assert shutil.which("kubectl-flux", path=plugin_env["PATH"]), "kubectl-flux is installed in the venv"

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl-flux", *args], env=env or plugin_env, capture_output=True, text=True,
                              timeout=timeout)
    return run


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


@pytest.fixture
def other_namespace(core) -> Iterator[str]:
    """A second test namespace, made like the `namespace` fixture's."""
    with fresh_namespace(core) as name:
        yield name


def one_error_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 1, a single `error:` line on stderr naming every needle, no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def cancel_blocks(stdout: str) -> dict[str, dict[str, str]]:
    """The text report of `cancel`: one block per execution, "name  message" then "  field:  value" rows."""
    blocks: dict[str, dict[str, str]] = {}
    for chunk in stdout.strip().split("\n\n"):
        lines = chunk.splitlines()
        name, _, message = lines[0].partition("  ")
        fields, key = {"message": message.strip()}, "message"
        for line in lines[1:]:
            row = re.match(r"^  ([a-z][a-z ]*):(?:\s+(.*))?$", line)
            if row:
                key, fields[row[1]] = row[1], (row[2] or "").strip()
            else:  # a value continued on the next line (children), or the dry run's tree
                fields[key] += "\n" + line.strip()
        blocks[name] = fields
    return blocks


def table(stdout: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a kubectl-style table (no cell in our tests contains two spaces)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    split = [re.split(r"\s{2,}", line.strip()) for line in lines]
    return split[0], split[1:]


def sections(stdout: str) -> dict[str, str]:
    """`status` text: the head block under "", then each "Title:" section's body."""
    found, title = {"": []}, ""
    for line in stdout.splitlines():
        if re.fullmatch(r"[A-Z][a-z]+:", line):
            title = line[:-1]
            found[title] = []
        else:
            found[title].append(line)
    return {key: "\n".join(lines) for key, lines in found.items()}


def field(text: str, label: str) -> str:
    match = re.search(rf"^\s*{label}:\s+(.*)$", text, re.MULTILINE)
    assert match, f"no {label!r} in:\n{text}"
    return match[1].strip()


def labelled(body: dict, **labels: str) -> dict:
    body["metadata"]["labels"] = labels
    return body


def spec_cancel(fx: Executions, name: str) -> dict | None:
    return fx.get(name)["spec"].get("cancel")


def kubeconfig_copy(source: Path, path: Path, change: Callable[[dict], None]) -> Path:
    """A changed copy of our kubeconfig (it is JSON)."""
    config = json.loads(source.read_text())
    change(config)
    path.write_text(json.dumps(config))
    return path


def closed_port_kubeconfig(source: Path, tmp_path: Path) -> tuple[Path, str]:
    """A kubeconfig whose server is a port nobody listens on; and that server's URL."""
    closed = f"https://127.0.0.1:{free_port()}"
    def point_at_closed(config: dict) -> None:
        config["clusters"][0]["cluster"]["server"] = closed
    return kubeconfig_copy(source, tmp_path / "closed.kubeconfig", point_at_closed), closed


# --- cancel: one, several, by label, all ------------------------------------------------------------

def test_cancel_one_reports_the_facts_and_requests_the_cancel(fx, flux):
    fx.create(longrun("job", gracePeriodSeconds=5))
    fx.wait_step("job")
    result = flux("cancel", "job", "-n", fx.ns, "--reason", "bad input")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    block = cancel_blocks(result.stdout)["job"]
    assert block == {"message": "cancel requested", "namespace": fx.ns, "status": "Running",
                     "cancelled": "1 execution (itself)", "reason": "bad input", "children": "<none>"}
    assert spec_cancel(fx, "job") == {"reason": "bad input", "cascade": True, "force": False}
    c = fx.wait_phase("job", "Cancelled")["cancellation"]
    assert (c["reason"], c["source"], c["outcome"]) == ("bad input", "spec", "Graceful")


def end_now(fx: Executions, name: str) -> None:
    """Leaves nothing Cancelling behind for the tests after this one (test_prometheus_alerts counts the oldest
    cancel of every namespace the operator serves): the runner that ignores its SIGTERM is killed with no
    grace, and the execution concludes."""
    pod = fx.pod(name)
    if pod is not None:
        fx.core.delete_namespaced_pod(pod.metadata.name, fx.ns, grace_period_seconds=0)
    fx.wait_phase(name, "Cancelled", timeout=60)


def test_cancel_twice_keeps_the_first_request(fx, flux):
    # Ignores the cancel for its whole grace period: it stays Cancelling while we ask again.
    fx.create(manifest("twice", "flux_examples.stubborn:main", {"onCancel": "ignore"}, gracePeriodSeconds=60))
    fx.wait_step("twice")
    assert flux("cancel", "twice", "-n", fx.ns, "--reason", "first").returncode == 0
    again = flux("cancel", "twice", "-n", fx.ns, "--reason", "second")
    assert again.returncode == 0, again.stderr
    block = cancel_blocks(again.stdout)["twice"]
    assert block["message"].startswith("already cancelling")
    assert block["reason"] == "first" and block["cancelled"] == "0"
    assert spec_cancel(fx, "twice")["reason"] == "first"
    end_now(fx, "twice")


def test_cancel_several_names_in_the_given_order_and_worst_exit_code(fx, flux):
    for name in ("one", "two"):
        fx.create(longrun(name))
    result = flux("cancel", "two", "missing", "one", "-n", fx.ns, "--reason", "several")
    one_error_line(result, '"missing"', "not found")  # the missing one makes the exit code 1 ...
    blocks = cancel_blocks(result.stdout)
    assert list(blocks) == ["two", "one"], "reported in the order given"
    for name in ("one", "two"):  # ... but the others were still cancelled
        assert blocks[name]["message"] == "cancel requested"
        assert spec_cancel(fx, name)["reason"] == "several"


def test_cancel_by_label_selector_touches_only_matches(fx, flux):
    fx.create(labelled(longrun("data-a"), team="data"))
    fx.create(labelled(longrun("data-b"), team="data"))
    fx.create(labelled(longrun("ops"), team="ops"))
    result = flux("cancel", "-l", "team=data", "-n", fx.ns, "--reason", "by label")
    assert result.returncode == 0, result.stderr
    assert sorted(cancel_blocks(result.stdout)) == ["data-a", "data-b"]
    for name in ("data-a", "data-b"):
        assert spec_cancel(fx, name)["reason"] == "by label"
        fx.wait_phase(name, "Cancelled")
    assert spec_cancel(fx, "ops") is None
    assert fx.phase("ops") != "Cancelled"


def test_cancel_all_in_the_namespace_skips_finished_and_other_namespaces(fx, flux, custom, core, other_namespace):
    elsewhere = Executions(custom, core, other_namespace)
    elsewhere.create(longrun("elsewhere"))
    fx.create(manifest("done", "flux_examples.quick:main"))
    fx.create(longrun("a"))
    fx.create(longrun("b"))
    fx.wait_phase("done", "Succeeded")
    result = flux("cancel", "--all", "-n", fx.ns, "-o", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "note: skipped 1 matching execution(s) that already finished"
    assert sorted(r["name"] for r in json.loads(result.stdout)) == ["a", "b"]
    assert spec_cancel(fx, "a") and spec_cancel(fx, "b")
    assert spec_cancel(fx, "done") is None and fx.phase("done") == "Succeeded"
    assert spec_cancel(elsewhere, "elsewhere") is None, "--all stays in its namespace"


def test_cancel_across_all_namespaces_by_label(fx, flux, custom, core, other_namespace):
    mark = f"sweep-{uuid.uuid4().hex[:6]}"
    elsewhere = Executions(custom, core, other_namespace)
    for where in (fx, elsewhere):
        where.create(labelled(longrun("swept"), sweep=mark))
    fx.create(longrun("kept"))
    result = flux("cancel", "-A", "-l", f"sweep={mark}", "-o", "json", "--reason", "sweep")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted((r["namespace"], r["name"]) for r in report) == sorted([(fx.ns, "swept"), (other_namespace, "swept")])
    for where in (fx, elsewhere):
        assert spec_cancel(where, "swept")["reason"] == "sweep"
    assert spec_cancel(fx, "kept") is None


# --- cancel: cascade, force, wait ------------------------------------------------------------------

def test_dry_run_shows_the_tree_with_pods_and_changes_nothing_then_cancel_cascades(fx, flux):
    fx.spawn_tree(grace=5)
    dry = flux("cancel", "tree", "-n", fx.ns, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    block = cancel_blocks(dry.stdout)["tree"]
    assert block["message"] == "would cancel (dry run)"
    assert block["would cancel"] == "5 executions (itself and 4 children)"
    touched = dry.stdout[dry.stdout.index("would touch:"):]
    for name in TREE:
        assert re.search(rf"[ ─]{name}  Running\s*$", touched, re.MULTILINE), name
        assert re.search(rf"pod {name}-runner  Running\s*$", touched, re.MULTILINE), name
    as_json = json.loads(flux("cancel", "tree", "-n", fx.ns, "--dry-run", "-o", "json").stdout)[0]
    assert as_json["dryRun"] is True and as_json["tree"]["pods"] == [{"name": "tree-runner", "phase": "Running"}]
    assert [c["name"] for c in as_json["tree"]["children"]] == ["tree-left", "tree-right"]
    for name in TREE:
        obj = fx.get(name)
        assert "cancel" not in obj["spec"], name
        assert CANCEL_ANNOTATION not in (obj["metadata"].get("annotations") or {}), name
        assert obj["metadata"]["generation"] == 1 and obj["status"]["phase"] == "Running", name

    real = flux("cancel", "tree", "-n", fx.ns, "--reason", "stop the family")
    assert real.returncode == 0, real.stderr
    block = cancel_blocks(real.stdout)["tree"]
    assert block["cancelled"] == "5 executions (itself and 4 children)"
    assert block["children"].splitlines() == ["tree-left", "tree-left-leaf", "tree-right", "tree-right-leaf"]
    fx.wait_phase("tree", "Cancelled", timeout=90)
    for name in TREE:
        assert fx.phase(name) == "Cancelled", name


def test_no_cascade_cancels_only_the_parent(fx, flux):
    fx.spawn_tree(grace=5)
    result = flux("cancel", "tree", "-n", fx.ns, "--no-cascade", "--wait", "--timeout", "60s")
    assert result.returncode == 0, result.stderr
    block = cancel_blocks(result.stdout)["tree"]
    assert (block["status"], block["cancelled"], block["children"]) == ("Cancelled", "1 execution (itself)", "<none>")
    assert spec_cancel(fx, "tree")["cascade"] is False
    # With a cascade the parent only ends after its children; here they are untouched and still working.
    for name in TREE[1:]:
        assert "cancel" not in fx.get(name)["spec"], name
    done = len(fx.live_status("tree-left-leaf")["checkpoint"]["steps"])
    fx.wait_step("tree-left-leaf", steps=done + 2)
    assert fx.phase("tree-right-leaf") == "Running"


def test_force_kills_without_waiting_for_the_grace_period(fx, flux):
    # stubborn has no step boundary where the runner could notice the cancel itself and end Graceful.
    fx.create(manifest("forced", "flux_examples.stubborn:main", {"onCancel": "ignore"}, gracePeriodSeconds=600))
    fx.wait_step("forced")
    started = time.monotonic()
    result = flux("cancel", "forced", "-n", fx.ns, "--force", "--wait", "--timeout", "60s")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 20, "the 600s grace period was skipped"
    assert spec_cancel(fx, "forced")["force"] is True
    status = fx.status("forced")
    assert status["phase"] == "Cancelled" and status["cancellation"]["outcome"] == "Killed"
    assert fx.pod("forced") is None


def test_wait_returns_once_cancelled(fx, flux):
    fx.create(longrun("waited", gracePeriodSeconds=5))
    fx.wait_step("waited")
    result = flux("cancel", "waited", "-n", fx.ns, "--wait")
    assert result.returncode == 0, result.stderr
    block = cancel_blocks(result.stdout)["waited"]
    assert (block["message"], block["status"]) == ("cancelled", "Cancelled")
    status = fx.status("waited")  # no waiting here: the command already did
    assert status["phase"] == "Cancelled" and status["cancellation"]["outcome"] == "Graceful"


def test_wait_timeout_exits_4_while_a_stubborn_workflow_uses_its_grace(fx, flux):
    fx.create(manifest("stubborn", "flux_examples.stubborn:main", {"onCancel": "ignore"}, gracePeriodSeconds=60))
    fx.wait_step("stubborn")
    started = time.monotonic()
    result = flux("cancel", "stubborn", "-n", fx.ns, "--wait", "--timeout", "1s")
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert time.monotonic() - started < 15
    block = cancel_blocks(result.stdout)["stubborn"]
    assert block["message"] == "timed out after 1s: still running: stubborn"
    assert fx.phase("stubborn") == "Cancelling"
    assert spec_cancel(fx, "stubborn") is not None, "the request stands; only the wait gave up"
    end_now(fx, "stubborn")


# --- cancel: --stale ----------------------------------------------------------------------------------

def idle_seconds(fx: Executions, name: str) -> float:
    """Seconds since the execution last showed progress (checkpoint, else start)."""
    status = fx.live_status(name)
    stamp = (status.get("checkpoint") or {}).get("updatedAt") or status["startedAt"]
    return (datetime.now(UTC) - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()


def test_stale_skips_fresh_executions(fx, flux):
    fx.create(longrun("fresh"))
    fx.wait_phase("fresh", "Running")
    result = flux("cancel", "fresh", "-n", fx.ns, "--stale", "1h")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.strip() == "note: skipped 1 execution(s) with progress in the last 1h: fresh"
    assert spec_cancel(fx, "fresh") is None
    now = flux("cancel", "fresh", "-n", fx.ns, "--stale", "0s")
    assert now.returncode == 0, now.stderr
    assert spec_cancel(fx, "fresh") is not None


def test_stale_cancels_only_what_stopped_progressing(fx, flux):
    # One step of 10 minutes: no checkpoint after the start; the other checkpoints every half second.
    fx.create(labelled(longrun("idle", steps=1, seconds=600), batch="nightly"))
    fx.create(labelled(longrun("busy"), batch="nightly"))
    fx.wait_phase("idle", "Running")
    fx.wait_step("busy")
    wait_for(lambda: idle_seconds(fx, "idle") >= 4, timeout=30, what="idle to be quiet for 4s")
    result = flux("cancel", "-l", "batch=nightly", "-n", fx.ns, "--stale", "3s", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert [r["name"] for r in json.loads(result.stdout)] == ["idle"]
    assert "skipped 1 execution(s) with progress in the last 3s: busy" in result.stderr
    assert spec_cancel(fx, "idle") is not None
    assert spec_cancel(fx, "busy") is None


# --- cancel: output, exit codes, errors -------------------------------------------------------------

def test_json_output_parses_with_every_key(fx, flux):
    fx.create(longrun("js"))
    result = flux("cancel", "js", "-n", fx.ns, "-o", "json", "--reason", "as json")
    assert result.returncode == 0, result.stderr
    [report] = json.loads(result.stdout)
    assert set(report) == CANCEL_JSON_KEYS
    assert (report["name"], report["namespace"], report["accepted"], report["reason"]) == ("js", fx.ns, True, "as json")
    assert (report["cancelledCount"], report["children"], report["error"], report["dryRun"]) == (1, [], False, False)


def test_already_finished_exits_3_and_patches_nothing(fx, flux):
    fx.create(manifest("done", "flux_examples.quick:main"))
    fx.wait_phase("done", "Succeeded")
    result = flux("cancel", "done", "-n", fx.ns)
    assert result.returncode == 3, (result.stdout, result.stderr)
    block = cancel_blocks(result.stdout)["done"]
    assert (block["message"], block["status"], block["cancelled"]) == ("already finished (Succeeded)", "Succeeded", "0")
    assert spec_cancel(fx, "done") is None and fx.phase("done") == "Succeeded"
    as_json = flux("cancel", "done", "-n", fx.ns, "-o", "json")
    assert as_json.returncode == 3 and json.loads(as_json.stdout)[0]["alreadyFinished"] is True


def test_not_found_is_one_error_line(fx, flux):
    for args in (["cancel", "ghost"], ["status", "ghost"], ["tree", "ghost"]):
        result = flux(*args, "-n", fx.ns)
        one_error_line(result, f'execution "ghost" in namespace "{fx.ns}" not found')
        assert result.stdout == "", args


def test_unreachable_server_is_one_error_line_and_fast(flux, kubeconfig, tmp_path):
    path, closed = closed_port_kubeconfig(kubeconfig, tmp_path)
    for args in (["cancel", "x"], ["list"], ["status", "x"], ["tree", "x"], ["cancel", "--all", "-A"]):
        started = time.monotonic()
        result = flux(*args, "--kubeconfig", str(path))
        one_error_line(result, f"cannot reach the API server {closed}")
        assert time.monotonic() - started < 15, args


@pytest.fixture
def token_kubeconfig(kubectl, kubeconfig, tmp_path):
    """A kubeconfig for a ServiceAccount (token + the cluster's CA), with optional read rights."""
    def make(namespace: str, account: str, *verbs: str) -> Path:
        kubectl("create", "serviceaccount", account, "-n", namespace)
        if verbs:
            kubectl("create", "role", account, "-n", namespace, f"--verb={','.join(verbs)}",
                    f"--resource=executions.{GROUP}")
            kubectl("create", "rolebinding", account, "-n", namespace, f"--role={account}",
                    f"--serviceaccount={namespace}:{account}")
        token = kubectl("create", "token", account, "-n", namespace, "--duration=10m").stdout.strip()

        def as_account(config: dict) -> None:
            # Same cluster entry (server + CA file); the user is now the token.
            config["users"] = [{"name": account, "user": {"token": token}}]
            config["contexts"][0]["context"].update(user=account, namespace=namespace)
        return kubeconfig_copy(kubeconfig, tmp_path / f"{account}.kubeconfig", as_account)
    return make


def test_forbidden_is_one_error_line(fx, flux, token_kubeconfig):
    fx.create(longrun("guarded"))
    nobody = token_kubeconfig(fx.ns, "nobody")
    for args in (["cancel", "guarded"], ["status", "guarded"], ["list"], ["tree", "guarded"], ["cancel", "--all"]):
        result = flux(*args, "--kubeconfig", str(nobody))
        one_error_line(result, "forbidden", f"system:serviceaccount:{fx.ns}:nobody")
        assert result.stdout == "", args
    # May read but not patch: status works, cancel is refused and changes nothing.
    reader = token_kubeconfig(fx.ns, "reader", "get", "list")
    assert flux("status", "guarded", "--kubeconfig", str(reader)).returncode == 0
    result = flux("cancel", "guarded", "--kubeconfig", str(reader))
    one_error_line(result, "forbidden", "cannot patch")
    assert spec_cancel(fx, "guarded") is None


# --- kubeconfig, context, namespace ---------------------------------------------------------------

def test_kubeconfig_flag_replaces_the_environment(fx, flux, plugin_env, kubeconfig, tmp_path):
    fx.create(longrun("configured"))
    bare = {key: value for key, value in plugin_env.items() if key not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    bare["HOME"] = str(tmp_path)  # no ~/.kube/config either
    lost = flux("list", "-n", fx.ns, env=bare)
    one_error_line(lost, "no kubeconfig found")
    found = flux("list", "-n", fx.ns, "--kubeconfig", str(kubeconfig), env=bare)
    assert found.returncode == 0, found.stderr
    assert table(found.stdout)[1][0][0] == "configured"
    missing = flux("list", "--kubeconfig", str(tmp_path / "absent"))
    one_error_line(missing, "does not exist")


def test_context_flag_picks_the_context_and_its_namespace(fx, flux, kubeconfig, tmp_path):
    fx.create(longrun("contextual"))
    def add_context(config: dict) -> None:
        # The current context keeps namespace "default"; the extra one points at the test namespace.
        current = config["contexts"][0]
        config["contexts"].append({"name": "h5-tests", "context": {**current["context"], "namespace": fx.ns}})
    path = kubeconfig_copy(kubeconfig, tmp_path / "two-contexts.kubeconfig", add_context)
    default = flux("cancel", "contextual", "--kubeconfig", str(path))
    one_error_line(default, 'execution "contextual" in namespace "default" not found')
    result = flux("cancel", "contextual", "--kubeconfig", str(path), "--context", "h5-tests", "--reason", "by context")
    assert result.returncode == 0, result.stderr
    assert cancel_blocks(result.stdout)["contextual"]["namespace"] == fx.ns
    assert spec_cancel(fx, "contextual")["reason"] == "by context"
    unknown = flux("list", "--kubeconfig", str(path), "--context", "nope")
    one_error_line(unknown, 'context "nope" not found', "h5-tests")


# --- status, list, tree, version -------------------------------------------------------------------

def test_status_of_a_cancelled_execution(fx, flux):
    fx.create(longrun("shown", gracePeriodSeconds=5))
    fx.wait_step("shown", steps=2)
    fx.cancel("shown", "to be shown")
    fx.wait_phase("shown", "Cancelled")
    result = flux("status", "shown", "-n", fx.ns)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    part = sections(result.stdout)
    head = part[""]
    assert (field(head, "Name"), field(head, "Namespace"), field(head, "Phase")) == ("shown", fx.ns, "Cancelled")
    assert field(head, "Workflow") == "flux_examples.longrun:main" and field(head, "Pod") == "shown-runner"
    header, rows = table(part["Conditions"])
    assert header[:4] == ["TYPE", "STATUS", "REASON", "AGE"]
    assert {row[0]: row[2] for row in rows} == {"Started": "RunnerStarted", "CancelRequested": "BySpec",
                                                 "Finished": "Cancelled"}
    cancellation = part["Cancellation"]
    assert (field(cancellation, "Reason"), field(cancellation, "Source"), field(cancellation, "Outcome")) == (
        "to be shown", "spec", "Graceful")
    assert (field(cancellation, "Cascade"), field(cancellation, "Force")) == ("yes", "no")
    checkpoint = part["Checkpoint"]
    assert field(checkpoint, "State") == "Cancelled"
    assert int(field(checkpoint, "Steps")) >= 2
    assert "cleanedUp" in field(checkpoint, "Data")
    assert part["Children"].strip() == "<none>"

    as_json = json.loads(flux("status", "shown", "-n", fx.ns, "-o", "json").stdout)
    assert as_json["phase"] == "Cancelled" and as_json["cancelRequest"]["reason"] == "to be shown"
    assert as_json["cancellation"]["outcome"] == "Graceful" and as_json["checkpoint"]["state"] == "Cancelled"
    assert as_json["checkpoint"]["data"] == {"cleanedUp": True, "completedSteps": as_json["checkpoint"]["stepsCount"],
                                             "stoppedFor": "Cancel"}


def test_status_before_the_operator_handles_a_cancel_and_children(fx, flux):
    fx.create(longrun("fresh"))
    fresh = sections(flux("status", "fresh", "-n", fx.ns).stdout)
    assert fresh["Cancellation"].strip() == "not requested"
    fx.spawn_tree(grace=5)
    part = sections(flux("status", "tree", "-n", fx.ns).stdout)
    header, rows = table(part["Children"])
    assert header == ["NAME", "PHASE"] and rows == [["tree-left", "Running"], ["tree-right", "Running"]]
    children = json.loads(flux("status", "tree-left", "-n", fx.ns, "-o", "json").stdout)["children"]
    assert [(c["name"], c["phase"]) for c in children] == [("tree-left-leaf", "Running")]


def test_list_columns_filters_and_all_namespaces(fx, flux, custom, core, other_namespace):
    fx.create(labelled(manifest("done", "flux_examples.quick:main"), kind="quick"))
    fx.create(longrun("long", cancel={"reason": "listed reason"}))
    Executions(custom, core, other_namespace).create(longrun("far"))
    fx.wait_phase("done", "Succeeded")
    fx.wait_phase("long", "Cancelled")

    header, rows = table(flux("list", "-n", fx.ns).stdout)
    assert header == ["NAME", "PHASE", "REASON", "AGE"]
    assert [row[:3] for row in rows] == [["done", "Succeeded", "Succeeded"], ["long", "Cancelled", "listed reason"]]
    assert all(re.fullmatch(r"\d+[smhdy]\w*", row[3]) for row in rows)

    assert [r[0] for r in table(flux("list", "-n", fx.ns, "--phase", "Cancelled").stdout)[1]] == ["long"]
    assert [r[0] for r in table(flux("list", "-n", fx.ns, "--phase", "succeeded").stdout)[1]] == ["done"]
    assert [r[0] for r in table(flux("list", "-n", fx.ns, "-l", "kind=quick").stdout)[1]] == ["done"]
    nothing = flux("list", "-n", fx.ns, "--phase", "Failed")
    assert nothing.returncode == 0 and nothing.stdout == ""
    assert nothing.stderr.strip() == f'note: no executions found in namespace "{fx.ns}"'

    header, rows = table(flux("list", "-A").stdout)
    assert header == ["NAMESPACE", "NAME", "PHASE", "REASON", "AGE"]
    mine = [row[:2] for row in rows if row[0] in (fx.ns, other_namespace)]
    assert sorted(mine) == sorted([[fx.ns, "done"], [fx.ns, "long"], [other_namespace, "far"]])

    as_json = json.loads(flux("list", "-n", fx.ns, "-o", "json").stdout)
    assert [set(row) for row in as_json] == [{"name", "namespace", "phase", "reason", "createdAt", "age"}] * 2


def test_tree_shows_descendants_with_phases(fx, flux):
    fx.spawn_tree(grace=5)
    result = flux("tree", "tree", "-n", fx.ns)
    assert result.returncode == 0, result.stderr
    lines = [re.sub(r"^[\s│├└─]+", "", line) for line in result.stdout.splitlines()]
    assert lines == [f"{name}  Running" for name in TREE]
    depth = [len(line) - len(line.lstrip(" │├└─")) for line in result.stdout.splitlines()]
    assert depth[0] == 0 and depth[1] == depth[3] < depth[2] == depth[4], "leaves are nested under branches"
    fx.cancel("tree-right", "prune the right branch")
    fx.wait_phase("tree-right-leaf", "Cancelled")
    fx.wait_phase("tree-right", "Cancelled")
    as_json = json.loads(flux("tree", "tree", "-n", fx.ns, "-o", "json").stdout)
    right = as_json["children"][1]
    assert (right["name"], right["phase"], right["reason"]) == ("tree-right", "Cancelled", "prune the right branch")
    assert right["children"][0]["name"] == "tree-right-leaf" and right["children"][0]["phase"] == "Cancelled"
    left = as_json["children"][0]
    assert (left["name"], left["children"][0]["name"]) == ("tree-left", "tree-left-leaf")


def test_version_reports_plugin_server_and_api(flux, kubectl, kubeconfig, tmp_path, crd_installed):
    server = json.loads(kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    mine = metadata.version("flux-operator")
    result = flux("version")
    assert result.returncode == 0, result.stderr
    assert (field(result.stdout, "Plugin"), field(result.stdout, "Server")) == (mine, server)
    assert (field(result.stdout, "Execution API"), field(result.stdout, "API installed")) == (
        "workflows.flux.dev/v1alpha1", "yes")
    assert json.loads(flux("version", "-o", "json").stdout) == {
        "plugin": mine, "apiVersion": "workflows.flux.dev/v1alpha1", "server": server, "apiInstalled": True}
    closed, _ = closed_port_kubeconfig(kubeconfig, tmp_path)
    client_only = flux("version", "--client", "--kubeconfig", str(closed))
    assert client_only.returncode == 0 and field(client_only.stdout, "Plugin") == mine
    assert "Server" not in client_only.stdout
    down = flux("version", "--kubeconfig", str(closed))
    one_error_line(down, "cannot reach the API server")
    assert field(down.stdout, "Plugin") == mine, "the client half is still shown"


# --- as a kubectl plugin ----------------------------------------------------------------------------

def test_kubectl_finds_and_runs_the_plugin(fx, kubectl, kube_env):
    fx.create(longrun("via-kubectl", cancel={"reason": "seen through kubectl"}))
    fx.wait_phase("via-kubectl", "Cancelled")
    plugins = kubectl("plugin", "list", check=False)
    assert str(Path(shutil.which("kubectl-flux", path=kube_env["PATH"]))) in plugins.stdout
    result = kubectl("flux", "list", "-n", fx.ns)
    header, rows = table(result.stdout)
    assert header == ["NAME", "PHASE", "REASON", "AGE"]
    assert rows[0][:3] == ["via-kubectl", "Cancelled", "seen through kubectl"]
    code = kubectl("flux", "cancel", "via-kubectl", "-n", fx.ns, check=False)
    assert code.returncode == 3 and "already finished (Cancelled)" in code.stdout, "exit codes pass through kubectl"
