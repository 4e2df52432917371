"""ctx: steps and their replay after a restart, checkpoints, cancel at step boundaries, spawn."""

import asyncio
import json
import re

import pytest
from flux_runner.cancel import CancelSwitch
from flux_runner.context import create_context
from flux_runner.errors import ChildFailed, DuplicateStep, NotJsonSerialisable, SpawnConflict
from flux_runner.journal import Journal, recorded_checkpoint
from flux_runner.testing import FakeExecutionApi, new_execution, operator_finishes_children

pytestmark = pytest.mark.unit

# One precision for every role (flux_api.timefmt): milliseconds, as the operator writes.
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def api() -> FakeExecutionApi:
    return FakeExecutionApi(new_execution("parent", "tests:unused"))


def run_workflow(api, token, workflow, input=None, interval=0.0):
    """Runs `workflow(ctx, input)` as the runner does: one task the cancel switch can cancel. The checkpoint
    interval is 0 (a write per step) unless given: these tests are about what each write holds."""
    async def go():
        async with api.client(token) as client:
            execution = await client.get()
            switch = CancelSwitch()
            journal = Journal(client, recorded_checkpoint(execution), interval=interval)
            ctx = create_context(client, execution, journal, switch, 0.001)
            task = asyncio.create_task(workflow(ctx, input or {}))
            switch.attach(task)
            await asyncio.wait([task])
            return task, ctx
    return asyncio.run(go())


def after_step(name):
    """A hook condition: the runner just checkpointed step `name`."""
    def matches(record):
        steps = (record.body or {}).get("status", {}).get("checkpoint", {}).get("steps", [])
        return record.method == "PATCH" and steps and steps[-1]["name"] == name
    return matches


# --- steps and checkpoints


def test_each_step_is_checkpointed_with_an_increasing_sequence(api, token):
    async def workflow(ctx, input):
        first = await ctx.step("one", lambda: 1)
        second = await ctx.step("two", asyncio.sleep, 0, first + 1)  # async functions work too
        return second

    task, _ = run_workflow(api, token, workflow)
    assert task.result() == 2
    checkpoints = api.checkpoints
    assert [c["sequence"] for c in checkpoints] == [1, 2]
    assert {c["state"] for c in checkpoints} == {"Running"}
    assert [s["name"] for s in checkpoints[-1]["steps"]] == ["one", "two"]
    assert checkpoints[-1]["results"] == {"one": 1, "two": 2}
    assert checkpoints[-1]["done"] == {"runs": [], "names": ["one", "two"]}
    assert checkpoints[-1]["stepCount"] == 2
    assert all(RFC3339_UTC.match(c["updatedAt"]) for c in checkpoints)
    assert all(RFC3339_UTC.match(s["completedAt"]) for s in checkpoints[-1]["steps"])


def test_a_restart_skips_recorded_steps_and_reuses_their_results(api, token):
    api.status["checkpoint"] = {
        "state": "Running", "sequence": 7, "data": {"kept": True},
        "steps": [{"name": "fetch", "result": {"rows": 3}, "completedAt": "2025-01-01T00:00:00Z"}],
    }
    calls = []

    async def workflow(ctx, input):
        fetched = await ctx.step("fetch", lambda: calls.append("fetch") or {"rows": 99})
        return await ctx.step("count", lambda rows: calls.append("count") or rows * 2, fetched["rows"])

    task, _ = run_workflow(api, token, workflow)
    assert calls == ["count"]  # fetch did not run again
    assert task.result() == 6  # computed from the recorded result
    assert api.checkpoint["sequence"] == 8  # continues after the recorded sequence
    assert [s["name"] for s in api.checkpoint["steps"]] == ["fetch", "count"]
    assert api.checkpoint["data"] == {"kept": True}


def test_completed_steps_include_those_from_before_a_restart(api, token):
    api.status["checkpoint"] = {"state": "Running", "sequence": 1,
                                "steps": [{"name": "fetch", "result": 1, "completedAt": "2025-01-01T00:00:00Z"}]}

    async def workflow(ctx, input):
        before = list(ctx.completed_steps)
        await ctx.step("fetch", lambda: 2)
        await ctx.step("count", lambda: 3)
        return [before, ctx.completed_steps]

    task, _ = run_workflow(api, token, workflow)
    assert task.result() == [["fetch"], ["fetch", "count"]]


def test_a_step_returns_what_a_replay_would_return(api, token):
    async def workflow(ctx, input):
        return await ctx.step("pair", lambda: (1, 2))

    task, _ = run_workflow(api, token, workflow)
    assert task.result() == [1, 2]  # a tuple reads back from JSON as a list


def test_a_result_that_is_not_json_is_a_clear_error(api, token):
    async def workflow(ctx, input):
        await ctx.step("bad", lambda: {"when": object()})

    task, _ = run_workflow(api, token, workflow)
    with pytest.raises(NotJsonSerialisable, match="the result of step 'bad' is not JSON-serialisable"):
        task.result()
    assert api.checkpoints == []


def test_step_names_must_be_unique(api, token):
    async def workflow(ctx, input):
        await ctx.step("same", lambda: 1)
        await ctx.step("same", lambda: 2)

    task, _ = run_workflow(api, token, workflow)
    with pytest.raises(DuplicateStep, match="'same' already ran"):
        task.result()


def test_checkpoint_data_is_stored_and_kept_by_later_steps(api, token):
    async def workflow(ctx, input):
        await ctx.checkpoint({"cursor": 10})
        await ctx.step("after", lambda: None)

    run_workflow(api, token, workflow)
    assert [c["data"] for c in api.checkpoints] == [{"cursor": 10}, {"cursor": 10}]
    assert [c["sequence"] for c in api.checkpoints] == [1, 2]


def test_checkpoint_data_must_be_json(api, token):
    async def workflow(ctx, input):
        await ctx.checkpoint({"ratio": float("nan")})

    task, _ = run_workflow(api, token, workflow)
    with pytest.raises(NotJsonSerialisable, match="checkpoint data"):
        task.result()


# --- cancellation seen through the API server


def cancelling_workflow(ran):
    async def workflow(ctx, input):
        try:
            for index in range(1, 6):
                await ctx.step(f"s{index}", ran.append, index)
        except asyncio.CancelledError:
            ran.append("cleanup" if ctx.cancelled else "cleanup without ctx.cancelled")
            raise
    return workflow


def test_spec_cancel_stops_the_workflow_at_the_next_step_boundary(api, token):
    def user_cancels(fake, record):
        if after_step("s2")(record):
            fake.execution["spec"]["cancel"] = {"reason": "not needed", "cascade": True, "force": False}

    api.hooks.append(user_cancels)
    ran = []
    task, ctx = run_workflow(api, token, cancelling_workflow(ran))
    assert task.cancelled()
    assert ran == [1, 2, "cleanup"]
    with pytest.raises(asyncio.CancelledError):
        ctx.raise_if_cancelled()


def test_the_cancel_annotation_is_seen_by_the_get_at_a_step_boundary(api, token):
    gets = []

    def user_annotates(fake, record):
        if record.method == "GET":
            gets.append(record)
            if len(gets) == 4:  # the runner's own GET, then the boundaries before s1, s2, s3
                fake.execution["metadata"]["annotations"] = {"workflows.flux.dev/cancel": "by annotation"}

    api.hooks.append(user_annotates)
    ran = []
    task, _ = run_workflow(api, token, cancelling_workflow(ran))
    assert task.cancelled()
    assert ran == [1, 2, "cleanup"]  # s3 never started


def test_a_cancel_also_stops_steps_in_a_task_the_workflow_made_itself(api, token):
    def user_cancels(fake, record):
        if after_step("s2")(record):
            fake.execution["spec"]["cancel"] = {"reason": "stop"}

    api.hooks.append(user_cancels)
    ran, seen = [], []

    async def workflow(ctx, input):
        async def steps():
            for index in range(1, 6):
                await ctx.step(f"s{index}", ran.append, index)

        inner = asyncio.create_task(steps())
        try:
            await asyncio.shield(inner)  # the runner's cancel reaches this task, not `inner`
        except asyncio.CancelledError:
            await asyncio.wait([inner])
            seen.append(inner.cancelled())
            raise

    task, _ = run_workflow(api, token, workflow)
    assert task.cancelled()
    assert seen == [True]
    assert ran == [1, 2]


def test_cleanup_steps_still_run_after_a_cancel(api, token):
    api.execution["spec"]["cancel"] = {"reason": "stop"}

    async def workflow(ctx, input):
        try:
            await ctx.step("work", lambda: "never")
        except asyncio.CancelledError:
            await ctx.step("cleanup", lambda: "cleaned")
            raise

    task, _ = run_workflow(api, token, workflow)
    assert task.cancelled()
    assert [s["name"] for s in api.checkpoint["steps"]] == ["cleanup"]


# --- spawn


def test_spawn_requests_a_child_and_returns_its_result(api, token):
    api.hooks.append(operator_finishes_children(result=lambda request: {"double": request["input"]["n"] * 2}))

    async def workflow(ctx, input):
        first = await ctx.spawn("flux_examples.quick:main", {"n": 1})
        second = await ctx.spawn("flux_examples.quick:main", {"n": 2}, name="named")
        return [first, second]

    task, _ = run_workflow(api, token, workflow)
    assert task.result() == [{"double": 2}, {"double": 4}]
    requests = [r.body["status"]["spawnRequests"] for r in api.requests if r.method == "PATCH"]
    assert requests == [  # merge patches replace lists: every patch carries the whole list
        [{"name": "parent-child-1", "workflow": "flux_examples.quick:main", "input": {"n": 1}}],
        [{"name": "parent-child-1", "workflow": "flux_examples.quick:main", "input": {"n": 1}},
         {"name": "parent-named", "workflow": "flux_examples.quick:main", "input": {"n": 2}}],
    ]


def test_spawn_polls_until_the_child_is_terminal(api, token):
    polls = []

    def operator_is_slow(fake, record):
        if record.method == "GET" and fake.status.get("spawnRequests"):
            polls.append(record)
            phase = "Running" if len(polls) < 3 else "Succeeded"
            fake.status["children"] = [{"name": "parent-child-1", "phase": phase, "result": len(polls)}]

    api.hooks.append(operator_is_slow)

    async def workflow(ctx, input):
        return await ctx.spawn("flux_examples.quick:main", {})

    task, _ = run_workflow(api, token, workflow)
    assert task.result() == 3
    assert len(polls) == 3


@pytest.mark.parametrize("phase", ["Failed", "Cancelled"])
def test_a_child_that_does_not_succeed_raises_child_failed(api, token, phase):
    api.hooks.append(operator_finishes_children(phase=phase, error="boom"))

    async def workflow(ctx, input):
        await ctx.spawn("flux_examples.failing:main", {}, name="kid")

    task, _ = run_workflow(api, token, workflow)
    with pytest.raises(ChildFailed, match=f"child execution parent-kid ended {phase}: boom") as caught:
        task.result()
    assert (caught.value.name, caught.value.phase) == ("parent-kid", phase)


def test_after_a_restart_spawn_waits_for_the_child_already_requested(api, token):
    request = {"name": "parent-child-1", "workflow": "flux_examples.quick:main", "input": {"n": 1}}
    api.status["spawnRequests"] = [request]
    api.status["children"] = [{"name": "parent-child-1", "phase": "Succeeded", "result": "earlier"}]

    async def workflow(ctx, input):
        return await ctx.spawn("flux_examples.quick:main", {"n": 1})

    task, _ = run_workflow(api, token, workflow)
    assert task.result() == "earlier"
    assert not [r for r in api.requests if r.method == "PATCH"]  # no duplicate request


def test_reusing_a_child_name_for_other_work_is_a_conflict(api, token):
    api.hooks.append(operator_finishes_children())

    async def workflow(ctx, input):
        await ctx.spawn("flux_examples.quick:main", {"n": 1}, name="kid")
        await ctx.spawn("flux_examples.quick:main", {"n": 2}, name="kid")

    task, _ = run_workflow(api, token, workflow)
    with pytest.raises(SpawnConflict, match="'parent-kid' was already requested"):
        task.result()


def test_concurrent_spawns_are_all_requested(api, token):
    api.hooks.append(operator_finishes_children(result=lambda request: request["name"]))

    async def workflow(ctx, input):
        return await asyncio.gather(*(ctx.spawn("flux_examples.quick:main", {}, name=n) for n in "abc"))

    task, _ = run_workflow(api, token, workflow)
    assert task.result() == ["parent-a", "parent-b", "parent-c"]
    assert [r["name"] for r in api.status["spawnRequests"]] == ["parent-a", "parent-b", "parent-c"]


def test_a_cancel_while_waiting_for_a_child_cancels_the_wait(api, token):
    def user_cancels_once_requested(fake, record):
        if record.method == "GET" and fake.status.get("spawnRequests"):
            fake.execution["spec"]["cancel"] = {"reason": "stop"}

    api.hooks.append(user_cancels_once_requested)

    async def workflow(ctx, input):
        await ctx.spawn("flux_examples.longrun:main", {})

    task, _ = run_workflow(api, token, workflow)
    assert task.cancelled()


@pytest.mark.parametrize(("workflow", "name", "message"), [
    ("flux_examples.quick:main", "Bad_Name", "not a valid Execution name"),
    ("flux_examples.quick:main", "x" * 60, "at most 63 characters"),
    ("not a reference", None, "must look like 'package.module:function'"),
])
def test_a_bad_spawn_is_refused_before_anything_is_requested(api, token, workflow, name, message):
    async def parent(ctx, input):
        await ctx.spawn(workflow, {}, name=name)

    task, _ = run_workflow(api, token, parent)
    with pytest.raises(ValueError, match=message):
        task.result()
    assert not [r for r in api.requests if r.method == "PATCH"]


# --- bounded checkpoint -----------------------------------------------------------------------------

def test_ten_thousand_small_steps_cost_the_same_at_the_end_as_at_the_start(api, token):
    # 10,000 rather than 100,000 (92 s of make test): the bound is the checkpoint's shape, not the count;
    # bench/ times 100,000 steps on the cluster.
    async def workflow(ctx, input):
        for i in range(10_000):
            await ctx.step(f"step-{i}", lambda: None)
        return "done"

    task, _ = run_workflow(api, token, workflow)
    assert task.result() == "done"
    sizes = [len(json.dumps(r.body)) for r in api.requests if r.method == "PATCH"]
    assert len(sizes) == 10_000
    # Past the first 20 (the recent-steps list filling up), only the step numbers' digits grow.
    assert max(sizes[-100:]) <= 1.05 * min(sizes[1000:1100]), "each write costs the same at step 10,000"
    final = api.checkpoint
    assert final["stepCount"] == 10_000 and len(final["steps"]) == 20
    assert final["done"]["runs"] == [{"prefix": "step-", "first": 0, "last": 9_999}]


def test_a_restart_after_many_steps_runs_none_of_them_again(api, token):
    api.status["checkpoint"] = {"state": "Running", "sequence": 5, "stepCount": 50_000,
                                "done": {"runs": [{"prefix": "step-", "first": 0, "last": 49_999}], "names": []},
                                "results": {"step-7": 7}}
    ran = []

    async def workflow(ctx, input):
        seven = None
        for i in range(50_001):
            value = await ctx.step(f"step-{i}", lambda i=i: ran.append(i) or i)
            seven = value if i == 7 else seven
        return seven

    task, _ = run_workflow(api, token, workflow)
    assert ran == [50_000], "only the step that had not finished ran"
    assert task.result() == 7, "a replayed step returns its recorded result"


def test_a_step_result_over_the_budget_fails_the_workflow_once_with_a_clear_reason(api, token):
    async def workflow(ctx, input):
        await ctx.step("small", lambda: 1)
        await ctx.step("huge", lambda: "x" * 300_000)
        return "never"

    task, _ = run_workflow(api, token, workflow)
    error = task.exception()
    from flux_runner.errors import CheckpointTooLarge

    assert isinstance(error, CheckpointTooLarge) and "'huge'" in str(error)
    assert api.checkpoint["results"] == {"small": 1}, "the refused step is not half-recorded"


def test_the_runner_records_checkpoint_too_large_and_exits_cleanly(token):
    from flux_runner.main import run

    api = FakeExecutionApi(new_execution("big", "flux_examples.bigresults:main", {"steps": 3, "kilobytes": 200}))
    code = asyncio.run(run(api.client(token), termination_log=token.parent / "termination"))
    assert code == 0, "no crash loop: the outcome is recorded"
    assert api.checkpoint["state"] == "Failed"
    assert api.checkpoint["error"].startswith("CheckpointTooLarge: the result of step 'chunk-1' does not fit: ")
    assert api.checkpoint["error"].count("CheckpointTooLarge") == 1, "said once"


# --- ctx.unschedule


def scheduled_api() -> FakeExecutionApi:
    execution = new_execution("nightly-1", "tests:unused")
    execution["metadata"]["labels"] = {"workflows.flux.dev/schedule": "nightly"}
    return FakeExecutionApi(execution)


def test_unschedule_asks_the_operator_and_ends_the_run_cancelled(token):
    api = scheduled_api()
    cleaned = []

    async def workflow(ctx, input):
        assert ctx.schedule == "nightly"
        await ctx.step("one", lambda: 1)
        try:
            await ctx.unschedule("quota reached")
            cleaned.append("not reached")
        except asyncio.CancelledError:
            cleaned.append(ctx.cancelled)
            raise

    task, _ = run_workflow(api, token, workflow)
    assert task.cancelled()
    assert cleaned == [True]
    request = api.execution["status"]["unscheduleRequest"]
    assert request["reason"] == "quota reached"
    assert RFC3339_UTC.match(request["requestedAt"])


def test_unschedule_outside_a_schedule_is_a_clear_error(api, token):
    from flux_runner.errors import NotScheduled

    async def workflow(ctx, input):
        await ctx.unschedule("why")

    task, _ = run_workflow(api, token, workflow)
    assert isinstance(task.exception(), NotScheduled)
    assert "unscheduleRequest" not in api.execution["status"]


def test_unschedule_needs_a_reason(token):
    async def workflow(ctx, input):
        await ctx.unschedule(" ")

    task, _ = run_workflow(scheduled_api(), token, workflow)
    assert isinstance(task.exception(), ValueError)
