"""An Execution as the World keeps it: the part decisions read, bounded in size (world.py holds these).

No input or seed, no step records or data, no managed fields; large or deep payloads as stubs (payloads.py);
and of a checkpoint only the runner's verdict, so a checkpoint that only progressed changes nothing kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flux_api import Phase
from flux_api.cancel import first_cancel_time
from flux_api.names import CANCEL_ANNOTATION
from flux_api.signals import field_manager_of

from flux_operator import payloads

# The typed spec fields passed on to the runner pod and children, kept only when small (payloads.py).
KEPT_OUT_SPEC = ("podTemplate", "image")


def trim_execution(raw: dict[str, Any]) -> dict[str, Any]:
    """The part of an Execution that decisions read, bounded in size. The rest stays on the server."""
    meta = raw.get("metadata") or {}
    kept_meta = payloads.metadata(meta)
    spec = {k: v for k, v in (raw.get("spec") or {}).items() if k not in ("input", "seed")}  # the runner's to read
    for field in KEPT_OUT_SPEC:
        payloads.keep_out(spec, field, f"spec.{field}", kept_meta)
    if isinstance(spec.get("signals"), list):  # who sent them and why; the data is the runner's to read
        spec["signals"] = [{k: s[k] for k in ("name", "reason", "sentBy") if k in s}
                           for s in spec["signals"] if isinstance(s, dict)]
        if (manager := field_manager_of(meta.get("managedFields"))) is not None:
            kept_meta[payloads.SIGNALS_FIELD_MANAGER] = manager
    status = dict(raw.get("status") or {})
    checkpoint = status.get("checkpoint")
    if isinstance(checkpoint, dict):
        status["checkpoint"] = _verdict(checkpoint)
    for field, value in (("spawnRequests", "input"), ("children", "result")):
        if isinstance(status.get(field), list):
            status[field] = [{**item, value: payloads.shrink(item[value])}
                             if isinstance(item, dict) and value in item else item for item in status[field]]
    return {"apiVersion": raw.get("apiVersion"), "kind": raw.get("kind"), "metadata": kept_meta,
            "spec": spec, "status": status}


# Of a checkpoint, decisions read only the runner's verdict: its state, error and result, and when it wrote a
# final one (a cancel's acknowledgement). Its progress (steps, ledger, data, sequence, the time of a Running
# write) is left out, so a checkpoint that only progressed changes nothing the operator keeps or decides on.
_VERDICT = ("state", "error", "result", "wakeAt", "waiting", "signal")


def _verdict(checkpoint: dict[str, Any]) -> dict[str, Any]:
    if checkpoint.get("state") == Phase.RUNNING:
        # No verdict yet, and no wait: nothing else in it is read, so a runner that changes its error, result
        # or wait fields on every write while Running is as quiet as one that only progresses.
        return {"state": checkpoint["state"]}
    kept = {k: payloads.shrink(checkpoint[k]) if k == "result" else checkpoint[k] for k in _VERDICT
            if k in checkpoint}
    if checkpoint.get("state") != Phase.RUNNING and "updatedAt" in checkpoint:
        kept["updatedAt"] = checkpoint["updatedAt"]
    return kept


def decided_on(trimmed: dict[str, Any]) -> dict[str, Any]:
    """What a decision reads of a trimmed object: all of it but its resourceVersion."""
    meta = {k: v for k, v in trimmed["metadata"].items() if k != "resourceVersion"}
    return {**trimmed, "metadata": meta}


def cancel_asked_at(raw: dict[str, Any]) -> datetime | None:
    """When the object's cancel request reached the API (first_cancel_time); None at once when it has none, so
    a checkpoint write of an execution nobody cancelled is not paid with a walk through its managedFields."""
    meta = raw.get("metadata") or {}
    if (raw.get("spec") or {}).get("cancel") is None and CANCEL_ANNOTATION not in (meta.get("annotations") or {}):
        return None
    return first_cancel_time(meta.get("managedFields"))


def is_stale(uid: str | None, rv: str | None, held_uid: str | None, held_rv: str | None) -> bool:
    """Whether a version of an object (uid, resourceVersion) is older than the one held, so must not
    replace it. resourceVersions compare as integers on etcd; a new uid is a new object under the same
    name, and an unreadable version is taken as news."""
    if uid != held_uid:
        return False
    try:
        return int(held_rv) > int(rv)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
