"""The platform's cap on a tree's size (maxExecutionsPerTree): children carry their root's UID, the World counts
each tree from the watches (children admitted and not yet seen included), and a spawn past the cap is refused
as TreeFull with a clear error."""

from __future__ import annotations

import pytest
from flux_api import PARENT_LABEL
from flux_api.names import DEPTH_LABEL, ROOT_LABEL
from flux_api.tenancy import DEFAULT_MAX_TREE, TenancyLimits
from flux_operator.execution.machine import CreateChild, EmitEvent, ObserveRefusal, TreeRoom, decide
from flux_operator.execution.children import newly_admitted
from flux_operator.trees import Trees, admitted_unseen
from flux_operator.world import World
from tests.operator.builders import NOW, apply, of, status_patch, tokens
from tests.operator.test_decide import execution, running_pod
from tests.operator.test_world import execution as watched

pytestmark = pytest.mark.unit


def asking(*names: str, labels: dict | None = None):
    return execution("Running", labels=labels,
                     status={"spawnRequests": [{"name": n, "workflow": "a.b:c"} for n in names]})


def test_a_spawn_within_the_room_left_goes_ahead_and_the_one_past_it_is_tree_full():
    actions = decide(asking("job-a", "job-b", "job-c"), running_pod(), [], NOW, tree=TreeRoom(8, 10))
    assert [a.name for a in of(actions, CreateChild)] == ["job-a", "job-b"]
    refused = [c for c in status_patch(actions)["children"] if c.get("reason")]
    assert refused == [{"name": "job-c", "phase": "Failed", "reason": "TreeFull",
                        "error": "refused: its tree already holds 10 executions; the platform allows at most 10 a "
                                 "tree (maxExecutionsPerTree)"}]
    assert [(e.reason, e.type, e.key) for e in of(actions, EmitEvent)] == [("SpawnRefused", "Warning", "job-c")]


def test_a_tree_full_refusal_is_counted_once_for_flux_spawns_refused():
    """The metric platform teams alert on: one count per name refused, never again in later passes."""
    actions = decide(asking("job-a", "job-b", "job-c"), running_pod(), [], NOW, tokens(), tree=TreeRoom(9, 10))
    assert of(actions, ObserveRefusal) == [ObserveRefusal("TreeFull"), ObserveRefusal("TreeFull")]
    kinds = [type(a).__name__ for a in actions]
    assert kinds[kinds.index("PatchStatus") + 1:] == ["ObserveRefusal", "ObserveRefusal", "CreateChild"], \
        "counted right after the status write that records them, before a create that may fail"
    again = decide(apply(asking("job-a", "job-b", "job-c"), actions), running_pod(), [], NOW, tokens(),
                   tree=TreeRoom(10, 10))
    assert not of(again, ObserveRefusal)


def test_a_name_admitted_then_found_taken_leaves_its_room_to_the_next_name():
    squatter = execution(name="job-a")  # not this parent's: NameTaken
    actions = decide(asking("job-a", "job-b"), running_pod(), [squatter], NOW, tokens(), tree=TreeRoom(9, 10))
    reasons = {c["name"]: c.get("reason") for c in status_patch(actions)["children"]}
    assert reasons == {"job-a": "NameTaken", "job-b": None}
    assert [a.name for a in of(actions, CreateChild)] == ["job-b"]


@pytest.mark.parametrize(("size", "most", "made"), [(10, 10, 0), (11, 10, 0), (1, 10, 3), (9, 10, 1)])
def test_the_room_left_is_what_the_cap_allows_never_less_than_none(size, most, made):
    actions = decide(asking("job-a", "job-b", "job-c"), running_pod(), [], NOW, tree=TreeRoom(size, most))
    assert len(of(actions, CreateChild)) == made


def test_without_a_cap_nothing_is_refused_for_the_tree():
    assert len(of(decide(asking("job-a", "job-b"), running_pod(), [], NOW), CreateChild)) == 2


def test_a_child_already_admitted_is_made_even_when_the_tree_is_full_now():
    """A name admitted in an earlier pass (its entry recorded, its create not yet seen) has its room already: it
    is not refused later because the count caught up with it."""
    memory = tokens()
    first = decide(asking("job-a"), running_pod(), [], NOW, memory, tree=TreeRoom(9, 10))
    assert [a.name for a in of(first, CreateChild)] == ["job-a"]
    again = decide(apply(asking("job-a"), first), running_pod(), [], NOW, memory, tree=TreeRoom(10, 10))
    assert [a.name for a in of(again, CreateChild)] == ["job-a"]
    assert not [c for c in status_patch(again).get("children", []) if c.get("reason")]


def test_trees_count_a_root_and_every_child_that_names_it():
    trees = Trees()
    assert trees.size("ns", "r") == 1, "a root alone is a tree of one"
    trees.seen(("ns", "a"), {ROOT_LABEL: "r"}, "ua", [])
    trees.seen(("ns", "b"), {ROOT_LABEL: "r"}, "ub", [])
    trees.seen(("ns", "b"), {ROOT_LABEL: "r"}, "ub", [])  # seen again: counted once
    trees.seen(("other", "c"), {ROOT_LABEL: "r"}, "uc", [])  # another namespace's tree of the same UID
    trees.seen(("ns", "root"), {}, "r", [])
    assert (trees.size("ns", "r"), trees.size("other", "r")) == (3, 2)
    trees.gone(("ns", "a"))
    trees.gone(("ns", "a"))
    trees.gone(("ns", "never-seen"))
    assert trees.size("ns", "r") == 2
    trees.seen(("ns", "b"), {ROOT_LABEL: "elsewhere"}, "ub", [])
    assert (trees.size("ns", "r"), trees.size("ns", "elsewhere")) == (1, 2)


def test_a_child_admitted_and_not_seen_yet_counts_once_and_only_until_it_is_made_or_refused():
    trees = Trees()
    trees.seen(("ns", "root"), {}, "r", ["k1", "k2"])  # the root admitted two; their creates failed so far
    assert trees.size("ns", "r") == 3, "a failed create retried later must not be admitted against room it has"
    trees.seen(("ns", "k1"), {ROOT_LABEL: "r"}, "u1", [])  # made, its entry not updated yet: one, not two
    assert trees.size("ns", "r") == 3
    trees.seen(("ns", "root"), {}, "r", ["k2"])  # k1's entry has its uid now
    trees.seen(("ns", "k1"), {ROOT_LABEL: "r"}, "u1", ["k1-x"])  # a child's admissions count in its root's tree
    assert trees.size("ns", "r") == 4
    trees.seen(("ns", "root"), {}, "r", [])  # k2 refused (an entry with a reason)
    assert trees.size("ns", "r") == 3
    trees.gone(("ns", "k1"))
    assert trees.size("ns", "r") == 1


def test_what_a_parent_admitted_and_has_not_seen_is_read_off_its_children_entries():
    status = {"children": [{"name": "made", "uid": "u", "phase": "Running"},
                           {"name": "refused", "phase": "Failed", "reason": "TreeFull"},
                           {"name": "pending", "phase": "Pending", "tokens": ["h"]}, "junk", {"phase": "Pending"},
                           {"name": "older-operators", "phase": "Pending"}]}
    assert admitted_unseen(status) == ["pending"]
    assert admitted_unseen({}) == []


def test_the_world_gives_each_snapshot_the_size_of_its_tree():
    world = World()
    world.execution_seen(watched("root", uid="r"))
    for name in ("root-a", "root-b"):
        world.execution_seen(watched(name, uid=name, owner="r", labels={PARENT_LABEL: "root", DEPTH_LABEL: "1",
                                                                        ROOT_LABEL: "r"}))
    world.execution_seen(watched("root-a-x", uid="x", owner="root-a",
                                 labels={PARENT_LABEL: "root-a", DEPTH_LABEL: "2", ROOT_LABEL: "r"}))
    sizes = {n: world.snapshot(("ns", n)).tree_size for n in ("root", "root-a", "root-a-x")}
    assert sizes == {"root": 4, "root-a": 4, "root-a-x": 4}
    world.execution_gone(watched("root-a-x", uid="x", labels={ROOT_LABEL: "r"}))
    assert world.snapshot(("ns", "root")).tree_size == 3
    # A new root under the old root's name, its children still about: a tree of its own.
    world.execution_gone(watched("root", uid="r"))
    world.execution_seen(watched("root", uid="r2"))
    assert world.snapshot(("ns", "root")).tree_size == 1


def test_what_a_decision_admits_is_the_entries_it_adds_that_are_neither_made_nor_refused():
    ex = asking("job-a", "job-b", "job-c")
    actions = decide(ex, running_pod(), [], NOW, tokens(), tree=TreeRoom(8, 10))
    assert newly_admitted(ex, actions) == ["job-a", "job-b"], "job-c is refused as TreeFull"
    assert newly_admitted(apply(ex, actions), decide(apply(ex, actions), running_pod(), [], NOW, tokens(),
                                                     tree=TreeRoom(10, 10))) == []


def test_two_parents_of_one_tree_deciding_at_once_cannot_both_take_its_last_room():
    """Without the claim each would admit against the count both saw, and the tree would pass its cap."""
    world = World()
    world.execution_seen(watched("root", uid="r"))
    world.execution_seen(watched("root-a", uid="a", owner="r", labels={PARENT_LABEL: "root", ROOT_LABEL: "r"}))
    seen = {n: world.snapshot(("ns", n)).tree_size for n in ("root", "root-a")}
    assert seen == {"root": 2, "root-a": 2}
    with world.tree_claim(("ns", "root"), seen["root"], ["root-k"]) as first:
        assert first
        assert world.snapshot(("ns", "root-a")).tree_size == 3, "the claim counts while its write is made"
        with world.tree_claim(("ns", "root-a"), seen["root-a"], ["root-a-k"]) as second:
            assert not second, "decided on a count the first claim has changed: decide again"
        refused = decide(asking("root-a-k"), running_pod(), [], NOW, tokens(), tree=TreeRoom(3, 3))
        assert [c["reason"] for c in status_patch(refused)["children"]] == ["TreeFull"]
    assert world.snapshot(("ns", "root")).tree_size == 2, "a claim whose write failed holds no room after it"
    with world.tree_claim(("ns", "root"), 2, ["root-k"]) as again:
        assert again
        world.execution_seen(watched("root", uid="r", rv="11", status={"children": [
            {"name": "root-k", "phase": "Pending", "tokens": ["h"]}]}))  # the status write's answer
    assert world.snapshot(("ns", "root")).tree_size == 3, "once written, the status counts what the claim held"
    with world.tree_claim(("ns", "root"), 1, []) as nothing_admitted:
        assert nothing_admitted, "a decision that admits nothing needs no claim, whatever it counted"


def test_a_claim_whose_reconcile_failed_counts_until_its_execution_is_seen_again_but_not_for_itself():
    """The status write may have landed though its answer was lost: other parents still see the room taken;
    the parent itself, deciding again, counts those names as its own new ones, not twice."""
    world = World()
    world.execution_seen(watched("root", uid="r"))
    world.execution_seen(watched("root-a", uid="a", owner="r", labels={PARENT_LABEL: "root", ROOT_LABEL: "r"}))
    with pytest.raises(TimeoutError):
        with world.tree_claim(("ns", "root"), 2, ["root-k"]):
            raise TimeoutError("the status write's answer was lost")
    assert world.snapshot(("ns", "root-a")).tree_size == 3
    assert world.snapshot(("ns", "root")).tree_size == 2
    with world.tree_claim(("ns", "root-a"), 2, ["root-a-k"]) as other:
        assert not other, "another parent decided on a count without the lingering claim"
    world.execution_seen(watched("root", uid="r"))  # a late echo of the version decided on (10): proves nothing
    assert world.snapshot(("ns", "root-a")).tree_size == 3
    world.execution_seen(watched("root", uid="r", rv="11", status={"children": [
        {"name": "root-k", "phase": "Pending", "tokens": ["h"]}]}))  # the write had landed: its echo
    assert world.snapshot(("ns", "root-a")).tree_size == 3
    world.execution_seen(watched("root", uid="r", rv="12"))  # no entry: as if it had not
    assert world.snapshot(("ns", "root-a")).tree_size == 2, "released once the execution was seen again"


def test_a_name_set_free_wakes_the_parent_that_admitted_a_child_under_it():
    world = World()
    world.execution_seen(watched("held-left", uid="squatter"))
    world.execution_seen(watched("held", uid="p", status={"children": [
        {"name": "held-left", "phase": "Pending", "tokens": ["h"]}, {"name": "held-right", "uid": "c"}]}))
    world.execution_seen(watched("held-right", uid="c", owner="p", labels={PARENT_LABEL: "held", ROOT_LABEL: "p"}))
    assert world.execution_gone(watched("held-left", uid="squatter")) == [("ns", "held")]
    assert world.execution_gone(watched("held-right", uid="c", labels={PARENT_LABEL: "held"})) == [("ns", "held")]
    assert world.execution_gone(watched("held-x-y", uid="nobody")) == []


def test_a_claim_counts_each_name_once_and_release_leaves_what_else_holds_it():
    trees = Trees()
    trees.seen(("ns", "root"), {}, "r", ["k1"])
    trees.claim(("ns", "root"), "r", ["k1", "k2"])
    assert trees.size("ns", "r") == 3
    trees.release(("ns", "root"))
    trees.release(("ns", "root"))
    assert trees.size("ns", "r") == 2


def test_the_platforms_cap_has_a_default_and_bounds():
    assert TenancyLimits().maxExecutionsPerTree == DEFAULT_MAX_TREE == 1000
    for bad in (0, -1, 1_000_001):
        with pytest.raises(ValueError):
            TenancyLimits(maxExecutionsPerTree=bad)
