"""Signals: `spec.signals`, appended by whoever may patch the Execution (a person, the plugin, a GitOps commit),
read by the runner (`ctx.wait_for_signal`) and recorded by the operator (`status.signals`).

A workflow's k-th wait for a name takes the k-th signal of that name, in list order, so a replay after a
restart takes the same one. The list is append-only (a CEL rule), bounded in count and in size.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_SIGNALS = 32
MAX_SIGNAL_DATA = 4096  # characters of JSON text
MAX_SIGNAL_REASON = 256
MAX_USER_NAME = 512  # an OIDC user name carries its issuer
SIGNAL_NAME_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"

# Each place the list may have (it holds at most MAX_SIGNALS), as a CEL list: rules go over spec.signals place by
# place, as CEL has no slice in every Kubernetes release we serve (this rule, and flux_api.policy_signals).
PLACES = "[" + ", ".join(str(i) for i in range(MAX_SIGNALS)) + "]"
# Old and new compared place by place: "each old signal is still there" was not enough, since one put in front of
# a signal not yet taken would have been taken in its stead.
APPEND_ONLY = {
    "rule": "!has(oldSelf.signals) || (has(self.signals) && self.signals.size() >= oldSelf.signals.size()"
            f" && {PLACES}.all(i, i >= oldSelf.signals.size() || self.signals[i] == oldSelf.signals[i]))",
    "message": "spec.signals is append-only: a signal sent cannot be removed, changed or moved, and a new one "
               "goes at the end",
    "reason": "FieldValueForbidden",
    "fieldPath": ".signals",
}


class Signal(BaseModel):
    """One signal: a name the workflow waits for, optional JSON data (as text) and why it was sent."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=SIGNAL_NAME_PATTERN, max_length=63, description="What the workflow waits for.")
    data: str | None = Field(None, max_length=MAX_SIGNAL_DATA,
                             description="JSON text, handed to the workflow decoded (ctx.wait_for_signal's value).")
    reason: str = Field("", max_length=MAX_SIGNAL_REASON, description="Why it was sent.")
    sentBy: str | None = Field(None, min_length=1, max_length=MAX_USER_NAME,
                               description="Who sent it: the sender's own user name, as the API server knows them "
                                           "(a policy refuses any other). Left out, the sender is not verified.")


class SignalWait(BaseModel):
    """In a Waiting checkpoint: the signal the workflow waits for (the `occurrence`-th of `name`, from 1)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=63)
    occurrence: int = Field(1, ge=1, le=MAX_SIGNALS)


# A runner records its k-th wait for signal `name` as two steps (flux_runner.signalling): the signal step
# `signal-<name>-<k>` (what it took) and its wait step `signal-<name>-<k>-wait` (its deadline).
SIGNAL_STEP_PREFIX = "signal-"
WAIT_STEP_SUFFIX = "-wait"


def signal_step(name: str, wait: int) -> str:
    return f"{SIGNAL_STEP_PREFIX}{name}-{wait}"


def wait_step(step: str) -> str:
    return f"{step}{WAIT_STEP_SUFFIX}"


def nth(signals: list[Any], name: str, occurrence: int) -> Any | None:
    """The `occurrence`-th signal called `name` (from 1), or None yet."""
    index = nth_index(signals, name, occurrence)
    return signals[index] if index is not None else None


def nth_index(signals: list[Any], name: str, occurrence: int) -> int | None:
    """Where in the list the `occurrence`-th signal called `name` is (status.signals records it by that place)."""
    found = [i for i, s in enumerate(signals)
             if (s.get("name") if isinstance(s, dict) else getattr(s, "name", None)) == name]
    return found[occurrence - 1] if len(found) >= occurrence else None


def field_manager_of(managed_fields: list[dict[str, Any]] | None) -> str | None:
    """The field manager that last wrote spec.signals (the list is atomic: its last writer owns it). The client
    names it, so it says which tool wrote the list, not who sent a signal (that is a signal's own sentBy)."""
    owners = [(str(entry.get("time") or ""), str(entry.get("manager") or ""))
              for entry in managed_fields or [] if isinstance(entry, dict)
              and "f:signals" in (((entry.get("fieldsV1") or {}).get("f:spec")) or {})]
    return max(owners)[1] if owners else None
