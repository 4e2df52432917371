"""ctx.spawn when the operator could not give the workflow its child's result: the name belongs to another
Execution, or the result was left on the child (the mirrored results' budget). A clear error, never a wait."""

import pytest
from flux_runner.errors import ChildFailed, ChildResultNotMirrored, SpawnConflict
from flux_runner.testing import FakeExecutionApi, new_execution
from tests.runner.test_context import run_workflow

pytestmark = pytest.mark.unit


@pytest.fixture
def api() -> FakeExecutionApi:
    return FakeExecutionApi(new_execution("parent", "tests:unused"))


def operator_answers(**entry):
    """A hook that plays the operator: each spawn request gets this entry in status.children."""
    def answer(api, _record) -> None:
        children = api.status.setdefault("children", [])
        known = {child["name"] for child in children}
        for request in api.status.get("spawnRequests") or []:
            if request["name"] not in known:
                children.append({"name": request["name"], **entry})
    return answer


async def spawn_kid(ctx, input):
    return await ctx.spawn("flux_examples.quick:main", {}, name="kid")


def test_a_taken_name_raises_spawn_conflict_naming_it(api, token):
    taken = "the name parent-kid is taken by an Execution this one did not spawn: pass another name= to ctx.spawn"
    api.hooks.append(operator_answers(phase="Failed", reason="NameTaken", error=taken))
    task, _ = run_workflow(api, token, spawn_kid)
    with pytest.raises(SpawnConflict, match="cannot spawn 'parent-kid': the name parent-kid is taken"):
        task.result()


def test_a_result_left_on_the_child_raises_saying_where_it_is(api, token):
    api.hooks.append(operator_answers(phase="Succeeded", resultOmitted=122_902))
    task, _ = run_workflow(api, token, spawn_kid)
    with pytest.raises(ChildResultNotMirrored) as raised:
        task.result()
    message = str(raised.value)
    assert "parent-kid succeeded" in message and "122,902 bytes" in message and "not mirrored" in message
    assert "status.checkpoint.result of Execution parent-kid" in message
    assert (raised.value.name, raised.value.size) == ("parent-kid", 122_902)


@pytest.mark.parametrize("reason", ["TooDeep", "Refused"])
def test_a_child_that_was_never_made_fails_the_spawn_with_the_operators_reason(api, token, reason):
    api.hooks.append(operator_answers(phase="Failed", reason=reason, error=f"refused: {reason}"))
    task, _ = run_workflow(api, token, spawn_kid)
    with pytest.raises(ChildFailed, match=f"ended Failed: refused: {reason}"):
        task.result()
