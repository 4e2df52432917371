"""The operator posts each Event under a fixed name, so that posting it again after a crash is a harmless
Conflict. A colleague in the namespace who may create Events (as `edit` grants) can read an Execution's UID;
had the name been made of it alone (`<name>.<uid8>.<reason>`), they could take it first, and the operator,
taking the Conflict for its own earlier post, would post nothing: what they wrote would be all there was.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fluxtest import TERMINAL, longrun, wait_for
from fluxtest.faults import log_tail
from fluxtest.tenancy import grant

FORGED = "forged by a colleague"
REASONS = ("Started", "Cancelled")


def squat(tenant, victim: dict, reason: str) -> None:
    meta = victim["metadata"]
    tenant.core.create_namespaced_event(tenant.namespace, {
        "metadata": {"name": f"{meta['name']}.{meta['uid'][:8]}.{reason.lower()}"},
        "involvedObject": {"apiVersion": victim["apiVersion"], "kind": victim["kind"], "name": meta["name"],
                           "namespace": tenant.namespace, "uid": meta["uid"]},
        "reason": reason, "message": f"{FORGED}: nothing happened", "type": "Normal",
        "source": {"component": "flux-operator"}, "reportingComponent": "flux-operator"})


@pytest.mark.threat("squatted-event-names", "a colleague who may create Events (as `edit` grants) takes the names "
                    "the operator's Started and Cancelled Events about another's Execution would have had "
                    "(`<name>.<uid8>.<reason>`, the UID being readable), with messages of their own",
                    "the operator's own Events are posted all the same, with its messages: the names it uses end in "
                    "a hash keyed by its own UID, which no namespace user can read")
@pytest.mark.timeout(150)
def test_a_colleague_cannot_take_the_names_of_the_operators_events_first(api, tenant, operators, fx, result):
    grant(api, tenant.namespace, tenant.user, [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}])
    op = operators.start()
    start = (datetime.now(timezone.utc) + timedelta(seconds=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    victim = fx.create(longrun("victim", steps=600, seconds=0.5, startAt=start))  # the colleague's, made by the admin
    for reason in REASONS:
        squat(tenant, victim, reason)
    assert fx.phase("victim") in (None, "Pending"), "the squat came after the start: the test proves nothing"
    fx.wait_step("victim", timeout=90)
    fx.cancel("victim", reason="done")
    done = fx.wait_phase("victim", *TERMINAL, timeout=90)

    def told():
        records = fx.event_records("victim")
        return records if all(any(r == reason and FORGED not in m for r, m in records) for reason in REASONS) \
            else None
    try:
        records = wait_for(told, timeout=20, what="the operator's own Started and Cancelled Events")
    except AssertionError:
        records = fx.event_records("victim")
        result.figure(f"the operator's Events: {[(r, m[:40]) for r, m in records]}")
        raise AssertionError(f"the operator's own Events are missing: {records}: {log_tail(op, 1200)}") from None
    ours = {r: m for r, m in records if FORGED not in m and r in REASONS}
    result.figure(f"victim {done['phase']}; its Events: " + "; ".join(f"{r}: {m[:60]!r}" for r, m in ours.items())
                  + f"; the {len(REASONS)} forged ones stand beside them (anyone who may create Events can post one)")
    assert done["phase"] == "Cancelled", done
