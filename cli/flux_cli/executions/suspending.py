"""`kubectl flux suspend|resume`: set spec.suspend, exactly what `kubectl patch` or a GitOps commit does.

The operator does the rest (stops the runner gracefully, keeps its checkpoint; a resume starts a new pod
that skips every finished step). What cannot be suspended gets a clear answer and exit code 3.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from flux_api import Phase
from flux_api.cancel import requested_cancel
from flux_api.names import SUSPEND_REASON_ANNOTATION, SUSPENDED_BY_ANNOTATION
from flux_api.types import MAX_REASON

from flux_cli import objects
from flux_cli.errors import ArgumentError, ExitCode
from flux_cli.kube import Kube


def suspend_patch(reason: str | None) -> dict[str, Any]:
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        raise ArgumentError(f"--reason is too long ({len(reason)} characters, at most {MAX_REASON})")
    return {"metadata": {"annotations": {SUSPEND_REASON_ANNOTATION: reason}}, "spec": {"suspend": True}}


def resume_patch() -> dict[str, Any]:
    return {"metadata": {"annotations": {SUSPEND_REASON_ANNOTATION: None, SUSPENDED_BY_ANNOTATION: None}},
            "spec": {"suspend": False}}


@dataclass
class Toggled:
    name: str
    namespace: str
    phase: str
    changed: bool
    message: str
    exit_code: ExitCode = ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {k: (int(v) if k == "exit_code" else v) for k, v in asdict(self).items()}


def refusal(obj: dict[str, Any], verb: str) -> str | None:
    """Why `verb` (suspend, resume) has nothing to do on this execution; None when it has."""
    phase = objects.phase_of(obj)
    if objects.is_terminal(obj):
        return f"already finished ({phase}): nothing to {verb}"
    # Asked for in the spec or the annotation, or recorded by the operator (a deadline's cancel is in status only).
    if requested_cancel(obj) is not None or objects.cancellation(obj) or phase == "Cancelling":
        return f"being cancelled ({phase}): a cancel cannot be undone, nothing to {verb}"
    return None


def suspend(kube: Kube, namespace: str, name: str, reason: str | None) -> Toggled:
    patch = suspend_patch(reason)
    obj = kube.get_execution(namespace, name)
    phase = str(objects.phase_of(obj))
    if (why := refusal(obj, "suspend")) is not None:
        return Toggled(name, namespace, phase, False, why, ExitCode.ALREADY_FINISHED)
    if objects.spec(obj).get("suspend") is True:
        return Toggled(name, namespace, phase, False, f"already suspended ({phase})")
    kube.patch_execution(namespace, name, patch)
    return Toggled(name, namespace, phase, True, f"suspend requested ({phase}): the runner stops gracefully and "
                                                 "keeps its checkpoint")


def resume(kube: Kube, namespace: str, name: str) -> Toggled:
    obj = kube.get_execution(namespace, name)
    phase = str(objects.phase_of(obj))
    if (why := refusal(obj, "resume")) is not None:
        return Toggled(name, namespace, phase, False, why, ExitCode.ALREADY_FINISHED)
    if objects.spec(obj).get("suspend") is not True:
        return Toggled(name, namespace, phase, False, f"not suspended ({phase}): nothing to resume")
    kube.patch_execution(namespace, name, resume_patch())
    after = "a new pod continues from the checkpoint" if phase == Phase.SUSPENDED else \
        "it resumes from the checkpoint once its runner has stopped"
    return Toggled(name, namespace, phase, True, f"resume requested ({phase}): {after}")
