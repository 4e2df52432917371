"""Opt-in namespaces: which namespaces the operator serves, the gate in front of its reconcilers, the one
notice per object it leaves alone, and the namespace watch that switches a namespace on and off."""

from __future__ import annotations

import argparse
import asyncio

import kopf
import pytest
from flux_api.namespace_policy import CONFINED, binding, labelled, policy, reserved
from flux_operator import handlers
from flux_operator.main import parse_args
from flux_operator.namespaces import NOTICE_REASON, NamespaceGate, Namespaces, Notices
from flux_operator.workqueue import Result
from flux_operator.schedule_shell import ScheduleStore
from flux_operator.world import World
from flux_operator.testing import FakeKubeApi
from tests.operator import builders
from tests.operator.builders import deliver

pytestmark = pytest.mark.unit


def namespace(name: str, enabled: str | None = "true") -> dict:
    labels = {"workflows.flux.dev/enabled": enabled} if enabled is not None else {}
    return {"metadata": {"name": name, "labels": labels}}


def execution(name: str = "job", ns: str = "team-a", phase: str | None = None, uid: str | None = None) -> dict:
    status = {"phase": phase, "podName": f"{name}-runner"} if phase else {}
    return {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
            "metadata": {"name": name, "namespace": ns, "uid": uid or f"uid-{name}", "resourceVersion": "7",
                         "generation": 1},
            "spec": {"workflow": "a:b"}, "status": status}


# --- which namespaces -----------------------------------------------------------------------------

def test_label_mode_serves_only_labelled_namespaces() -> None:
    spaces = Namespaces()
    assert spaces.label_mode and not spaces.served("team-a"), "a fresh operator serves nothing"
    spaces.seen(namespace("team-a"))
    spaces.seen(namespace("team-b", enabled="yes"))  # only the value "true" opts in
    spaces.seen(namespace("team-c", enabled=None))
    assert [n for n in ("team-a", "team-b", "team-c") if spaces.served(n)] == ["team-a"]
    spaces.seen(namespace("team-a", enabled="false"))
    assert not spaces.served("team-a"), "taking the label off switches it off"
    spaces.seen(namespace("team-a"))
    spaces.gone(namespace("team-a"))
    assert not spaces.served("team-a"), "a deleted namespace is forgotten: a new one of that name must opt in"


@pytest.mark.parametrize("name", ["kube-system", "kube-public", "kube-node-lease", "kube-anything"])
def test_kube_namespaces_are_never_served_labelled_or_listed(name) -> None:
    spaces = Namespaces()
    spaces.seen(namespace(name))
    assert not spaces.served(name)
    assert not Namespaces([name]).served(name)
    assert reserved(name) and "never acts in" in spaces.refusal(name)


def test_listed_namespaces_are_served_without_labels_and_nothing_else() -> None:
    spaces = Namespaces(["a", "b"])
    assert not spaces.label_mode
    spaces.seen(namespace("c"))  # a label means nothing in listed mode
    assert (spaces.served("a"), spaces.served("b"), spaces.served("c")) == (True, True, False)
    assert "not among the namespaces" in spaces.refusal("c")


def test_a_switch_is_announced_once_each_way() -> None:
    spaces = Namespaces()
    spaces.seen(namespace("team-a"))
    spaces.seen(namespace("team-a"))  # the index handler and the event handler both see every change
    assert spaces.take_change("team-a") is True
    assert spaces.take_change("team-a") is False
    spaces.seen(namespace("team-a", enabled=None))
    assert spaces.take_change("team-a") is True and spaces.flips("team-a") == 2
    assert spaces.take_change("other") is False, "never labelled: nothing to announce"


def test_the_refusal_says_how_to_opt_in() -> None:
    message = Namespaces().refusal("team-a")
    assert "kubectl label namespace team-a workflows.flux.dev/enabled=true" in message
    assert "watchNamespaces" in message


# --- the gate and its notices ------------------------------------------------------------------------

class Inner:
    def __init__(self) -> None:
        self.keys: list = []

    def reconcile(self, key):
        self.keys.append(key)
        return Result(requeue_after=5)


def gated(spaces: Namespaces, world: World | None = None) -> tuple[NamespaceGate, Inner, FakeKubeApi, World]:
    api, world, inner = FakeKubeApi(), world or World(), Inner()
    return NamespaceGate(spaces, inner.reconcile, Notices(api, spaces).execution(world)), inner, api, world


def test_the_gate_passes_served_keys_on_and_leaves_the_rest_alone_with_one_notice() -> None:
    spaces = Namespaces()
    spaces.seen(namespace("team-a"))
    gate, inner, api, world = gated(spaces)
    world.execution_seen(execution(ns="team-a"))
    world.execution_seen(execution(ns="team-b"))
    assert gate.reconcile(("team-a", "job")).requeue_after == 5
    for _ in range(3):
        assert gate.reconcile(("team-b", "job")) == Result()
    assert inner.keys == [("team-a", "job")]
    assert [c for c in api.calls if c[0] != "emit_event"] == [], "nothing but the notice in team-b"
    assert [c[1] for c in api.calls] == [NOTICE_REASON], "one notice, however often it is looked at"
    event = next(iter(api.events.values()))
    assert event["type"] == "Warning" and event["involved"]["namespace"] == "team-b"
    assert "not enabled for Flux" in event["message"] and "leaves this execution alone" in event["message"]


def test_switching_a_namespace_off_tells_each_live_execution_once_and_not_finished_ones() -> None:
    spaces = Namespaces()
    spaces.seen(namespace("team-a"))
    gate, inner, api, world = gated(spaces)
    world.execution_seen(execution("running", phase="Running"))
    world.execution_seen(execution("done", phase="Succeeded"))
    spaces.seen(namespace("team-a", enabled=None))
    for name in ("running", "done", "running"):
        gate.reconcile(("team-a", name))
    assert inner.keys == [], "the operator stops acting at once"
    assert [e["involved"]["name"] for e in api.events.values()] == ["running"]
    assert "stopped acting on this execution" in next(iter(api.events.values()))["message"]
    spaces.seen(namespace("team-a"))
    gate.reconcile(("team-a", "running"))
    assert inner.keys == [("team-a", "running")], "switched on again: it carries on"
    spaces.seen(namespace("team-a", enabled=None))
    gate.reconcile(("team-a", "running"))
    assert len(api.events) == 2, "switched off a second time: a second notice, under a name of its own"


def test_a_schedule_in_a_namespace_not_served_gets_one_notice() -> None:
    spaces, api, store = Namespaces(), FakeKubeApi(), ScheduleStore()
    store.seen({"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Schedule",
                "metadata": {"name": "nightly", "namespace": "team-b", "uid": "s-1", "resourceVersion": "3"},
                "spec": {"schedule": "@daily", "executionTemplate": {"spec": {"workflow": "a:b"}}}})
    inner = Inner()
    gate = NamespaceGate(spaces, inner.reconcile, Notices(api, spaces).schedule(store))
    gate.reconcile(("team-b", "nightly"))
    gate.reconcile(("team-b", "nightly"))
    assert inner.keys == [] and [c[1] for c in api.calls] == [NOTICE_REASON]
    assert "starts no run of this schedule" in next(iter(api.events.values()))["message"]


# --- the namespace watch -----------------------------------------------------------------------------

def memo() -> kopf.Memo:
    return builders.memo(namespaces=Namespaces())


def test_labelling_a_namespace_names_every_execution_in_it_and_nothing_elsewhere() -> None:
    m = memo()
    m.runtime.world.execution_seen(execution("one", ns="team-a"))
    m.runtime.world.execution_seen(execution("two", ns="team-a"))
    m.runtime.world.execution_seen(execution("other", ns="team-b"))
    deliver(handlers.namespace_event, "MODIFIED", namespace("team-b", None), m)
    assert m.runtime.controller.keys == [], "no change, nothing to look at"
    deliver(handlers.namespace_event, "MODIFIED", namespace("team-a"), m)
    assert sorted(m.runtime.controller.keys) == [("team-a", "one"), ("team-a", "two")]
    assert m.runtime.namespaces.served("team-a")
    m.runtime.controller.keys.clear()
    deliver(handlers.namespace_event, "DELETED", namespace("team-a"), m)
    assert sorted(m.runtime.controller.keys) == [("team-a", "one"), ("team-a", "two")]
    assert not m.runtime.namespaces.served("team-a")


def test_the_namespace_index_stores_labels_but_names_nothing() -> None:
    m = memo()
    m.runtime.world.execution_seen(execution("one", ns="team-a"))
    asyncio.run(handlers.namespaces_watched(body=kopf.Body(namespace("team-a")), memo=m))
    assert m.runtime.namespaces.served("team-a") and m.runtime.controller.keys == []
    deliver(handlers.namespace_event, None, namespace("team-a"), m)
    assert m.runtime.controller.keys == [("team-a", "one")], "the event handler still announces the switch"


# --- flags ---------------------------------------------------------------------------------------------

def test_kube_system_cannot_be_listed(capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--namespace", "team-a", "--namespace", "kube-system"])
    assert "never acts in kube-system" in capsys.readouterr().err
    assert parse_args(["--namespace", "team-a"]).namespaces == ["team-a"]
    assert parse_args([]).namespaces == [], "no flag: label mode"


def test_kube_namespaces_cannot_be_listed_through_the_environment(monkeypatch, capsys) -> None:
    monkeypatch.setenv("FLUX_NAMESPACES", "team-a,kube-public")
    with pytest.raises(SystemExit):
        parse_args([])
    assert "never acts in kube-public" in capsys.readouterr().err


def test_runner_egress_is_a_nonempty_list_of_rules() -> None:
    from flux_operator.main import _egress

    assert _egress("") is None
    assert _egress('[{"ports": [{"port": 53}]}]') == ({"ports": [{"port": 53}]},)
    for bad in ("[]", "{}", '["x"]', "not json"):
        with pytest.raises(argparse.ArgumentTypeError):
            _egress(bad)


# --- the admission policy --------------------------------------------------------------------------------

def test_the_policy_confines_only_the_operator_and_only_its_writes() -> None:
    doc = policy("system:serviceaccount:flux-system:flux-operator", "x")
    spec = doc["spec"]
    assert spec["matchConditions"] == [{"name": "the-flux-operator", "expression":
                                        "request.userInfo.username == 'system:serviceaccount:flux-system:flux-operator'"}]
    resources = {r for rule in spec["matchConstraints"]["resourceRules"] for r in rule["resources"]}
    assert {"pods", "serviceaccounts", "roles", "rolebindings", "networkpolicies", "executions"} <= resources
    assert "events" not in resources and "leases" not in resources, "notices and the Lease are not confined"
    assert all(op in ("CREATE", "UPDATE", "DELETE") for _, _, ops in CONFINED for op in ops)
    assert spec["failurePolicy"] == "Fail"
    assert binding("x")["spec"] == {"policyName": "x", "validationActions": ["Deny"]}
    assert labelled({"workflows.flux.dev/enabled": "true"}) and not labelled({"workflows.flux.dev/enabled": "True"})
