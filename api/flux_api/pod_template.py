"""spec.podTemplate: what a user may set on the runner pod (the CRD's schema and CEL rules come from here and
from flux_api.crd_rules; the tenancy policies check the rest against the requester)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from flux_api.fields import _Model
from flux_api.quantity import MAX_LENGTH as QUANTITY_MAX_LENGTH


class _Open(BaseModel):
    """Kubernetes objects passed through to the runner pod as they are: unknown keys are kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class EnvVar(_Open):
    name: str = Field(min_length=1, max_length=253)


class Volume(_Open):
    name: str = Field(min_length=1, max_length=63)


class VolumeMount(_Open):
    name: str = Field(min_length=1, max_length=63)
    mountPath: str = Field(min_length=1, max_length=4096)


class LocalObjectReference(_Model):
    name: str = Field(min_length=1, max_length=253)


# A label value the API server takes (empty, or alphanumerics with -_. inside): refused by the CRD at the create
# of an Execution or a Schedule, not only later at the create of the pod or the run that carries it. The schema
# only: an object stored before this still parses, so its pod's or run's refusal is still said on it.
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LabelValue = Annotated[str, Field(json_schema_extra={"maxLength": 63, "pattern": LABEL_VALUE_PATTERN})]


class PodMetadata(_Model):
    labels: dict[str, LabelValue] = Field(default_factory=dict, max_length=64)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=64)


# A quantity (flux_api.quantity), bounded so that no one's value costs the operator more than a glance.
Quantity = Annotated[str, Field(max_length=QUANTITY_MAX_LENGTH)] | int


class ResourceRequirements(_Model):
    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


class PodTemplate(_Model):
    """What a user may set on the runner pod. The command, the token, the grace period, the labels the
    operator selects by and the security context are the operator's: CEL rules on the CRD refuse them."""

    metadata: PodMetadata | None = Field(None, description="Extra labels and annotations of the runner pod.")
    env: list[EnvVar] = Field(default_factory=list, max_length=256, description="Extra environment variables (not FLUX_*).")
    envFrom: list[dict[str, Any]] = Field(default_factory=list, max_length=64, description="Secrets and ConfigMaps as env.")
    resources: ResourceRequirements | None = Field(None, description="Replaces the operator's default resources.")
    volumes: list[Volume] = Field(default_factory=list, max_length=64)
    volumeMounts: list[VolumeMount] = Field(default_factory=list, max_length=64, description="Mounts in the runner container.")
    nodeSelector: dict[str, str] = Field(default_factory=dict, max_length=64)
    tolerations: list[dict[str, Any]] = Field(default_factory=list, max_length=64)
    affinity: dict[str, Any] | None = None
    priorityClassName: str | None = Field(None, max_length=253)
    imagePullSecrets: list[LocalObjectReference] = Field(default_factory=list, max_length=16)
    serviceAccountAnnotations: dict[str, str] = Field(
        default_factory=dict, max_length=64,
        description="Annotations of the runner's ServiceAccount (cloud workload identity); "
                    "its Kubernetes RBAC stays the same.")
