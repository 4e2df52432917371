"""`flux-cancel-cannot-be-undone`: the cancel annotation, once it holds a reason, stays as it is.

`spec.cancel` cannot change once set (the CRD's rule, crd.CANCEL_IMMUTABLE), but a CRD's rules cannot see
annotations. Without this policy a cancel asked for with the annotation could be taken back by removing it
before the operator recorded the cancellation (while it is busy or failing over): the cancel would be lost, or a
runner that had already cleaned up would be started again. A blank annotation asks for nothing and stays free.
No one is exempt, the operator included (it never writes the annotation); deleting the Execution stays possible.
"""

from __future__ import annotations

from typing import Any

from flux_api.admission import binding, policy, resource_rules, string, validation, variable
from flux_api.names import CANCEL_ANNOTATION, GROUP, PLURAL

NAME = "flux-cancel-cannot-be-undone"
_KEY = string(CANCEL_ANNOTATION)


def cancel_policy() -> dict[str, Any]:
    variables = [
        variable("before", f"oldObject.metadata.?annotations.orValue({{}})[?{_KEY}].orValue('')"),
        variable("after", f"object.metadata.?annotations.orValue({{}})[?{_KEY}].orValue('')"),
    ]
    kept = validation(
        "variables.before.trim() == '' || variables.after == variables.before",
        f"metadata.annotations[{CANCEL_ANNOTATION}]: a cancel cannot be undone; the annotation stays as it was set",
        f"'metadata.annotations[{CANCEL_ANNOTATION}]: a cancel cannot be undone; the annotation stays \"' + "
        f"(variables.before.size() > 120 ? variables.before.substring(0, 120) + '...' : variables.before) + '\"'",
        reason="Invalid")
    annotated = {"name": "was-annotated",
                 "expression": f"request.operation == 'UPDATE' && has(oldObject.metadata.annotations) && "
                               f"{_KEY} in oldObject.metadata.annotations"}
    return policy(NAME, resource_rules([(GROUP, PLURAL)], ["UPDATE"]), [kept], variables, [annotated],
                  with_params=False)


def documents() -> list[dict[str, Any]]:
    return [cancel_policy(), binding(NAME, with_params=False)]
