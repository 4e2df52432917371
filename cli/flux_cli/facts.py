"""Read facts out of Execution objects as the API returns them (plain camelCase dicts).

Lenient on purpose: the plugin must still show an object written by a newer operator or a
half-reconciled one, so a missing or odd field gives None instead of an exception.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flux_api import EXECUTION_LABEL, PARENT_LABEL, TERMINAL_PHASES, Phase
from flux_api.cancel import recorded_or_requested
from flux_api.names import SCHEDULE_LABEL, SCHEDULED_AT_ANNOTATION
from flux_api.timefmt import parse_time


def _section(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return _section(obj, "metadata")


def spec(obj: dict[str, Any]) -> dict[str, Any]:
    return _section(obj, "spec")


def status(obj: dict[str, Any]) -> dict[str, Any]:
    return _section(obj, "status")


def name_of(obj: dict[str, Any]) -> str:
    return str(metadata(obj).get("name", ""))


def namespace_of(obj: dict[str, Any]) -> str:
    return str(metadata(obj).get("namespace", ""))


def key_of(obj: dict[str, Any]) -> tuple[str, str]:
    """(namespace, name): names are only unique within a namespace."""
    return namespace_of(obj), name_of(obj)


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    labels = metadata(obj).get("labels")
    return labels if isinstance(labels, dict) else {}


def annotations_of(obj: dict[str, Any]) -> dict[str, str]:
    annotations = metadata(obj).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def parent_of(obj: dict[str, Any]) -> str | None:
    return labels_of(obj).get(PARENT_LABEL) or None


def execution_label_of(obj: dict[str, Any]) -> str | None:
    """For pods: the execution that owns them."""
    return labels_of(obj).get(EXECUTION_LABEL) or None


def phase_of(obj: dict[str, Any]) -> str:
    """The phase; no status yet means Pending. Unknown values are shown as they are."""
    raw = status(obj).get("phase")
    if not raw:
        return Phase.PENDING
    try:
        return Phase(raw)
    except ValueError:
        return str(raw)


def is_terminal(obj: dict[str, Any]) -> bool:
    return phase_of(obj) in TERMINAL_PHASES


def is_terminal_phase(phase: str | None) -> bool:
    return phase in TERMINAL_PHASES


def spec_cancel(obj: dict[str, Any]) -> dict[str, Any] | None:
    value = spec(obj).get("cancel")
    return value if isinstance(value, dict) else None


def cancellation(obj: dict[str, Any]) -> dict[str, Any] | None:
    value = status(obj).get("cancellation")
    return value if isinstance(value, dict) else None


def checkpoint(obj: dict[str, Any]) -> dict[str, Any] | None:
    value = status(obj).get("checkpoint")
    return value if isinstance(value, dict) else None


def conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    value = status(obj).get("conditions")
    return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []


def reason_of(obj: dict[str, Any]) -> str | None:
    """Why it is (being) stopped: the cancel reason first, else why it finished, else why it waits."""
    intent = recorded_or_requested(obj)
    if intent is not None:
        return intent.reason
    waiting = waiting_reason(obj)
    if waiting:
        return waiting
    if is_terminal(obj):
        for condition in conditions(obj):
            if condition.get("type") == "Finished" and condition.get("reason"):
                return str(condition["reason"])
    return None


def created_at(obj: dict[str, Any]) -> datetime | None:
    return parse_time(metadata(obj).get("creationTimestamp"))


def last_progress(obj: dict[str, Any]) -> datetime | None:
    """When the execution last showed life: checkpoint, else start, else creation."""
    for value in (
        (checkpoint(obj) or {}).get("updatedAt"),
        status(obj).get("startedAt"),
        metadata(obj).get("creationTimestamp"),
    ):
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return None


def seconds_since(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else (now - moment).total_seconds()


def waiting_reason(obj: dict[str, Any]) -> str | None:
    """Why a Pending execution has no runner yet: its start time, or a retry's backoff."""
    st = status(obj)
    if phase_of(obj) != Phase.PENDING.value:
        return None
    if st.get("nextRetryAt"):
        return f"retry {st.get('retries')} at {st['nextRetryAt']}"
    message = st.get("message")
    if isinstance(message, str) and message.startswith("waiting: "):
        return message.removeprefix("waiting: ")
    return None


def scheduling(obj: dict[str, Any]) -> dict[str, Any]:
    """The fields of delayed start, retries, retention and Schedules, as `status` shows them."""
    sp, st = spec(obj), status(obj)
    retry = sp.get("retry") if isinstance(sp.get("retry"), dict) else None
    return {
        "schedule": labels_of(obj).get(SCHEDULE_LABEL),
        "scheduledAt": annotations_of(obj).get(SCHEDULED_AT_ANNOTATION),
        "startAt": sp.get("startAt"),
        "retry": retry,
        "retries": st.get("retries"),
        "nextRetryAt": st.get("nextRetryAt"),
        "ttlSecondsAfterFinished": sp.get("ttlSecondsAfterFinished"),
        "unscheduleRequest": st.get("unscheduleRequest"),
    }
