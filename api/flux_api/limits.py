"""The ConcurrencyLimit resource: at most `max` of the Executions its selector matches run at once.

Like types.py these models are the single source of truth for the CRD (`make crds`). `selects` is the
label selector's meaning (metav1.LabelSelector), read the same way by the operator and the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from flux_api.types import _Model, _Object

MAX_SELECTOR_TERMS = 32
# A label's key (prefix/name) and value at their Kubernetes maxima; a longer one could never match. With the
# values of all a selector's expressions bounded too, a limit stays a few KB: the operator holds every one.
MAX_LABEL_KEY = 317
MAX_LABEL_VALUE = 63
MAX_SELECTOR_VALUES = 128
# Limits of one namespace the operator applies, the first by name: each one costs every decision in its
# namespace, so a namespace cannot make the operator slow for all. The rest say so in their status.
MAX_LIMITS_PER_NAMESPACE = 16
# And their selectors' terms in all (selector_terms), as the first by name: every decision in the namespace weighs
# each term against an execution's labels, so this bounds that work, not the count alone. 16 limits of 16 terms
# (a team label or two is the common selector) fit; so does any one limit (at most 32 + 32 + 128 = 192 terms).
MAX_SELECTOR_TERMS_PER_NAMESPACE = 256


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


LabelValue = Annotated[str, Field(max_length=MAX_LABEL_VALUE)]


class SelectorRequirement(_Model):
    key: str = Field(min_length=1, max_length=MAX_LABEL_KEY)
    operator: SelectorOperator
    values: list[LabelValue] = Field(default_factory=list, max_length=64)


class LabelSelector(_Model):
    """metav1.LabelSelector. Empty matches every Execution in the namespace."""

    matchLabels: dict[str, LabelValue] = Field(default_factory=dict, max_length=MAX_SELECTOR_TERMS)
    matchExpressions: list[SelectorRequirement] = Field(default_factory=list, max_length=MAX_SELECTOR_TERMS)

    @model_validator(mode="after")
    def _bounded(self) -> LabelSelector:
        if any(len(key) > MAX_LABEL_KEY for key in self.matchLabels):
            raise ValueError(f"a matchLabels key is longer than {MAX_LABEL_KEY} characters")
        if sum(len(term.values) for term in self.matchExpressions) > MAX_SELECTOR_VALUES:
            raise ValueError(f"matchExpressions hold more than {MAX_SELECTOR_VALUES} values in all")
        return self


class ConcurrencyLimitSpec(_Model):
    max: int = Field(ge=1, le=100_000, description="At most this many matched Executions hold a slot at once.")
    selector: LabelSelector = Field(default_factory=LabelSelector,
                                    description="Which Executions of this namespace the limit counts; empty: all.")
    includeChildren: bool = Field(False, description="Count child executions too. Off by default: a child "
                                  "never waits for a slot its own ancestor holds.")


class ConcurrencyLimitStatus(_Model):
    active: int | None = Field(None, ge=0, description="Matched executions holding a slot now.")
    queued: int | None = Field(None, ge=0, description="Matched executions waiting for a slot.")
    message: str | None = Field(None, max_length=1024, description="Why the limit is not applied, when it is not.")
    observedGeneration: int | None = None


class ConcurrencyLimit(_Object):
    spec: ConcurrencyLimitSpec
    status: ConcurrencyLimitStatus = Field(default_factory=ConcurrencyLimitStatus)


def selector_terms(selector: LabelSelector) -> int:
    """What a selector weighs: its matchLabels entries, matchExpressions, and their values."""
    return len(selector.matchLabels) + sum(1 + len(term.values) for term in selector.matchExpressions)


def selects(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    """Whether `labels` satisfy every term of the selector (all of matchLabels and matchExpressions)."""
    labels = labels or {}
    if any(labels.get(key) != value for key, value in selector.matchLabels.items()):
        return False
    for term in selector.matchExpressions:
        present = term.key in labels
        if term.operator is SelectorOperator.IN and not (present and labels[term.key] in term.values):
            return False
        if term.operator is SelectorOperator.NOT_IN and present and labels[term.key] in term.values:
            return False
        if term.operator is SelectorOperator.EXISTS and not present:
            return False
        if term.operator is SelectorOperator.DOES_NOT_EXIST and present:
            return False
    return True
