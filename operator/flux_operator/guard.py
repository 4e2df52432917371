"""The backstop: the platform's limits (`--tenancy-policy`) checked again when the operator builds a pod.

The API server refuses an Execution or Schedule that passes them (flux_api.policy_tenant), but an object
admitted before the platform narrowed its limits, or while the policies were missing, would still reach
the operator. Here it ends `Failed` with reason LimitExceeded and a Warning Event instead of getting a pod.
Only what holds for every requester is checked here: whether a requester may create pods is the API
server's question, asked at admission. The platform's own defaults (`--runner-pod-template`) are its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flux_api import Execution, Phase
from flux_api.conditions import FINISHED
from flux_api.events import EventReason
from flux_api.quantity import parse_quantity
from flux_api.tenancy import (
    CONFINEMENT_ANNOTATION_PREFIXES,
    FREE_PROJECTED_SOURCES,
    FREE_VOLUME_TYPES,
    RESTRICTED_VOLUME_TYPES,
    TenancyLimits,
    image_allowed,
    service_account_annotation,
)
from flux_api.types import PodTemplate

from flux_operator.execution.actions import Action, PatchStatus, Plan

REASON = EventReason.LIMIT_EXCEEDED  # also the Finished condition's reason
_ESCALATING = tuple(t for t in RESTRICTED_VOLUME_TYPES if t not in FREE_VOLUME_TYPES)


def volume_types(volume: dict[str, Any]) -> list[str]:
    """The volume's types that give more than emptyDir, downwardAPI, ConfigMaps and Secrets do."""
    def free(kind: str) -> bool:
        if kind == "projected":
            sources = (volume.get("projected") or {}).get("sources") or []
            return all(set(s) <= set(FREE_PROJECTED_SOURCES) for s in sources if isinstance(s, dict))
        return kind in FREE_VOLUME_TYPES
    return [k for k in volume if k != "name" and not free(k)]


def _quantity_over(value: Any, most: Any) -> bool:
    try:
        return parse_quantity(value) > parse_quantity(most)
    except ValueError:
        return True  # not a quantity: the API server would refuse the pod anyway


def _resources(template: PodTemplate, limits: TenancyLimits, at: str) -> list[str]:
    if not limits.maxResources or template.resources is None:
        return []
    problems = [f"{at}.resources.limits.{k}: must be set, at most {m} (the platform maximum)"
                for k, m in limits.maxResources.items() if k not in template.resources.limits]
    for part in ("requests", "limits"):
        for k, value in getattr(template.resources, part).items():
            if k in limits.maxResources and _quantity_over(value, limits.maxResources[k]):
                problems.append(f"{at}.resources.{part}.{k}: {value} is more than {limits.maxResources[k]}, "
                                "the platform maximum")
            elif part == "limits" and k in limits.maxResources and _no_limit(value):
                # The kubelet sets no cgroup limit for 0: it would be more than any maximum.
                problems.append(f"{at}.resources.limits.{k}: {value} is no limit at all; at most "
                                f"{limits.maxResources[k]}, the platform maximum")
    return problems


def _no_limit(value: Any) -> bool:
    try:
        return parse_quantity(value) <= 0
    except ValueError:
        return False  # not a quantity: _quantity_over said so


def _toleration_key(t: dict[str, Any]) -> tuple:
    return t.get("key") or "", t.get("operator") or "Equal", t.get("value") or "", t.get("effect") or ""


def template_problems(template: PodTemplate, limits: TenancyLimits, namespace: str, at: str) -> list[str]:
    """What in `template` passes the limits, as '<path>: why' lines (empty: nothing)."""
    problems = _resources(template, limits, at)
    for i, volume in enumerate(template.volumes):
        for kind in volume_types(volume.model_dump()):
            allowed = limits.allowedVolumeTypes if limits.allowedVolumeTypes is not None else _ESCALATING
            if kind not in allowed:
                problems.append(f"{at}.volumes[{i}]: {kind} volumes are not allowed")
    if limits.allowedPriorityClasses is not None and template.priorityClassName is not None and \
            template.priorityClassName not in limits.allowedPriorityClasses:
        problems.append(f"{at}.priorityClassName: {template.priorityClassName} is not a priority class the "
                        "platform allows")
    if limits.allowedNodeSelectors is not None:
        problems += [f"{at}.nodeSelector.{k}: {k}={v} is not a node selector the platform allows"
                     for k, v in template.nodeSelector.items() if v not in limits.allowedNodeSelectors.get(k, [])]
    if limits.allowedTolerations is not None:
        allowed_tolerations = {_toleration_key(t.model_dump()) for t in limits.allowedTolerations}
        problems += [f"{at}.tolerations[{i}]: not a toleration the platform allows"
                     for i, t in enumerate(template.tolerations) if _toleration_key(t) not in allowed_tolerations]
    metadata = template.metadata
    labels, annotations = (metadata.labels, metadata.annotations) if metadata else ({}, {})
    if limits.allowedPodLabels is not None:
        problems += [f"{at}.metadata.labels.{k}: not a pod label the platform allows"
                     for k in labels if k not in limits.allowedPodLabels]
    allowed_annotations = limits.allowedPodAnnotations
    problems += [f"{at}.metadata.annotations.{k}: " + ("not a pod annotation the platform allows"
                 if allowed_annotations is not None else "runner pods meet the Pod Security Standard restricted")
                 for k in annotations if (allowed_annotations is not None and k not in allowed_annotations)
                 or (allowed_annotations is None and k.startswith(CONFINEMENT_ANNOTATION_PREFIXES))]
    if limits.serviceAccountAnnotations is not None:
        for k, v in template.serviceAccountAnnotations.items():
            wanted = limits.serviceAccountAnnotations.get(k)
            if wanted is None or v != service_account_annotation(wanted, namespace):
                problems.append(f"{at}.serviceAccountAnnotations.{k}: not a value the platform allows")
    return problems


def limit_problems(ex: Execution, limits: TenancyLimits | None) -> list[str]:
    """What in the execution's own spec passes the platform's limits."""
    if limits is None:
        return []
    problems = []
    image = ex.spec.image
    if image is not None and limits.allowedImages is not None and not image_allowed(image, limits.allowedImages):
        problems.append(f"spec.image: {image} is not an image the platform allows")
    if ex.spec.podTemplate is not None:
        problems += template_problems(ex.spec.podTemplate, limits, ex.namespace, "spec.podTemplate")
    return problems


def refusal(ex: Execution, problems: list[str], now: datetime) -> list[Action]:
    """Failed, with the problems as the message, a Finished condition and a Warning Event; no pod."""
    message = f"{REASON}: " + "; ".join(problems)
    message = message if len(message) <= 4000 else message[:3997] + "..."
    plan = Plan()
    plan.status.set(phase=Phase.FAILED, finishedAt=now, message=message,
                       observedGeneration=ex.metadata.get("generation"))
    plan.condition(ex, now, FINISHED, True, REASON, message)
    plan.event(REASON, message, "Warning")
    return [*plan.actions, PatchStatus(plan.status.patch())]
