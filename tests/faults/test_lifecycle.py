"""An execution's life interrupted from outside: deleted and made again under its name, and its runner
pod evicted in the middle of the work."""

from __future__ import annotations

import threading
import time

import pytest
from flux_api import GROUP, PLURAL, VERSION
from fluxtest import TERMINAL
from fluxtest.faults import counted, finished_steps, log_tail, step_results, step_runs
from fluxtest.podlogs import RunnerLogs
from kubernetes import client, watch

pytestmark = pytest.mark.faults


# --- recreated under the same name ------------------------------------------------------------------------

class PodWatch:
    """Every version of the `<name>-runner` pod: (pod uid, owner uid, phase, terminating)."""

    def __init__(self, core: client.CoreV1Api, namespace: str, name: str) -> None:
        self.seen: list[tuple[str, str, str, bool]] = []
        self._watch = watch.Watch()
        self._stop = threading.Event()

        def run():
            while not self._stop.is_set():
                try:
                    for event in self._watch.stream(core.list_namespaced_pod, namespace,
                                                    field_selector=f"metadata.name={name}-runner", timeout_seconds=30):
                        pod = event["object"]
                        owner = next((o.uid for o in pod.metadata.owner_references or [] if o.controller), "")
                        entry = (pod.metadata.uid, owner, pod.status.phase, bool(pod.metadata.deletion_timestamp))
                        if not self.seen or self.seen[-1] != entry:
                            self.seen.append(entry)
                except Exception:  # noqa: BLE001 - re-watch
                    time.sleep(0.2)
        threading.Thread(target=run, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()


@pytest.mark.row("recreate")
@pytest.mark.kubelet
@pytest.mark.timeout(300)
def test_recreate_under_the_same_name_uses_its_own_pod(fx, operators, core, cluster, result):
    """An Execution with a running pod is deleted and made again at once under the same name (other
    input). The new one must run in a pod of its own (owner UID = the new UID), never in the old one."""
    operators.start()
    pods = PodWatch(core, fx.ns, "phoenix")
    try:
        fx.create(counted("phoenix", steps=600, seconds=0.5, gracePeriodSeconds=5))
        fx.wait_step("phoenix", steps=2, timeout=120)
        old_uid = fx.get("phoenix")["metadata"]["uid"]
        old_pod = fx.pod("phoenix").metadata.uid
        fx.custom.delete_namespaced_custom_object(GROUP, VERSION, fx.ns, PLURAL, "phoenix")
        new_uid = fx.create(counted("phoenix", steps=3, seconds=0.3, gracePeriodSeconds=5))["metadata"]["uid"]
        recreated = time.monotonic()
        status = fx.wait_phase("phoenix", *TERMINAL, timeout=120)
        took = time.monotonic() - recreated
    finally:
        time.sleep(1)
        pods.stop()
    new_pods = [p for p in pods.seen if p[0] != old_pod]
    result.figure(f"– (new execution {status.get('phase')} {took:.1f} s after the recreate, in "
                  f"{len({p[0] for p in new_pods})} pod(s) of its own)")
    result.note(f"recreated {new_uid[:8]} (old {old_uid[:8]}) ended {status.get('phase')} {took:.1f} s later; "
                f"pod versions seen (pod uid, owner uid, phase, terminating): "
                + ", ".join(f"({p[0][:8]}, {p[1][:8]}, {p[2]}, {p[3]})" for p in pods.seen))
    assert status["phase"] == "Succeeded", (status.get("message"), status.get("checkpoint"))
    assert new_pods, "the new execution never had a pod of its own"
    assert {p[1] for p in new_pods} == {new_uid}, f"a pod of the new execution is owned by {[p[1] for p in new_pods]}"
    assert all(p[1] == old_uid for p in pods.seen if p[0] == old_pod)
    assert finished_steps(status["checkpoint"]) == ["step-1", "step-2", "step-3"], status["checkpoint"]
    results = step_results(status["checkpoint"])
    assert all(results.get(f"step-{i}") == {"step": i} for i in (1, 2, 3)), results
    assert status["checkpoint"]["result"] == {"completedSteps": 3}, "it resumed the old execution's checkpoint"


# --- the runner pod evicted mid-run ------------------------------------------------------------------------

@pytest.mark.row("eviction")
@pytest.mark.kubelet
@pytest.mark.timeout(300)
def test_evicted_runner_resumes_without_rerunning_finished_steps(fx, operators, core, cluster, result):
    """The Eviction API takes the runner pod mid-run (SIGTERM through a graceful delete, no cancel asked).
    The operator must resume the execution in a new pod, once, and no finished step may run again."""
    op = operators.start()
    steps = 10
    logs = RunnerLogs(core, fx.ns, "evictee")  # both pods' runs, through the API
    fx.create(counted("evictee", steps=steps, seconds=0.5, gracePeriodSeconds=10))
    before = finished_steps(fx.wait_step("evictee", steps=3, timeout=120)["checkpoint"])
    pod = fx.pod("evictee")
    core.create_namespaced_pod_eviction(pod.metadata.name, fx.ns, client.V1Eviction(
        metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=fx.ns)))
    evicted = time.monotonic()
    status = fx.wait_phase("evictee", *TERMINAL, timeout=120)
    took = time.monotonic() - evicted
    runs = step_runs(logs)
    again = {name: n - 1 for name, n in runs.items() if n > 1}
    finished_again = {name: n for name, n in again.items() if name in before}
    events = fx.events("evictee")
    result.figure(f"{sum(again.values())} step re-run(s) ({again or 'none'}), {len(finished_again)} of them of a "
                  f"step finished before the eviction; resumes {status.get('resumes')}; "
                  f"{status.get('phase')} {took:.1f} s after the eviction")
    result.note(f"checkpoint state {(status.get('checkpoint') or {}).get('state')}, message "
                f"{status.get('message')!r}, events {events}")
    assert status["phase"] == "Succeeded", (status.get("message"), (status.get("checkpoint") or {}).get("state"),
                                            events, log_tail(op, 1500))
    assert status.get("resumes") == 1, status.get("resumes")
    assert events.count("Resumed") == 1, events
    assert finished_steps(status["checkpoint"]) == [f"step-{i}" for i in range(1, steps + 1)]
    assert not finished_again, f"finished steps ran again: {finished_again} (finished before: {before})"
    assert all(runs[f"step-{i}"] >= 1 for i in range(1, steps + 1)), runs
