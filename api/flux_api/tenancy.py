"""The platform's tenancy policy: who the operator is, and what any Execution may ask of its runner pod.

One cluster-scoped `TenancyPolicy` object (named `flux-tenancy`) is the parameter of the admission
policies (flux_api.policy_tenant): the API server reads it on every Execution and Schedule write. The
chart renders it from its `tenancy` values and the operator's identity; the operator gets the same limits
as `--tenancy-policy` and refuses to build a pod that passes them (a backstop), and checks at start-up
that the object in the cluster says what its flag says.

Each `allowed*` field has two states. Unset (absent, null): the field of `spec.podTemplate` needs what a
requester would need to do it directly (`create pods`); set (a list, possibly empty): the list decides for
every requester alike, and nothing outside it passes, whatever their rights.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from flux_api.names import GROUP
from flux_api.quantity import is_quantity
from flux_api.types import _Model

KIND = "TenancyPolicy"
PLURAL = "tenancypolicies"
SINGULAR = "tenancypolicy"
# The one object every binding reads (paramRef.name).
NAME = "flux-tenancy"
# `{namespace}` in a serviceAccountAnnotations template is the Execution's namespace.
NAMESPACE_PLACEHOLDER = "{namespace}"

# Volume types the Pod Security Standard `restricted` admits; no runner pod gets another type unless
# the platform lists it in allowedVolumeTypes.
RESTRICTED_VOLUME_TYPES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                           "projected", "secret")
# Volume types that give nothing the requester lacks (Secrets and ConfigMaps are checked by name).
FREE_VOLUME_TYPES = ("configMap", "downwardAPI", "emptyDir", "secret")
# Sources of a `projected` volume that are free in the same way; any other source makes it a `projected`
# volume that needs `create pods` (a ServiceAccount token for any audience, a trust bundle, a certificate).
FREE_PROJECTED_SOURCES = ("configMap", "downwardAPI", "secret")
# Executions in one tree at most, unless the platform says otherwise: 50 children a level and 5 levels allow
# over 300 million, and the operator makes them all with its own identity and client budget.
DEFAULT_MAX_TREE = 1000
# Pod annotations that loosen the container's confinement (PSS `restricted`): refused unless listed.
CONFINEMENT_ANNOTATION_PREFIXES = ("container.apparmor.security.beta.kubernetes.io/",
                                   "seccomp.security.alpha.kubernetes.io/")


class Toleration(_Model):
    """A toleration runner pods may carry: a template's must equal one (no operator is Equal, no field empty)."""

    key: str | None = Field(None, max_length=316)
    operator: Literal["Equal", "Exists"] | None = None
    value: str | None = Field(None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class TenancyLimits(_Model):
    """What any Execution may ask of its runner pod: the chart's `tenancy` values, the operator's
    `--tenancy-policy` flag, and (with `operators`) the spec of the TenancyPolicy object."""

    allowedImages: list[str] | None = Field(
        None, max_length=64, description="Prefixes spec.image may start with; unset: spec.image needs create pods.")
    allowedVolumeTypes: list[str] | None = Field(
        None, max_length=64,
        description="Volume types beyond emptyDir, downwardAPI, configMap and secret; unset: csi, ephemeral, "
                    "persistentVolumeClaim and projected (other sources) need create pods, other types none.")
    allowedPriorityClasses: list[str] | None = Field(None, max_length=64)
    allowedNodeSelectors: dict[str, list[str]] | None = Field(
        None, max_length=64, description="Node label keys and the values a nodeSelector may ask for.")
    allowedTolerations: list[Toleration] | None = Field(None, max_length=64)
    allowAffinity: bool = Field(False, description="Any affinity for everyone; false: affinity needs create pods.")
    allowedPodLabels: list[str] | None = Field(None, max_length=64, description="Label keys of the runner pod.")
    allowedPodAnnotations: list[str] | None = Field(
        None, max_length=64, description="Annotation keys of the runner pod.")
    serviceAccountAnnotations: dict[str, str] | None = Field(
        None, max_length=64,
        description="Annotation keys of the runner's ServiceAccount and the one value each may have; "
                    "{namespace} stands for the Execution's namespace.")
    maxResources: dict[str, str | int] = Field(
        default_factory=dict, max_length=16,
        description="Most a runner container may request or be limited to, per resource; a template that sets "
                    "resources must set a limit for each resource named here.")
    defaultTtlSecondsAfterFinished: int | None = Field(
        None, ge=0, le=31536000,
        description="The operator's default TTL of finished top-level executions, so that lowering a TTL "
                    "below it is seen as deleting sooner.")
    maxExecutionsPerTree: int = Field(
        DEFAULT_MAX_TREE, ge=1, le=1_000_000,
        description="Most executions one tree (a root and every child spawned below it) may hold at once; a spawn "
                    "past it is refused (TreeFull). The caps per execution and on depth alone allow millions.")

    @field_validator("maxResources")
    @classmethod
    def _quantities(cls, value: dict[str, str | int]) -> dict[str, str | int]:
        bad = [k for k, v in value.items() if not is_quantity(v)]
        if bad:
            raise ValueError(f"maxResources.{bad[0]}: {value[bad[0]]!r} is not a quantity (such as 2, 500m or 4Gi)")
        return value


class TenancyPolicySpec(TenancyLimits):
    operators: list[str] = Field(
        min_length=1, max_length=8,
        description="User names of the operator (system:serviceaccount:<namespace>:<name>): exempt from the "
                    "tenancy policies, and the only ones who may set its labels and ownerReferences.")


def tenancy_policy(operators: list[str], limits: TenancyLimits | None = None) -> dict[str, Any]:
    """The TenancyPolicy object for these operator identities and limits (what the chart renders)."""
    spec = TenancyPolicySpec(operators=operators, **(limits or TenancyLimits()).model_dump(exclude_none=True))
    # Defaults left out: an empty map in a server-side apply would remove the field's keys as null.
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": KIND, "metadata": {"name": NAME},
            "spec": spec.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {"operators": operators}}


def limits_of(spec: dict[str, Any]) -> TenancyLimits:
    """The limits part of a TenancyPolicy's spec, as the operator's flag would give them."""
    return TenancyLimits.model_validate({k: v for k, v in spec.items() if k != "operators"})


def service_account_annotation(template: str, namespace: str) -> str:
    return template.replace(NAMESPACE_PLACEHOLDER, namespace)


def main(argv: list[str] | None = None) -> int:
    """`python -m flux_api.tenancy --operator USER [--limits JSON]`: the TenancyPolicy as JSON, for kubectl apply."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m flux_api.tenancy", description=main.__doc__)
    parser.add_argument("--operator", action="append", required=True, help="the operator's user name (repeatable)")
    parser.add_argument("--limits", default="{}", help="the platform's limits, as --tenancy-policy takes them")
    args = parser.parse_args(argv)
    print(json.dumps(tenancy_policy(args.operator, TenancyLimits.model_validate_json(args.limits)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# Where an allowed image prefix may end: `registry.example.com` admits `registry.example.com/team/x:1`, never
# `registry.example.com.evil.io/x`; `registry/team-a` admits `registry/team-a/x` and `registry/team-a:1`, never
# `registry/team-ab/x`. The admission policy says the same in CEL (policy_tenant.image_allowed_cel).
IMAGE_BOUNDARIES = "/:@"


def image_allowed(image: str, prefixes: list[str]) -> bool:
    return any(image == p or (image.startswith(p) and (p[-1] in IMAGE_BOUNDARIES or image[len(p)] in IMAGE_BOUNDARIES))
               for p in prefixes if p)

