"""`kubectl flux retry|resubmit`: a new Execution made from an old one, which is never changed.

A retry carries `spec.retryOf` and a `spec.seed`: the original's finished steps up to (not including)
`--from-step` (all of them without it), which the new runner skips, reusing their results. A resubmit is a
fresh copy with no checkpoint. Either copies the original's spec and its own labels and annotations, never
the operator's marks, its cancel, suspend or signals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flux_api import API_VERSION, GROUP, KIND, Checkpoint
from flux_api.ledger import Ledger
from flux_api.names import operators_label
from flux_api.types import RECENT_STEPS, Seed
from pydantic import ValidationError

from flux_cli import objects
from flux_cli.errors import ArgumentError, ExitCode
from flux_cli.kube import Kube, NotFoundError

# What a copy leaves behind: what the original was told to do, and the retry's own link and seed.
NOT_COPIED = ("cancel", "suspend", "signals", "seed", "retryOf", "startAt")
MAX_NAME = 63
SUFFIX = 5  # the characters the API server adds to a generateName


def copy_of(original: dict[str, Any], kind: str) -> dict[str, Any]:
    meta = objects.metadata(original)
    own = {f"{GROUP}/", "kubectl.kubernetes.io/"}
    labels = {k: v for k, v in (meta.get("labels") or {}).items()
              if not k.startswith(tuple(own)) and not operators_label(k, v)}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(tuple(own))}
    prefix = f"{meta.get('name', '')[: MAX_NAME - len(kind) - 2 - SUFFIX]}-{kind}-"
    spec = {k: v for k, v in objects.spec(original).items() if k not in NOT_COPIED}
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"generateName": prefix, "labels": labels, "annotations": annotations}, "spec": spec}


def steps_before(checkpoint: Checkpoint, step: str | None, name: str) -> list[str]:
    """The finished steps a retry keeps, in the order they finished: all of them, or those before `step`."""
    ledger = Ledger(checkpoint.done, [] if checkpoint.done is not None else [s.name for s in checkpoint.steps])
    done = list(ledger)
    if step is None:
        return done
    if step not in ledger:
        raise ArgumentError(f"--from-step: {step!r} is not among the {len(done)} finished steps of {name}")
    recent = [s.name for s in checkpoint.steps]
    if step in recent:  # the last steps are kept in order; every other one finished before them
        later = set(recent[recent.index(step):])
        return [n for n in done if n not in later]
    if not ledger.runs or not ledger.names:  # numbered steps only, or named only: the ledger keeps their order
        return done[: done.index(step)]
    raise ArgumentError(f"--from-step: the checkpoint of {name} does not keep the order of {step!r} against its "
                        f"other steps; take one of its last {RECENT_STEPS}: {', '.join(recent)}")


def seed_of(checkpoint: Checkpoint, kept: list[str], whole: bool) -> Seed:
    ledger = Ledger()
    for step in kept:
        ledger.add(step)
    keep = set(kept)
    return Seed(done=ledger.stored(), results={k: v for k, v in checkpoint.results.items() if k in keep},
                steps=[s for s in checkpoint.steps if s.name in keep], stepCount=len(kept),
                data=checkpoint.data if whole else None)


@dataclass
class Made:
    name: str
    namespace: str
    of: str
    kind: str
    skipped: list[str] = field(default_factory=list)
    phase: str | None = None
    dry_run: bool = False
    body: dict[str, Any] | None = None
    exit_code: ExitCode = ExitCode.OK

    @property
    def message(self) -> str:
        made = "would be created" if self.dry_run else "created"
        skipped = f"; {len(self.skipped)} finished steps skipped" if self.kind == "retry" else ", with no checkpoint"
        ended = f", ended {self.phase}" if self.phase else ""
        return f'execution "{self.name}" {made} ({self.kind} of {self.of}{skipped}){ended}'

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "namespace": self.namespace, f"{self.kind}Of": self.of, "skipped": self.skipped,
               "dryRun": self.dry_run, "phase": self.phase, "exitCode": int(self.exit_code)}
        return {**out, "execution": self.body} if self.dry_run else out


def make(kube: Kube, namespace: str, name: str, kind: str, from_step: str | None = None,
         dry_run: bool = False) -> Made:
    original = kube.get_with_progress(namespace, name)  # a crashed run's progress is in its ExecutionProgress
    body = copy_of(original, kind)
    skipped: list[str] = []
    if kind == "retry":
        if not objects.is_terminal(original):
            raise ArgumentError(f"{name} is still {objects.phase_of(original)}: a retry would run beside it; "
                                "cancel it first, or use resubmit")
        raw = objects.checkpoint(original)
        try:
            checkpoint = Checkpoint.model_validate(raw) if raw else None
        except ValidationError as error:
            raise ArgumentError(f"{name} has a checkpoint this version cannot read: {error}") from None
        if checkpoint is not None:
            skipped = steps_before(checkpoint, from_step, name)
            body["spec"]["seed"] = seed_of(checkpoint, skipped, from_step is None).model_dump(
                mode="json", exclude_none=True, exclude_defaults=True)
        elif from_step is not None:
            raise ArgumentError(f"--from-step: {name} finished no step")
        body["spec"]["retryOf"] = name
    if dry_run:
        return Made(body["metadata"]["generateName"] + "*", namespace, name, kind, skipped, dry_run=True, body=body)
    created = kube.create_execution(namespace, body)
    return Made(objects.name_of(created), namespace, name, kind, skipped)


def wait_finished(kube: Kube, made: Made, timeout: float, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> Made:
    deadline = clock() + timeout
    while True:
        try:
            obj = kube.get_execution(made.namespace, made.name)
        except NotFoundError:  # finished and deleted between two looks (ttlSecondsAfterFinished: 0), or by hand
            made.phase = objects.GONE
            return made
        if objects.is_terminal(obj):
            made.phase = str(objects.phase_of(obj))
            return made
        if clock() >= deadline:
            made.exit_code = ExitCode.TIMEOUT
            return made
        sleep(1.0)
