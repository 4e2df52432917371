"""Which executions a command targets: argument checks, stale filtering, overlap removal."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flux_cli import objects
from flux_cli.errors import ArgumentError

# Kubernetes object names (RFC 1123 subdomain): checked early so a typo never reaches a URL.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class Selection:
    """Exactly one way of choosing: names, a label selector, or every execution."""

    names: tuple[str, ...] = ()
    selector: str | None = None
    everything: bool = False
    all_namespaces: bool = False

    @property
    def by_name(self) -> bool:
        return bool(self.names)


def check_name(name: str) -> str:
    if len(name) > 253 or not _NAME.fullmatch(name):
        raise ArgumentError(f"invalid execution name {name!r}: use lowercase letters, digits, '-' and '.'")
    return name


def make_selection(
    names: Sequence[str] | None, selector: str | None, everything: bool, all_namespaces: bool
) -> Selection:
    names = list(names or [])
    if selector is not None and not selector.strip():
        raise ArgumentError("-l/--selector needs a label selector, e.g. -l app=etl")
    if names and everything:
        raise ArgumentError("give NAME arguments or --all, not both")
    if names and selector is not None:
        raise ArgumentError("give NAME arguments or -l/--selector, not both")
    if everything and selector is not None:
        raise ArgumentError("give --all or -l/--selector, not both")
    if not names and selector is None and not everything:
        raise ArgumentError("nothing to cancel: give NAME..., -l SELECTOR or --all")
    if names and all_namespaces:
        raise ArgumentError("-A/--all-namespaces works with -l or --all; names are looked up in one namespace")
    unique = tuple(dict.fromkeys(check_name(name) for name in names))
    return Selection(unique, selector.strip() if selector else None, everything, all_namespaces)


# Waiting by design (a durable sleep or signal wait, a suspend): no runner to have gone quiet.
NEVER_STALE = ("Suspended", "Waiting")


def is_stale(obj: dict[str, Any], threshold_seconds: float, now: datetime) -> bool:
    """No checkpoint or progress for at least the threshold.

    An object without any usable timestamp is NOT stale: when in doubt, do not cancel.
    """
    if objects.phase_of(obj) in NEVER_STALE:
        return False
    idle = objects.seconds_since(objects.last_progress(obj, now), now)
    return idle is not None and idle >= threshold_seconds


def split_stale(
    objs: Iterable[dict[str, Any]], threshold_seconds: float | None, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(stale, fresh); without a threshold everything counts as stale (no filtering)."""
    stale, fresh = [], []
    for obj in objs:
        if threshold_seconds is None or is_stale(obj, threshold_seconds, now):
            stale.append(obj)
        else:
            fresh.append(obj)
    return stale, fresh


def split_finished(objs: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(not finished, finished)."""
    active, finished = [], []
    for obj in objs:
        (finished if objects.is_terminal(obj) else active).append(obj)
    return active, finished
