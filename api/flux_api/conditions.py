"""metav1.Condition bookkeeping: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

from typing import Any

STARTED = "Started"
CANCEL_REQUESTED = "CancelRequested"
FINISHED = "Finished"


def set_condition(conditions: list[dict[str, Any]], type_: str, ok: bool, reason: str, message: str,
                  generation: int | None, now: str) -> None:
    status = "True" if ok else "False"
    for condition in conditions:
        if condition["type"] == type_:
            if condition["status"] != status:
                condition["lastTransitionTime"] = now
            condition.update(status=status, reason=reason, message=message)
            if generation is not None:
                condition["observedGeneration"] = generation
            return
    new = {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}
    if generation is not None:
        new["observedGeneration"] = generation
    conditions.append(new)
