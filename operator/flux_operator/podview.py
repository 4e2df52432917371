"""A runner pod as decisions see it (PodView): its phase, whether its container ever started, why it ended,
whose it is, what the scheduler said of it, and what gate (Kueue's admission) holds it back."""

from __future__ import annotations

from typing import Any

from flux_api.names import CREATE_TOKEN_ANNOTATION, KUEUE_ADMISSION_GATE, KUEUE_QUEUE_LABEL
from flux_api.timefmt import parse_time

from flux_operator.execution.actions import PodView


def pod_view(pod: dict[str, Any]) -> PodView:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    started = any("running" in (s.get("state") or {}) or "terminated" in (s.get("state") or {})
                  or s.get("restartCount", 0) > 0 for s in statuses)
    message = ""
    for s in statuses:
        terminated = (s.get("state") or {}).get("terminated") or (s.get("lastState") or {}).get("terminated")
        if terminated:
            message = (terminated.get("message") or "").strip() or \
                f"runner exited with code {terminated.get('exitCode')} ({terminated.get('reason', 'Error')})"
    owners = [o.get("uid") for o in meta.get("ownerReferences") or [] if o.get("controller")]
    gates = [g.get("name") for g in (pod.get("spec") or {}).get("schedulingGates") or [] if isinstance(g, dict)]
    waiting = next(((s.get("state") or {}).get("waiting") or {} for s in statuses
                    if isinstance((s.get("state") or {}).get("waiting"), dict)), {})
    unscheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"
                        and c.get("status") == "False" and c.get("reason") == "Unschedulable"), None)
    return PodView(name=meta.get("name", ""), phase=status.get("phase", "Pending"),
                   terminating=bool(meta.get("deletionTimestamp")), started=started, exit_message=message,
                   uid=meta.get("uid", ""), owner_uid=owners[0] if owners else "",
                   deletion_at=parse_time(meta.get("deletionTimestamp")), node=(pod.get("spec") or {}).get("nodeName") or "",
                   reason=status.get("reason") or "", resource_version=meta.get("resourceVersion") or "",
                   unschedulable=((unscheduled.get("message") or "no node fits it") if unscheduled else ""),
                   token=str((meta.get("annotations") or {}).get(CREATE_TOKEN_ANNOTATION) or ""),
                   gate=KUEUE_ADMISSION_GATE if KUEUE_ADMISSION_GATE in gates else str(gates[0] or "") if gates else "",
                   queue=str((meta.get("labels") or {}).get(KUEUE_QUEUE_LABEL) or ""),
                   held=bool(meta.get("finalizers")),
                   waiting=str(waiting.get("reason") or ""), waiting_message=str(waiting.get("message") or ""))
