"""`await ctx.stop_reason()`: a workflow's cleanup tells a cancel (for good) from a suspend or an interruption (the
execution goes on from its checkpoint). A SIGTERM says none of it; the Execution does."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest
from flux_api.names import CANCEL_ANNOTATION
from flux_runner import StopReason
from flux_runner.cancel import stop_reason_of
from flux_runner.main import EXIT_OK, run
from flux_runner.testing import FakeExecutionApi, new_execution

pytestmark = pytest.mark.unit

LONGRUN = "flux_examples.longrun:main"


@pytest.fixture
def termination_log(tmp_path: Path) -> Path:
    path = tmp_path / "termination-log"
    path.touch()  # the kubelet provides it
    return path


def execution(**spec) -> dict:
    return new_execution("demo", LONGRUN, {"steps": 400, "stepSeconds": 0.02}, **spec)


@pytest.mark.parametrize(("spec", "annotations", "expected"), [
    ({}, {}, StopReason.INTERRUPTED),
    ({"suspend": True}, {}, StopReason.SUSPEND),
    ({"suspend": False}, {}, StopReason.INTERRUPTED),
    ({"cancel": {"reason": "stop it"}}, {}, StopReason.CANCEL),
    ({}, {CANCEL_ANNOTATION: "stop it"}, StopReason.CANCEL),
    ({"suspend": True, "cancel": {"reason": "stop it"}}, {}, StopReason.CANCEL),  # a cancel takes a suspend over
])
def test_the_execution_says_why_a_stop_came(spec, annotations, expected):
    body = execution(**spec)
    body["metadata"]["annotations"] = annotations
    assert stop_reason_of(body) is expected


def test_a_deadline_the_operator_recorded_is_a_cancel():
    """activeDeadlineSeconds ran out: the operator's record in status.cancellation is the only word of it."""
    body = execution(suspend=False)
    body["status"] = {"phase": "Cancelling", "cancellation": {"reason": "deadline exceeded", "source": "deadline"}}
    assert stop_reason_of(body) is StopReason.CANCEL


def sigterm_while(api: FakeExecutionApi, token: Path, termination_log: Path, before=lambda: None) -> dict:
    """Runs the runner, lets `before` change the Execution, then sends SIGTERM as the kubelet does."""
    async def terminate_soon():
        def stop():
            before()
            os.kill(os.getpid(), signal.SIGTERM)
        asyncio.get_running_loop().call_later(0.3, stop)
        return await run(api.client(token), termination_log=termination_log, poll_interval=0.001)

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        assert asyncio.run(terminate_soon()) == EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)
    return api.checkpoint["data"]


def test_a_sigterm_for_a_suspend_is_told_as_a_suspend(token, termination_log):
    api = FakeExecutionApi(execution())
    data = sigterm_while(api, token, termination_log, before=lambda: api.execution["spec"].update(suspend=True))
    assert data["stoppedFor"] == "Suspend" and data["cleanedUp"] is True


def test_a_sigterm_for_a_cancel_is_told_as_a_cancel(token, termination_log):
    api = FakeExecutionApi(execution())
    cancel = {"reason": "stop it"}
    data = sigterm_while(api, token, termination_log, before=lambda: api.execution["spec"].update(cancel=cancel))
    assert data["stoppedFor"] == "Cancel"


def test_a_cancel_the_runner_saw_itself_needs_no_read(token, termination_log):
    """spec.cancel read at a step boundary: the switch knows the cause, so the cleanup reads nothing more."""
    api = FakeExecutionApi(execution())

    async def cancel_soon():
        asyncio.get_running_loop().call_later(0.3, api.execution["spec"].update, {"cancel": {"reason": "stop it"}})
        return await run(api.client(token), termination_log=termination_log, poll_interval=0.001)

    assert asyncio.run(cancel_soon()) == EXIT_OK
    assert api.checkpoint["state"] == "Cancelled" and api.checkpoint["data"]["stoppedFor"] == "Cancel"
    reads = [r for r in api.requests if r.method == "GET" and r.path == api.path and not r.query]
    assert len(reads) == 1, "the start's read only (a poll reads the cache, resourceVersion=0)"


def test_an_execution_that_cannot_be_read_is_taken_as_a_cancel(token, termination_log):
    """Compensating after a suspend redoes work; not compensating after a cancel loses it: in doubt, a cancel."""
    api = FakeExecutionApi(execution())

    def unreachable():
        api.execution["spec"]["suspend"] = True
        api.failures.extend([httpx.ConnectError("the API server is gone")] * 4)  # every try of the read

    data = sigterm_while(api, token, termination_log, before=unreachable)
    assert data["stoppedFor"] == "Cancel"


def test_an_api_server_that_never_answers_costs_the_cleanup_only_the_read_bound(token, termination_log, monkeypatch):
    """A hung API server (it accepts the read and says nothing) must not hold the cleanup for the whole grace
    period: past STOP_REASON_READ_SECONDS the answer is a cancel, and the final checkpoint is still written."""
    monkeypatch.setattr("flux_runner.context.STOP_REASON_READ_SECONDS", 0.5)
    api = FakeExecutionApi(execution())
    serve = api.transport().handler
    hung = asyncio.Event()  # set: reads of the Execution hang from now on; never answered

    async def hang_reads(request: httpx.Request) -> httpx.Response:
        if hung.is_set() and request.method == "GET" and request.url.path == api.path and not request.url.query:
            await asyncio.Event().wait()
        return serve(request)

    client = api.client(token)
    client._http = httpx.AsyncClient(base_url="https://fake-apiserver", transport=httpx.MockTransport(hang_reads))

    async def terminate_soon() -> tuple[int, float]:
        def stop():
            api.execution["spec"]["suspend"] = True  # what the read would have said: not a cancel
            hung.set()
            os.kill(os.getpid(), signal.SIGTERM)
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, stop)
        started = loop.time()
        code = await run(client, termination_log=termination_log, poll_interval=0.001)
        return code, loop.time() - started

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        code, seconds = asyncio.run(terminate_soon())
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == EXIT_OK
    assert api.checkpoint["data"]["stoppedFor"] == "Cancel"
    assert seconds < 5, f"the cleanup waited {seconds:.1f} s for an answer that never came"


def test_a_timeout_that_runs_out_in_the_workflows_cleanup_is_a_timeout_error(token, termination_log):
    """The workflow's own `asyncio.timeout` in its cleanup (after the SIGTERM): on 3.11.2 the interpreter's raises
    CancelledError and the cleanup would end there; the runner installs one that keeps its word."""
    api = FakeExecutionApi(new_execution("demo", LONGRUN, {"steps": 400, "stepSeconds": 0.02, "cleanupTimeout": 0.2}))
    data = sigterm_while(api, token, termination_log)
    assert data["cleanupWait"] == "TimeoutError" and data["cleanedUp"] is True
