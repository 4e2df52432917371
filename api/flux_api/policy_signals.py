"""`flux-signal-sender-is-the-requester`: a signal that names its sender names the user who sent it.

A workflow may act on who approved it (`ctx.wait_for_signal(..., with_sender=True)`, `status.signals[].sentBy`),
so that name must be the API server's word, not the client's: a field manager is whatever the client puts in its
request. A new signal may carry `sentBy`, and then it must be the requester's own user name; left out, the
signal is recorded as from an unverified sender. Only signals appended by this request are checked (the CRD
keeps the old ones as they were), so anyone may append to a list that holds other people's signals. No one is
exempt, the operator included (a Schedule's template may carry no sentBy: crd_rules).
"""

from __future__ import annotations

from typing import Any

from flux_api.admission import binding, policy, resource_rules, validation, variable
from flux_api.names import GROUP, PLURAL
from flux_api.signals import PLACES

NAME = "flux-signal-sender-is-the-requester"


def sender_policy() -> dict[str, Any]:
    variables = [
        variable("signals", "object.spec.?signals.orValue([])"),
        # On create there is no old list: every signal is new.
        variable("before", "oldObject == null ? 0 : oldObject.spec.?signals.orValue([]).size()"),
        variable("forged", f"{PLACES}.filter(i, i >= variables.before && i < variables.signals.size() && "
                           "has(variables.signals[i].sentBy) && variables.signals[i].sentBy != request.userInfo.username)"),
    ]
    refused = validation(
        "size(variables.forged) == 0",
        "spec.signals: a new signal's sentBy must be your own user name, or be left out",
        "'spec.signals[' + string(variables.forged[0]) + '].sentBy: a new signal\\'s sentBy must be your own user "
        "name (' + request.userInfo.username + '), not ' + variables.signals[variables.forged[0]].sentBy + "
        "', or be left out'")
    # Writes that leave spec.signals as it was are not looked at.
    touched = {"name": "signals-changed",
               "expression": "has(object.spec) && has(object.spec.signals) && (oldObject == null || "
                             "!has(oldObject.spec.signals) || object.spec.signals != oldObject.spec.signals)"}
    return policy(NAME, resource_rules([(GROUP, PLURAL)], ["CREATE", "UPDATE"]), [refused], variables, [touched],
                  with_params=False)


def documents() -> list[dict[str, Any]]:
    return [sender_policy(), binding(NAME, with_params=False)]
