"""flux-runner end to end against the in-memory API: outcomes, bad input, cancel, restarts, SIGTERM."""

import asyncio
import os
import signal
from pathlib import Path

import pytest
from flux_runner import __version__
from flux_runner.main import EXIT_API_ERROR, EXIT_CONFIG_ERROR, EXIT_OK, main, run
from flux_runner.termination import write_termination_message
from flux_runner.testing import FakeExecutionApi, new_execution

pytestmark = pytest.mark.unit


@pytest.fixture
def termination_log(tmp_path: Path) -> Path:
    path = tmp_path / "termination-log"
    path.touch()  # kubelet provides the file; the runner never creates it
    return path


def run_runner(api: FakeExecutionApi, token: Path, termination_log: Path) -> int:
    return asyncio.run(run(api.client(token), termination_log=termination_log, poll_interval=0.001))


def fake(workflow: str, input=None, **spec) -> FakeExecutionApi:
    return FakeExecutionApi(new_execution("demo", workflow, input, **spec))


def test_a_workflow_that_returns_is_recorded_as_succeeded(token, termination_log):
    api = fake("flux_examples.quick:main", {"name": "ada"})
    assert run_runner(api, token, termination_log) == EXIT_OK
    final = api.checkpoint
    assert final["state"] == "Succeeded"
    assert final["result"] == {"greeting": "hello, ada", "shout": "HELLO, ADA", "length": 10}
    assert [s["name"] for s in final["steps"]] == ["greet", "shout", "measure"]
    # The first step is written at once; the next two, within the checkpoint interval, with the final word.
    assert [c["sequence"] for c in api.checkpoints] == [1, 2] and final["sequence"] == 2
    assert termination_log.read_text() == "Succeeded\n"


def test_a_workflow_that_raises_is_recorded_as_failed(token, termination_log):
    api = fake("flux_examples.failing:main")
    assert run_runner(api, token, termination_log) == EXIT_OK  # no crash loop: retrying cannot help
    assert api.checkpoint["state"] == "Failed"
    assert api.checkpoint["error"] == "RuntimeError: step 2 failed on purpose"
    assert [s["name"] for s in api.checkpoint["steps"]] == ["prepare"]
    assert termination_log.read_text() == "Failed: RuntimeError: step 2 failed on purpose\n"


@pytest.mark.parametrize(("workflow", "message"), [
    ("flux_examples.absent:main", "cannot import module 'flux_examples.absent'"),
    ("flux_examples.quick:absent", "module 'flux_examples.quick' has no attribute 'absent'"),
    ("flux_examples.failing:prepare", "must be an async function (async def prepare(ctx, input)), got function"),
    ("flux_examples.quick:greet", "must accept two arguments (ctx, input)"),
    ("not-a-reference", "invalid spec: spec.workflow: String should match pattern"),
])
def test_a_bad_workflow_reference_fails_with_a_clear_message(token, termination_log, workflow, message):
    api = fake(workflow)
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Failed"
    assert message in api.checkpoint["error"]


@pytest.mark.parametrize(("given", "kind"), [([1, 2], "array"), ("text", "string"), (3, "number")])
def test_input_that_is_not_an_object_fails_without_running_the_workflow(token, termination_log, given, kind):
    api = fake("flux_examples.quick:main", given)
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Failed"
    assert api.checkpoint["error"] == f"spec.input must be a JSON object, got {kind}"
    assert api.checkpoint["steps"] == []


@pytest.mark.parametrize("cancel", [
    {"spec": {"cancel": {"reason": "changed my mind"}}},
    {"metadata": {"annotations": {"workflows.flux.dev/cancel": "changed my mind"}}},
])
def test_an_execution_cancelled_before_start_never_runs(token, termination_log, cancel):
    api = fake("flux_examples.quick:main")
    for section, value in cancel.items():
        api.execution[section].update(value)
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Cancelled"
    assert api.checkpoint["steps"] == []
    assert len(api.checkpoints) == 1
    assert termination_log.read_text() == "Cancelled: changed my mind\n"


def test_a_restart_after_the_final_checkpoint_changes_nothing(token, termination_log):
    api = fake("flux_examples.quick:main")
    api.status["checkpoint"] = {"state": "Succeeded", "sequence": 5, "result": 1}
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert [r.method for r in api.requests] == ["GET"]


def test_a_restart_reuses_steps_completed_before_the_crash(token, termination_log):
    api = fake("flux_examples.quick:main", {"name": "ada"})
    api.status["checkpoint"] = {
        "state": "Running", "sequence": 3,
        "steps": [{"name": "greet", "result": "hello, recorded", "completedAt": "2025-01-01T00:00:00Z"}],
    }
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["result"]["greeting"] == "hello, recorded"
    assert [c["sequence"] for c in api.checkpoints] == [4, 5]  # shout at once; measure with the final word


def test_an_unreachable_api_server_exits_non_zero_for_a_restart(token, termination_log):
    api = fake("flux_examples.quick:main")
    api.failures = [503] * 20
    assert run_runner(api, token, termination_log) == EXIT_API_ERROR
    assert termination_log.read_text().startswith("Error: GET ")


def test_losing_the_api_server_mid_workflow_is_not_recorded_as_a_failure(token, termination_log):
    api = fake("flux_examples.quick:main")

    def api_goes_down(fake_api, record):
        if record.method == "PATCH" and not fake_api.failures:
            fake_api.failures = [500] * 20

    api.hooks.append(api_goes_down)
    assert run_runner(api, token, termination_log) == EXIT_API_ERROR
    assert api.checkpoint["state"] == "Running"  # the restarted pod continues from here
    assert [s["name"] for s in api.checkpoint["steps"]] == ["greet"]


def test_a_result_that_is_not_json_fails_the_execution(token, termination_log, tmp_path, monkeypatch):
    (tmp_path / "odd_workflow.py").write_text("async def main(ctx, input):\n    return {1, 2}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    api = fake("odd_workflow:main")
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Failed"
    assert "the workflow result is not JSON-serialisable" in api.checkpoint["error"]


def test_sigterm_cancels_the_workflow_which_cleans_up_then_is_recorded_cancelled(token, termination_log):
    api = fake("flux_examples.longrun:main", {"steps": 200, "stepSeconds": 0.02})
    unhandled = []
    previous = signal.signal(signal.SIGTERM, lambda *_: unhandled.append("SIGTERM reached Python, not the loop"))

    async def terminate_soon():
        asyncio.get_running_loop().call_later(0.3, os.kill, os.getpid(), signal.SIGTERM)
        return await run(api.client(token), termination_log=termination_log, poll_interval=0.001)

    try:
        exit_code = asyncio.run(terminate_soon())
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert unhandled == []
    assert exit_code == EXIT_OK
    final = api.checkpoint
    done = final["data"]["completedSteps"]
    # No cancel or suspend on the Execution: the workflow is told the pod was interrupted (an eviction, a drain).
    assert final["data"] == {"cleanedUp": True, "completedSteps": done, "stoppedFor": "Interrupted"}
    assert 0 < done < 200
    assert final["state"] == "Cancelled" and final.get("error") is None
    # Every finished step is in the final checkpoint, though most were never written on their own.
    assert final["stepCount"] == done and final["done"]["runs"][0]["last"] == done
    assert len(api.checkpoints) <= 3, "one write at the start, at most one an interval, the final one"
    assert termination_log.read_text() == "Cancelled: received SIGTERM\n"


def test_a_failing_cleanup_is_still_a_cancel_with_the_cleanup_error(token, termination_log, tmp_path, monkeypatch):
    (tmp_path / "messy_workflow.py").write_text(
        "async def main(ctx, input):\n"
        "    try:\n"
        "        await ctx.step('work', lambda: 1)\n"
        "    finally:\n"
        "        raise OSError('disk gone')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    api = fake("messy_workflow:main")

    def user_cancels(fake_api, record):
        if record.method == "GET" and len(fake_api.requests) == 2:  # the step boundary
            fake_api.execution["spec"]["cancel"] = {"reason": "stop"}

    api.hooks.append(user_cancels)
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Cancelled"
    assert api.checkpoint["error"] == "cleanup failed: OSError: disk gone"


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"flux-runner {__version__}"


def test_missing_environment_exits_with_a_config_error(monkeypatch, tmp_path):
    for name in ("FLUX_EXECUTION_NAME", "FLUX_EXECUTION_NAMESPACE", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLUX_SA_DIR", str(tmp_path))
    assert main([]) == EXIT_CONFIG_ERROR


def test_the_termination_message_is_one_line_replaces_the_last_and_is_never_created(tmp_path):
    path = tmp_path / "termination-log"
    path.write_text("an older and much longer message from the previous start\n")
    write_termination_message("Failed: ValueError: two\nlines", path)
    assert path.read_text() == "Failed: ValueError: two lines\n"
    absent = tmp_path / "absent"
    write_termination_message("Succeeded", absent)  # outside a pod: no file, nothing written
    assert not absent.exists()


def test_a_blank_cancel_annotation_is_not_a_cancel(token, termination_log):
    """The operator ignores a blank annotation, so the runner must too, or the two would disagree."""
    api = fake("flux_examples.quick:main")
    api.execution["metadata"].setdefault("annotations", {})["workflows.flux.dev/cancel"] = "  "
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Succeeded"


def test_json_logging_names_the_execution_its_uid_and_pod_on_every_line(capsys):
    from flux_api import logfields
    from flux_runner.main import configure_logging
    import json as json_
    import logging as logging_
    root = logging_.getLogger()
    kept = root.handlers[:]
    try:
        root.handlers.clear()
        configure_logging({"FLUX_LOG_FORMAT": "json", "FLUX_EXECUTION_NAMESPACE": "team-a",
                           "FLUX_EXECUTION_NAME": "etl", "FLUX_EXECUTION_UID": "u-1", "FLUX_POD_NAME": "etl-runner"})
        logging_.getLogger("flux.workflow").info("step %d done", 3)
    finally:
        root.handlers[:] = kept
        logfields.set_process_fields()
    line = json_.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "step 3 done" and line["logger"] == "flux.workflow"
    assert (line["namespace"], line["execution"], line["uid"], line["pod"]) == ("team-a", "etl", "u-1", "etl-runner")


def test_each_step_run_is_a_span_under_the_executions_and_a_skipped_one_is_not(token, termination_log):
    from flux_api import tracecontext
    from flux_runner import tracing
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    parent = tracecontext.of_execution({}, "uid-1", 1.0)[0]
    exporter = InMemorySpanExporter()
    env = {"FLUX_TRACING_ENDPOINT": "http://unused:4318", "TRACEPARENT": parent.traceparent}
    assert tracing.configure(env, exporter=exporter)
    try:
        api = fake("flux_examples.quick:main", {"name": "ada"})
        api.execution["status"] = {"checkpoint": {"state": "Running", "steps": [{"name": "greet", "result": "hello, ada"}]}}
        assert run_runner(api, token, termination_log) == EXIT_OK
    finally:
        tracing.shutdown()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["step shout", "step measure"], "greet was done before: no span"
    assert all(s.context.trace_id == parent.trace_id and s.parent.span_id == parent.span_id for s in spans)
    assert not tracing.configure({"FLUX_TRACING_ENDPOINT": "http://x", "TRACEPARENT": parent.traceparent[:-2] + "00"})
    assert not tracing.configure({"TRACEPARENT": parent.traceparent})


def test_with_tracing_each_line_names_the_trace_and_a_steps_lines_name_the_steps_span(capsys):
    import json as json_
    import logging as logging_

    from flux_api import logfields, tracecontext
    from flux_runner import tracing
    from flux_runner.main import configure_logging
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    parent = tracecontext.of_execution({}, "uid-1", 1.0)[0]
    env = {"FLUX_LOG_FORMAT": "json", "FLUX_EXECUTION_NAME": "etl", "TRACEPARENT": parent.traceparent,
           "FLUX_TRACING_ENDPOINT": "http://unused:4318"}
    root = logging_.getLogger()
    kept = root.handlers[:]
    exporter = InMemorySpanExporter()
    try:
        root.handlers.clear()
        configure_logging(env)
        assert tracing.configure(env, exporter=exporter)
        logging_.getLogger("flux.runner").warning("before")
        with tracing.step("load"):
            logging_.getLogger("flux.workflow").warning("inside")
    finally:
        root.handlers[:] = kept
        tracing.shutdown()
        logfields.set_process_fields()
    before, inside = (json_.loads(line) for line in capsys.readouterr().err.strip().splitlines()[-2:])
    assert before["trace_id"] == inside["trace_id"] == parent.trace_hex
    assert before["span_id"] == f"{parent.span_id:016x}"
    step = exporter.get_finished_spans()[0]
    assert inside["span_id"] == f"{step.context.span_id:016x}" != before["span_id"]
