"""Objects nested as deep as the API server admits (10,000 levels) must not stop the operator."""

from __future__ import annotations

import pytest
from fluxtest import TERMINAL, manifest
from fluxtest.faults import health, log_tail

DEPTH = 9_990  # the API server refuses JSON nested deeper than 10,000 levels; spec.input sits 2 below the root


def nested_list(depth: int) -> str:
    """JSON text of a list nested `depth` levels deep (built as text: no encoder recursion)."""
    return "[" * depth + "]" * depth


def deep_execution(name: str, depth: int = DEPTH) -> str:
    return ('{"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution", "metadata": {"name": "%s"}, '
            '"spec": {"workflow": "flux_examples.quick:main", "input": {"deep": %s}}}' % (name, nested_list(depth)))


@pytest.mark.threat("deep-input", "an Execution whose spec.input is a list nested 9,990 levels deep",
                    "the operator lives on; the bystander's execution runs; the deep one ends with a clear answer")
@pytest.mark.timeout(240)
def test_a_deeply_nested_input_does_not_stop_the_operator(tenant, bystander, operators, fx, result):
    created = tenant.kubectl("create", "-f", "-", input=deep_execution("deep"))
    assert created.returncode == 0, f"the API server refused it (then there is nothing to survive): {created.stderr}"
    op = operators.start()
    bystander.create(manifest("ordinary", "flux_examples.quick:main"))
    ordinary = bystander.wait_phase("ordinary", *TERMINAL, timeout=90)
    deep = fx.wait_phase("deep", *TERMINAL, timeout=90)
    code, report = health(op)
    result.figure(f"bystander {ordinary.get('phase')}; deep one {deep.get('phase')}: "
                  f"{(deep.get('message') or '')[:120]!r}; operator healthz {code}")
    assert op.proc.poll() is None, f"the operator died: {log_tail(op)}"
    assert ordinary["phase"] == "Succeeded", ordinary
    assert code == 200, report
    assert deep.get("message"), deep
