"""`kubectl flux logs`, the pure part: which runner pod to read, whether to read, wait or stop, and the
messages. The API calls live in following.py.

An Execution names its current runner pod in status.podName; a retry gets a pod of its own
(`NAME-runner-N`, flux_api.names.runner_pod_name_for), a resume after an eviction a new pod of the same
name (a new UID), and a crash restarts the container in place (its restartCount goes up). Each of these
is a new "run" of the runner; a follow reads every run once, in order, until the Execution is terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flux_api.names import runner_pod_name_for

from flux_cli import objects

RUNNER_CONTAINER = "runner"


def runner_pod_of(execution: dict[str, Any]) -> str:
    """The pod the Execution's current attempt runs (or will run) in."""
    st = objects.status(execution)
    named = st.get("podName")
    if isinstance(named, str) and named:
        return named
    retries = st.get("retries")
    return runner_pod_name_for(objects.name_of(execution), retries if isinstance(retries, int) else None)


@dataclass(frozen=True)
class Run:
    """One run of the runner container: a pod (by UID) and how often its container had restarted."""

    pod: str
    uid: str
    restarts: int
    started: bool  # the container runs or has run, so there is a log to read
    waiting: str | None = None  # why not, e.g. ContainerCreating

    @property
    def key(self) -> tuple[str, int]:
        return (self.uid, self.restarts)


def run_of(pod: dict[str, Any] | None) -> Run | None:
    """The runner container's current run in a pod as read from the API; None for no pod."""
    if pod is None:
        return None
    meta = pod.get("metadata") or {}
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    status = next((s for s in statuses if s.get("name") == RUNNER_CONTAINER), None) or {}
    state = status.get("state") or {}
    restarts = int(status.get("restartCount") or 0)
    waiting = (state.get("waiting") or {}).get("reason")
    # A container waiting to restart (CrashLoopBackOff) still has its last run's log.
    started = "running" in state or "terminated" in state or "terminated" in (status.get("lastState") or {}) \
        or restarts > 0
    if not status:
        waiting = "ContainerCreating" if (pod.get("spec") or {}).get("nodeName") else "Unscheduled"
    return Run(str(meta.get("name", "")), str(meta.get("uid", "")), restarts, started, waiting)


def belongs_to(pod: dict[str, Any], execution: dict[str, Any]) -> bool:
    """Whether the pod under the runner's name is this Execution's: controlled by it (by UID). A namesake's pod
    left behind by `kubectl delete --cascade=orphan` has the same name, and its log is not this run's."""
    uid = (execution.get("metadata") or {}).get("uid")
    if not uid:
        return True  # nothing to tell them apart by
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(o, dict) and o.get("controller") and o.get("uid") == uid for o in owners)


@dataclass(frozen=True)
class Read:
    run: Run
    follow: bool


@dataclass(frozen=True)
class Wait:
    note: str  # what is awaited, for stderr (printed once while it stays the same)


@dataclass(frozen=True)
class Stop:
    note: str | None = None  # how it ended, for stderr


@dataclass(frozen=True)
class Fail:
    message: str


Step = Read | Wait | Stop | Fail


def next_step(execution: dict[str, Any], pod: dict[str, Any] | None, follow: bool,
              read: set[tuple[str, int]]) -> Step:
    """What to do now, given the Execution, its current runner pod (or None) and the runs already read."""
    name = objects.name_of(execution)
    pod_name = runner_pod_of(execution)
    run = run_of(pod if pod is None or belongs_to(pod, execution) else None)
    terminal = objects.is_terminal(execution)
    if run is not None and run.started and run.key not in read:
        # A run not read yet: read it, following it while the execution goes on.
        return Read(run, follow)
    if not follow:
        if run is not None and run.started:
            return Stop()
        if terminal:
            return Fail(gone_message(execution, pod_name))
        return Fail(pending_message(execution, run))
    if terminal:
        return Stop(finished_note(execution)) if read else Fail(gone_message(execution, pod_name))
    if run is None:
        return Wait(f"waiting for runner pod {pod_name} of execution {name}" + _why_pending(execution))
    if not run.started:
        return Wait(f"waiting for runner pod {pod_name} to start ({run.waiting or 'Pending'})")
    return Wait(f"waiting for the next run of execution {name} (runner pod {pod_name})")


def _why_pending(execution: dict[str, Any]) -> str:
    reason = objects.waiting_reason(execution)
    return f" ({reason})" if reason else ""


def pending_message(execution: dict[str, Any], run: Run | None) -> str:
    name, pod_name = objects.name_of(execution), runner_pod_of(execution)
    if run is not None:
        why = f"runner pod {pod_name} has not started yet ({run.waiting or 'Pending'})"
    else:
        why = f"no runner pod yet{_why_pending(execution)}"
    return f"execution {name} is {objects.phase_of(execution)}: {why}, so there is no log yet (use -f to wait for it)"


def gone_message(execution: dict[str, Any], pod_name: str) -> str:
    """The execution finished and its runner pod is gone, and with it the log."""
    st = objects.status(execution)
    if not st.get("startedAt"):
        return (f"execution {objects.name_of(execution)} finished ({objects.phase_of(execution)}) before a runner "
                "started: there is no log")
    detail = [f"phase {objects.phase_of(execution)}"]
    outcome = (objects.cancellation(execution) or {}).get("outcome")
    if outcome:
        detail.append(f"outcome {outcome}")
    if st.get("message"):
        detail.append(str(st["message"]))
    return (f"the log of execution {objects.name_of(execution)} is gone: its runner pod {pod_name} no longer "
            f"exists ({'; '.join(detail)}). See 'kubectl flux status {objects.name_of(execution)}'")


def finished_note(execution: dict[str, Any]) -> str:
    return f"execution {objects.name_of(execution)} finished: {objects.phase_of(execution)}"


def reading_note(run: Run, previous: Run | None) -> str | None:
    """Printed when a follow moves to another run; nothing for the first."""
    if previous is None:
        return None
    if run.pod != previous.pod:
        return f"runner pod {run.pod} (a new attempt) follows {previous.pod}"
    if run.uid != previous.uid:
        return f"runner pod {run.pod} was replaced (resumed from its checkpoint)"
    return f"runner container restarted in pod {run.pod} (restart {run.restarts})"


def not_found_message(namespace: str, name: str) -> str:
    return (f'execution "{name}" not found in namespace "{namespace}" (a finished execution is deleted '
            "after its ttlSecondsAfterFinished, and its runner's log with it)")
