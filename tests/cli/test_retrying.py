"""`kubectl flux retry|resubmit`: what the copy keeps and which steps a retry skips, without a cluster."""

import pytest
from flux_api import GROUP, Checkpoint
from flux_cli.errors import ArgumentError
from flux_cli.executions.retrying import copy_of, seed_of, steps_before

pytestmark = pytest.mark.unit


def checkpoint(runs=(), names=(), recent=()) -> Checkpoint:
    return Checkpoint.model_validate({
        "state": "Cancelled", "done": {"runs": [{"prefix": p, "first": a, "last": b} for p, a, b in runs],
                                       "names": list(names)},
        "steps": [{"name": n, "result": n.upper()} for n in recent],
        "results": {n: n.upper() for n in recent}, "data": {"cursor": 7}})


def test_a_copy_keeps_the_spec_and_own_marks_but_not_the_operators_or_what_it_was_told():
    original = {"metadata": {"name": "etl", "labels": {"team": "data", f"{GROUP}/parent": "x",
                                                      "app.kubernetes.io/name": "flux-runner"},
                             "annotations": {"note": "n", f"{GROUP}/cancel": "stop",
                                             "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                "spec": {"workflow": "a:b", "input": {"k": 1}, "cancel": {"reason": "r"}, "suspend": True,
                         "signals": [{"name": "go"}], "seed": {}, "retryOf": "older", "startAt": "2026-01-01T00:00:00Z",
                         "retry": {"limit": 2}}}
    body = copy_of(original, "retry")
    assert body["metadata"] == {"generateName": "etl-retry-", "labels": {"team": "data"},
                                "annotations": {"note": "n"}}
    assert body["spec"] == {"workflow": "a:b", "input": {"k": 1}, "retry": {"limit": 2}}


def test_a_long_name_leaves_room_for_the_servers_suffix():
    body = copy_of({"metadata": {"name": "x" * 63}, "spec": {}}, "resubmit")
    assert len(body["metadata"]["generateName"]) + 5 <= 63


def test_without_a_step_every_finished_step_is_kept_with_the_data():
    cp = checkpoint(runs=[("step-", 1, 5)])
    kept = steps_before(cp, None, "etl")
    assert kept == [f"step-{i}" for i in range(1, 6)]
    assert seed_of(cp, kept, whole=True).data == {"cursor": 7}


def test_numbered_steps_keep_their_order():
    cp = checkpoint(runs=[("step-", 1, 30)], recent=[f"step-{i}" for i in range(11, 31)])
    assert steps_before(cp, "step-4", "etl") == ["step-1", "step-2", "step-3"]
    assert steps_before(cp, "step-25", "etl")[-1] == "step-24"


def test_recent_steps_order_even_a_mix_of_named_and_numbered():
    cp = checkpoint(runs=[("part-", 1, 2)], names=["prepare", "load"], recent=["prepare", "part-1", "load", "part-2"])
    assert steps_before(cp, "load", "etl") == ["part-1", "prepare"]
    seed = seed_of(cp, ["part-1", "prepare"], whole=False)
    assert [s.name for s in seed.steps] == ["prepare", "part-1"] and seed.data is None
    assert seed.results == {"prepare": "PREPARE", "part-1": "PART-1"} and seed.stepCount == 2


def test_an_old_step_whose_order_is_unknown_is_refused_plainly():
    cp = checkpoint(runs=[("part-", 1, 40)], names=["prepare"], recent=[f"part-{i}" for i in range(21, 41)])
    with pytest.raises(ArgumentError, match="does not keep the order of 'part-3'"):
        steps_before(cp, "part-3", "etl")


def test_a_step_that_never_finished_is_refused():
    with pytest.raises(ArgumentError, match="'nope' is not among the 3 finished steps of etl"):
        steps_before(checkpoint(runs=[("s-", 1, 3)]), "nope", "etl")


def test_a_wait_on_a_copy_deleted_meanwhile_says_so_instead_of_failing():
    """A copy keeps ttlSecondsAfterFinished: 0, so the operator may delete it between two looks."""
    from flux_cli.executions.retrying import Made, wait_finished
    from flux_cli.kube import NotFoundError

    class Gone:
        def get_execution(self, namespace, name):
            raise NotFoundError(f'execution "{name}" not found')

    made = wait_finished(Gone(), Made("etl-retry-x", "ns", "etl", "retry"), timeout=5, sleep=lambda _: None)
    assert made.phase == "Deleted" and made.exit_code == 0
    assert made.message.endswith("ended Deleted")
