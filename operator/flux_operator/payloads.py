"""What the World keeps of an object, bounded whatever its size: memory must not grow with what tenants write.

Decisions never read a payload (a pod template, an image, a spawn request's input, a result): they pass it
on or compare it. So the World keeps each one only when it is small; a large one becomes a size stub whose
digest compares equal exactly when the values do, and the reconciler reads the object once when an action
needs the value itself. A payload nested deeper than Flux passes on becomes a depth stub, which decisions
refuse with a clear message. Of the metadata, only what decisions read is kept, each part bounded. Every
measure here is iterative (flux_api.nesting) or runs only on values already known to be shallow.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flux_api import KIND, nesting
from flux_api.names import (
    CANCEL_ANNOTATION,
    CANCELLED_BY_ANNOTATION,
    CREATE_TOKEN_ANNOTATION,
    DEPTH_LABEL,
    EXECUTION_LABEL,
    PARENT_LABEL,
    REPLACED_BY_ANNOTATION,
    ROOT_LABEL,
    RUN_TOKEN_ANNOTATION,
    SCHEDULE_KIND,
    SCHEDULE_LABEL,
    SCHEDULED_AT_ANNOTATION,
    SUSPEND_REASON_ANNOTATION,
    SUSPENDED_BY_ANNOTATION,
    UNSCHEDULE_REASON_ANNOTATION,
)
from flux_api.tracecontext import TRACEPARENT_ANNOTATION

KEEP_BYTES = 2048  # a payload larger than this (as compact JSON) is kept on the server only
# In a trimmed object's metadata: the typed fields kept on the server only ({"spec.podTemplate": stub}).
# A typed field cannot hold a stub (the models ignore unknown keys: it would read as an empty template).
KEPT_OUT = "flux.internal/keptOut"
# In the trimmed metadata: the field manager that last wrote spec.signals (managedFields are not kept).
SIGNALS_FIELD_MANAGER = "flux.internal/signalsFieldManager"
_KEPT_METADATA = ("name", "namespace", "uid", "generation", "resourceVersion", "creationTimestamp",
                  "deletionTimestamp")
# Of our prefix, only the names decisions read: anyone who may write the object may add any number of others.
READ_ANNOTATIONS = frozenset({CANCEL_ANNOTATION, CANCELLED_BY_ANNOTATION, CREATE_TOKEN_ANNOTATION,
                              REPLACED_BY_ANNOTATION, RUN_TOKEN_ANNOTATION, SCHEDULED_AT_ANNOTATION,
                              SUSPEND_REASON_ANNOTATION, SUSPENDED_BY_ANNOTATION, UNSCHEDULE_REASON_ANNOTATION,
                              TRACEPARENT_ANNOTATION})
READ_LABELS = frozenset({PARENT_LABEL, DEPTH_LABEL, ROOT_LABEL, SCHEDULE_LABEL, EXECUTION_LABEL})
_OUR_KINDS = (KIND, SCHEDULE_KIND)
# A tenant's labels are kept while they are this small (as key=value text), for the selectors of concurrency
# limits; past it only ours are, with LABELS_CUT set, and every limit of the namespace counts the execution
# (so no pile of labels lets an execution slip out from under a limit).
MAX_LABEL_BYTES = 4096
LABELS_CUT = "flux.internal/labelsCut"
MAX_OWNERS = 16  # ownerReferences kept (the controller's and our kinds'), the controller's first
MAX_ANNOTATION = 8192  # characters of one of our annotations kept (a cancel reason reads at most 1024)


def shrink(value: Any) -> Any:
    """`value` itself when small and shallow; otherwise its stub."""
    if nesting.elided(value) is not None:
        return value  # already a stub (the decoder's)
    if isinstance(value, (dict, list)) and nesting.depth(value, nesting.PAYLOAD_DEPTH) > nesting.PAYLOAD_DEPTH:
        return nesting.deep_stub(nesting.depth(value))
    if isinstance(value, (dict, list, str)) and _size(value) > KEEP_BYTES:
        text = _canonical(value)
        return nesting.size_stub(len(text), hashlib.blake2b(text.encode(), digest_size=12).hexdigest())
    return value


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def is_size_stub(value: Any) -> bool:
    stub = nesting.elided(value)
    return stub is not None and stub.get("reason") == "size"


def is_deep_stub(value: Any) -> bool:
    stub = nesting.elided(value)
    return stub is not None and stub.get("reason") == "depth"


def keep_out(fields: dict[str, Any], key: str, where: str, meta: dict[str, Any]) -> None:
    """Removes `fields[key]` unless small and shallow, recording why in `meta` under its path `where`."""
    if key not in fields:
        return
    kept = shrink(fields[key])
    if kept is not fields[key]:
        del fields[key]
        meta.setdefault(KEPT_OUT, {})[where] = nesting.elided(kept)


def kept_out(metadata: dict[str, Any], *where: str) -> list[str]:
    """Which of the fields `where` the trimmed copy lacks (all of them kept out, with no argument)."""
    out = metadata.get(KEPT_OUT) or {}
    return [w for w in (where or out) if w in out]


def depth_problem(metadata: dict[str, Any], *where: str) -> str | None:
    """Why a field of `where` cannot be used: it nests deeper than Flux passes on."""
    out = metadata.get(KEPT_OUT) or {}
    for path in where:
        if (out.get(path) or {}).get("reason") == "depth":
            return f"{path} nests deeper than {nesting.PAYLOAD_DEPTH} levels: Flux passes on at most " \
                   f"{nesting.PAYLOAD_DEPTH}"
    return None


def value_problem(value: Any, what: str) -> str | None:
    """Why `value` (as the World keeps it) cannot be passed on: it nests too deep."""
    if is_deep_stub(value):
        return f"{what} nests deeper than {nesting.PAYLOAD_DEPTH} levels: Flux passes on at most " \
               f"{nesting.PAYLOAD_DEPTH}"
    return None


def metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """What decisions read of an object's metadata: identity, versions, its labels while small (those we read
    always), the annotations we read and ownerReferences (a tenant may add thousands of others, under our
    prefix too; they are not ours to read)."""
    kept = {k: meta[k] for k in _KEPT_METADATA if k in meta}
    labels = meta.get("labels") or {}
    if sum(len(k) + len(str(v)) + 2 for k, v in labels.items()) > MAX_LABEL_BYTES:
        labels = {k: v for k, v in labels.items() if k in READ_LABELS}
        kept[LABELS_CUT] = True
    if labels:
        kept["labels"] = labels
    annotations = {k: str(v)[:MAX_ANNOTATION] for k, v in (meta.get("annotations") or {}).items()
                   if k in READ_ANNOTATIONS}
    if annotations:
        kept["annotations"] = annotations
    owners = [o for o in meta.get("ownerReferences") or [] if isinstance(o, dict)
              and (o.get("controller") or o.get("kind") in _OUR_KINDS)]
    if owners:
        kept["ownerReferences"] = sorted(owners, key=lambda o: not o.get("controller"))[:MAX_OWNERS]
    return kept
