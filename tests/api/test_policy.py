"""The generated admission policies: their shape, and what keeps each within the API server's CEL budget."""

from __future__ import annotations

import re

import pytest
from flux_api import (
    policy,
    policy_cancel,
    policy_operator,
    policy_owned,
    policy_runner_pod,
    policy_signals,
    policy_tenant,
)
from flux_api.admission import MAX_NAMED_CHECKS, NOT_THE_OPERATOR
from flux_api.types import ExecutionStatus

pytestmark = pytest.mark.unit

# Measured on the pinned API server (v1.35.4): an authorizer check costs 350,000 of a budget of 1,000,000 per
# expression and 10,000,000 per binding: 3 checks in one expression, or 29 in one policy, are refused.
CHECKS_PER_EXPRESSION, CHECKS_PER_POLICY = 2, 28


def _policies():
    return [d for d in policy.documents() if d["kind"] == "ValidatingAdmissionPolicy"]


def _checks(expression: str, variables: dict[str, str]) -> int:
    """Authorizer checks an expression can make, counting each variable it reads once (they are cached)."""
    own = expression.count(".check(")
    used = set(re.findall(r"variables\.(\w+)", expression))
    return own + sum(variables[v].count(".check(") for v in used if v in variables)


@pytest.mark.parametrize("doc", _policies(), ids=lambda d: d["metadata"]["name"])
def test_no_policy_can_run_past_the_cel_cost_budget(doc):
    variables = {v["name"]: v["expression"] for v in doc["spec"].get("variables", [])}
    expressions = [v["expression"] for v in doc["spec"]["validations"]]
    assert all(_checks(e, {}) <= CHECKS_PER_EXPRESSION for e in [*expressions, *variables.values()])
    total = sum(e.count(".check(") for e in [*expressions, *variables.values()])
    assert total <= CHECKS_PER_POLICY, f"{doc['metadata']['name']} may make {total} authorizer checks"


def test_message_expressions_never_ask_the_authorizer():
    """The API server evaluates them without an authorizer (and for every rule, passing or not)."""
    for doc in _policies():
        variables = {v["name"]: v["expression"] for v in doc["spec"].get("variables", [])}
        for rule in doc["spec"]["validations"]:
            message = rule.get("messageExpression", "")
            assert _checks(message, variables) == 0, (doc["metadata"]["name"], message)


def test_secrets_are_checked_by_name_up_to_the_cap_then_only_namespace_wide():
    secrets = policy_tenant.reference_policy("s", "secret", "secrets")
    assert len(secrets["spec"]["validations"]) == MAX_NAMED_CHECKS + 1
    assert 1 + MAX_NAMED_CHECKS <= CHECKS_PER_POLICY


POD_POLICIES = (policy_owned.RUNNER_OBJECTS_NAME, policy_owned.RUNNER_IDENTITY_NAME, policy_operator.NAME)


def test_everyone_but_the_operator_is_checked_and_only_pods_fail_open():
    for doc in _policies():
        name = doc["metadata"]["name"]
        if name in (policy.NAME, policy.PROGRESS_NAME):  # the runner's policies match runners only
            assert "paramKind" not in doc["spec"] and doc["spec"]["failurePolicy"] == "Fail"
            assert [c["name"] for c in doc["spec"]["matchConditions"]] == ["runner-identity"]
            continue
        if name == policy_signals.NAME:  # a forged sender is refused whoever sends it, the operator too
            assert "paramKind" not in doc["spec"] and doc["spec"]["failurePolicy"] == "Fail"
            assert [c["name"] for c in doc["spec"]["matchConditions"]] == ["signals-changed"]
            continue
        if name == policy_cancel.NAME:  # a cancel cannot be undone, by anyone
            assert "paramKind" not in doc["spec"] and doc["spec"]["failurePolicy"] == "Fail"
            assert [c["name"] for c in doc["spec"]["matchConditions"]] == ["was-annotated"]
            continue
        if name in (policy_runner_pod.NAME, policy_runner_pod.IMAGES_NAME):  # ways into a runner pod: everyone's
            assert "paramKind" not in doc["spec"]
            assert doc["spec"]["failurePolicy"] == ("Fail" if name == policy_runner_pod.NAME else "Ignore")
            continue
        if name == policy_operator.NAME:  # the operator's own identity, and only it
            assert doc["spec"]["matchConditions"] == [policy_operator.THE_OPERATOR]
            assert doc["spec"]["failurePolicy"] == "Ignore"
            continue
        assert doc["spec"]["matchConditions"][0] == NOT_THE_OPERATOR
        assert doc["spec"]["failurePolicy"] == ("Ignore" if name in POD_POLICIES else "Fail")
    bindings = {d["metadata"]["name"]: d["spec"] for d in policy.documents() if d["kind"].endswith("Binding")}
    assert set(bindings) == {d["metadata"]["name"] for d in _policies()}
    for name, spec in bindings.items():
        if "paramRef" in spec:
            expected = "Allow" if name in POD_POLICIES else "Deny"
            assert spec["paramRef"] == {"name": "flux-tenancy", "parameterNotFoundAction": expected}


def test_the_runner_policy_is_an_allow_list():
    """It names what a runner may change, never what it may not: a status field added later is covered."""
    spec = policy.policy()["spec"]
    text = " ".join(v["expression"] for v in spec["variables"]) + " ".join(v["expression"] for v in spec["validations"])
    for field in policy.operator_owned():
        # phase: read by the rule that ends a runner's writes at a terminal phase; runnerObjects: by the one that
        # takes only its recorded pod's writes
        if field not in ("phase", "runnerObjects"):
            assert re.search(rf"\b{field}\b", text) is None, field
    assert all(f in text for f in policy.RUNNER_OWNED)
    assert set(policy.RUNNER_OWNED) < set(ExecutionStatus.model_fields)


def test_the_check_rules_name_every_policy_and_binding():
    rules = policy.reader_rules()
    named = {name for rule in rules for name in rule["resourceNames"]}
    assert {name for _, name in policy.names()} | {"flux-tenancy"} == named
    assert all(rule["verbs"] == ["get"] for rule in rules)
