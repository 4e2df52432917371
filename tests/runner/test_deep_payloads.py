"""The runner and objects nested as deep as the API server admits: it decodes them, refuses payloads nested
deeper than Flux passes on with a clear message, and never dies of a RecursionError."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from flux_api import nesting
from flux_runner.client import ExecutionClient, TokenFile
from flux_runner.errors import NotJsonSerialisable
from flux_runner.jsonvalue import json_value
from flux_runner.main import EXIT_OK, run
from flux_runner.testing import FakeExecutionApi, new_execution

pytestmark = pytest.mark.unit

TOO_DEEP = nesting.PAYLOAD_DEPTH + 1


def nested(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
def termination_log(tmp_path: Path) -> Path:
    path = tmp_path / "termination-log"
    path.touch()
    return path


def run_runner(api: FakeExecutionApi, token: Path, termination_log: Path) -> int:
    return asyncio.run(run(api.client(token), termination_log=termination_log, poll_interval=0.001))


def test_the_client_decodes_an_execution_nested_as_deep_as_the_api_server_admits(token):
    text = '{"metadata": {"name": "demo"}, "spec": {"workflow": "a:b", "input": {"deep": %s}}}' % (
        "[" * 9_990 + "]" * 9_990)

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=text.encode(), headers={"content-type": "application/json"})

    async def get() -> dict:
        http = httpx.AsyncClient(base_url="https://api", transport=httpx.MockTransport(serve))
        async with ExecutionClient(http, TokenFile(token), "ns", "demo") as client:
            return await client.get()

    execution = asyncio.run(get())
    assert execution["spec"]["workflow"] == "a:b" and nesting.too_deep(execution["spec"]["input"])


def test_an_input_nested_too_deep_fails_without_running_the_workflow(token, termination_log):
    api = FakeExecutionApi(new_execution("demo", "flux_examples.quick:main", {"deep": nested(TOO_DEEP - 1)}))
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Failed" and api.checkpoint["steps"] == []
    assert api.checkpoint["error"] == f"spec.input nests deeper than {nesting.PAYLOAD_DEPTH} levels: Flux passes " \
                                      f"on at most {nesting.PAYLOAD_DEPTH}"


def test_an_input_at_the_limit_runs(token, termination_log):
    input_ = {"deep": nested(nesting.PAYLOAD_DEPTH - 2)}
    api = FakeExecutionApi(new_execution("demo", "flux_examples.quick:main", input_))
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Succeeded"


@pytest.mark.parametrize(("field", "value"), [("data", nested(TOO_DEEP)), ("results", {"s": nested(TOO_DEEP)}),
                                              ("steps", [{"name": "s", "result": nested(TOO_DEEP)}])])
def test_a_checkpoint_forged_too_deep_fails_the_execution_once_with_a_message(token, termination_log, field, value):
    api = FakeExecutionApi(new_execution("demo", "flux_examples.quick:main"))
    api.status["checkpoint"] = {"state": "Running", "sequence": 3, field: value}
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Failed"
    assert api.checkpoint["error"].startswith(f"status.checkpoint.{field} ")
    assert f"deeper than {nesting.PAYLOAD_DEPTH} levels: Flux passes on at most" in api.checkpoint["error"]


def test_a_value_the_workflow_makes_too_deep_is_refused_before_anything_recurses_into_it():
    with pytest.raises(NotJsonSerialisable, match="the workflow result nests deeper than 100 levels"):
        json_value(nested(50_000), "the workflow result")
    assert json_value(nested(nesting.PAYLOAD_DEPTH), "ok") == nested(nesting.PAYLOAD_DEPTH)


def test_a_workflow_returning_a_deep_result_fails_with_that_message(token, termination_log, tmp_path, monkeypatch):
    (tmp_path / "deep_workflow.py").write_text(
        "async def main(ctx, input):\n    v = 1\n    for _ in range(20_000):\n        v = [v]\n    return v\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    api = FakeExecutionApi(new_execution("demo", "deep_workflow:main"))
    assert run_runner(api, token, termination_log) == EXIT_OK
    assert api.checkpoint["state"] == "Failed"
    assert "the workflow result nests deeper than 100 levels" in api.checkpoint["error"]
