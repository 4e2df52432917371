"""`kubectl flux logs`: the runner's log through the API server, following retries and resumes.

Loop: read the Execution and its current runner pod, ask steps.next_step what to do, do it. Reading a
run with follow ends when its container exits; the loop then finds the next run (a restart, a resumed
pod, a retry's pod) or the end of the Execution.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flux_cli.errors import FluxCliError
from flux_cli.kube import Kube, NotFoundError, RejectedError
from flux_cli.logs import steps

POLL_SECONDS = 1.0


class LogsError(FluxCliError):
    pass


def show_logs(kube: Kube, namespace: str, name: str, follow: bool, write: Callable[[bytes], None],
              note: Callable[[str], None], poll_seconds: float = POLL_SECONDS,
              sleep: Callable[[float], None] = time.sleep) -> None:
    """Writes the log to `write` and what happens in between (waiting, a new attempt) to `note`."""
    read: set[tuple[str, int]] = set()
    last_run: steps.Run | None = None
    last_note = ""
    announced: tuple[str, int] | None = None
    while True:
        try:
            execution = kube.get_execution(namespace, name)
        except NotFoundError:
            if read:  # deleted while we followed it (ttlSecondsAfterFinished, or by hand)
                note(f"execution {name} was deleted")
                return
            raise LogsError(steps.not_found_message(namespace, name)) from None
        pod = kube.get_pod(namespace, steps.runner_pod_of(execution))
        step = steps.next_step(execution, pod, follow, read)
        if isinstance(step, steps.Fail):
            raise LogsError(step.message)
        if isinstance(step, steps.Stop):
            if step.note:
                note(step.note)
            return
        if isinstance(step, steps.Wait):
            if step.note != last_note:
                note(step.note)
                last_note = step.note
            sleep(poll_seconds)
            continue
        switched = steps.reading_note(step.run, last_run)
        if switched and announced != step.run.key:
            note(switched)
            announced = step.run.key
        if _read(kube, namespace, step, write):
            read.add(step.run.key)
            last_run, last_note = step.run, ""
        else:
            sleep(poll_seconds)


def _read(kube: Kube, namespace: str, step: steps.Read, write: Callable[[bytes], None]) -> bool:
    """Streams one run; False when the node could not serve it yet (the container is only starting)."""
    try:
        for chunk in kube.pod_log(namespace, step.run.pod, steps.RUNNER_CONTAINER, step.follow):
            write(chunk)
    except NotFoundError:
        return True  # the pod went while we read it: what it wrote was sent; the loop looks what is next
    except RejectedError as error:
        if "waiting to start" in str(error) or "ContainerCreating" in str(error):
            return False
        raise
    return True
