"""What concurrency limits cost the operator: a tenant's selectors are weighed once per distinct labels and set of
limits, not on every pass down the line, and a namespace's limits are bounded in selector terms as well as in
number (queues.py). No cluster; the clock is injected."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flux_api.limits import (MAX_LIMITS_PER_NAMESPACE, MAX_SELECTOR_TERMS_PER_NAMESPACE, LabelSelector, selector_terms,
                             selects)
from flux_operator.execution import queueing
from flux_operator.execution.queueing import counted_by, lineup
from flux_operator.queues import LimitReconciler, LimitStore, Queues
from flux_operator.world import World
from tests.operator.builders import NOW

pytestmark = pytest.mark.unit

TEAMS = ("a", "b", "c")


def limit_body(name: str, selector: dict, generation: int = 1, max_: int = 1) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": generation},
            "spec": {"max": max_, "selector": selector}}


def execution(i: int, version: int, phase: str | None = None) -> dict:
    """One of three tenants' label sets, in a new dict each time: a status write brings the same labels anew."""
    return {"metadata": {"name": f"e{i:03d}", "namespace": "ns", "uid": f"x{i}", "resourceVersion": str(version),
                         "creationTimestamp": f"2026-11-21T11:{i // 60:02d}:{i % 60:02d}Z",
                         "labels": {"team": TEAMS[i % len(TEAMS)], "app": "etl"}},
            "spec": {"workflow": "m:f"}, "status": {"phase": phase} if phase else {}}


def test_selectors_are_weighed_once_per_distinct_labels_and_set_of_limits_not_on_every_pass(monkeypatch) -> None:
    calls: list[int] = []

    def counting_selects(selector: LabelSelector, labels: Any) -> bool:
        calls.append(1)
        return selects(selector, labels)
    monkeypatch.setattr(queueing, "selects", counting_selects)
    world, store = World(), LimitStore()
    selectors = [{"matchLabels": {"team": "a"}}, {"matchLabels": {"app": "etl"}},
                 {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["b"]}]}]
    for n, selector in enumerate(selectors):
        store.seen(limit_body(f"l{n}", selector))
    queues, limits = Queues(world, store), store.in_namespace("ns")
    world.execution_seen(execution(0, 1, "Running"))
    count = 60
    for i in range(1, count):  # each one a change of the namespace: a new pass for every question
        world.execution_seen(execution(i, 1))
        queues.verdict(("ns", f"e{i:03d}"), NOW + timedelta(seconds=i))
        queues.to_wake("ns", NOW + timedelta(seconds=i))
        for one in limits:
            queues.usage(one, limits, NOW + timedelta(seconds=i))
        world.execution_seen(execution(i - 1, 2, "Running" if i == 1 else None))  # a status write, same labels
    at_most = len(TEAMS) * len(selectors)
    assert len(calls) <= at_most, f"{len(calls)} selector evaluations for {count} executions over {count} passes, " \
                                  f"not one per label set and limit ({at_most})"
    expected = lineup(limits, queues.members("ns", NOW + timedelta(seconds=count)), counted_by(limits))
    assert queues.to_wake("ns", NOW + timedelta(seconds=count)) == [("ns", n) for n in expected.admitted]
    assert [queues.usage(one, limits, NOW + timedelta(seconds=count)) for one in limits] == \
        [expected.usage(one) for one in limits], "the memo changed an answer"

    calls.clear()  # a new generation of a limit is a new selector: nothing is answered from before it
    store.seen(limit_body("l1", {"matchLabels": {"app": "other"}}, generation=2))
    limits = store.in_namespace("ns")
    later = NOW + timedelta(seconds=count + 1)
    held = {n: queues.verdict(("ns", n), later) for n in (f"e{i:03d}" for i in range(count))}
    assert 0 < len(calls) <= at_most
    assert {n: q.limit for n, q in held.items() if q is not None} == \
        {n: q.limit for n in held if (q := lineup(limits, queues.members("ns", later)).queued(n)) is not None}
    assert held["e001"] is None, "team b waits on l1 that no longer counts it: an answer from before its change"
    assert held["e003"] is not None and held["e003"].limit == "l0"


def test_a_namespaces_limits_stop_at_a_bound_of_selector_terms_and_say_why() -> None:
    def labels(n: int, prefix: str) -> dict:
        return {"matchLabels": {f"{prefix}{k}": "v" for k in range(n)}}
    store = LimitStore()
    for i in range(MAX_LIMITS_PER_NAMESPACE - 1):
        store.seen(limit_body(f"l{i:02d}", labels(16, "k")))
    store.seen(limit_body("l15", labels(17, "k")))  # by terms the 16th limit, by number within the bound
    store.seen(limit_body("l16", {}))
    applied = store.in_namespace("ns")
    terms = sum(selector_terms(one.spec.selector) for one in applied)
    assert [one.name for one in applied] == [f"l{i:02d}" for i in range(MAX_LIMITS_PER_NAMESPACE - 1)]
    assert terms == 240 and terms + 17 > MAX_SELECTOR_TERMS_PER_NAMESPACE
    shown = reconciled(store, ("ns", "l15"))
    assert shown["active"] is None and shown["message"].startswith("not applied: ")
    assert f"at most {MAX_SELECTOR_TERMS_PER_NAMESPACE} selector terms" in shown["message"], shown["message"]
    assert f"at most {MAX_LIMITS_PER_NAMESPACE} ConcurrencyLimits" not in shown["message"], "the bound on their " \
        "number was named"
    assert reconciled(store, ("ns", "l16"))["message"] == shown["message"], "the first by name stop the rest too"
    assert reconciled(store, ("ns", "l00"))["message"] is None

    store.seen(limit_body("l15", labels(16, "k"), generation=2))  # 256 terms in all: within the bound
    assert len(store.in_namespace("ns")) == MAX_LIMITS_PER_NAMESPACE
    shown = reconciled(store, ("ns", "l16"))
    assert f"at most {MAX_LIMITS_PER_NAMESPACE} ConcurrencyLimits" in shown["message"], shown["message"]
    assert "selector terms" not in shown["message"], "the bound on terms was named for one past the number"


def test_any_one_limit_at_its_selectors_bounds_is_applied() -> None:
    store = LimitStore()
    store.seen(limit_body("big", {"matchLabels": {f"k{i}": "v" for i in range(32)}, "matchExpressions": [
        {"key": f"e{i}", "operator": "NotIn", "values": [str(n) for n in range(4)]} for i in range(32)]}))
    (big,) = store.in_namespace("ns")
    assert selector_terms(big.spec.selector) == 32 + 32 + 128 <= MAX_SELECTOR_TERMS_PER_NAMESPACE


def reconciled(store: LimitStore, key: tuple[str, str]) -> dict:
    """The status LimitReconciler writes for the limit."""
    written: list[dict] = []

    class Api:
        def patch_limit_status(self, namespace: str, name: str, status: dict) -> None:
            written.append(status)
    LimitReconciler(Queues(World(), store), Api(), lambda: NOW).reconcile(key)  # type: ignore[arg-type]
    (status,) = written
    return status
