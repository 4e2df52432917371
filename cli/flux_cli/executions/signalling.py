"""`kubectl flux signal EXECUTION SIGNAL`: append one signal to spec.signals, as a GitOps commit would.

The list is append-only and replaced whole by a merge patch, so the patch carries the resourceVersion it
was built on: a signal sent by someone else meanwhile makes it conflict, and it is built again. The signal
names its sender (`sentBy`) as the API server knows them, which an admission policy checks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from flux_api.signals import MAX_SIGNALS, Signal
from pydantic import ValidationError

from flux_cli import objects
from flux_cli.errors import ArgumentError, ExitCode
from flux_cli.kube import ConflictError, Kube, KubeError

ATTEMPTS = 5


def signal_entry(name: str, data: str | None, reason: str | None) -> dict[str, Any]:
    """The entry to append; bad arguments are refused before any API call."""
    text = None
    if data is not None:
        try:
            text = json.dumps(json.loads(data), separators=(",", ":"))
        except ValueError as error:
            raise ArgumentError(f"--data is not JSON: {error}") from None
    try:
        signal = Signal(name=name, data=text, reason=(reason or "").strip())
    except ValidationError as error:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ArgumentError(f"invalid signal: {problem}") from None
    return signal.model_dump(exclude_defaults=True)


@dataclass
class Sent:
    name: str
    namespace: str
    phase: str
    signal: str
    sent: bool
    message: str
    exit_code: ExitCode = ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {k: (int(v) if k == "exit_code" else v) for k, v in asdict(self).items()}


def send(kube: Kube, namespace: str, name: str, entry: dict[str, Any]) -> Sent:
    if (me := kube.whoami()) is not None:
        entry = {**entry, "sentBy": me}
    for _ in range(ATTEMPTS):
        obj = kube.get_execution(namespace, name)
        phase = str(objects.phase_of(obj))
        if objects.is_terminal(obj):
            return Sent(name, namespace, phase, entry["name"], False,
                        f"already finished ({phase}): no workflow waits for a signal", ExitCode.ALREADY_FINISHED)
        signals = list(objects.spec(obj).get("signals") or [])
        if len(signals) >= MAX_SIGNALS:
            raise KubeError(f'execution "{name}" has {len(signals)} signals already, the most it takes')
        patch = {"metadata": {"resourceVersion": objects.metadata(obj).get("resourceVersion")},
                 "spec": {"signals": [*signals, entry]}}
        try:
            kube.patch_execution(namespace, name, patch)
        except ConflictError:
            continue  # someone else changed it meanwhile: read it again
        return Sent(name, namespace, phase, entry["name"], True,
                    f"signal {entry['name']} sent ({len(signals) + 1} of at most {MAX_SIGNALS})")
    raise KubeError(f'execution "{name}" kept changing: the signal was not sent after {ATTEMPTS} attempts')
