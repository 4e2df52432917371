"""A runner that floods its own Execution's status: every write is a watch event the operator receives, with the
whole object in it. Another namespace's starts and cancels must not wait behind them.

The runner's Role lets it patch its Execution's status, and `flux-runner-writes-only-its-own-status` lets it
write its checkpoint, whose `results` the schema leaves open: so each write here carries 256 KiB, from four
threads at once, as fast as the API server takes them.
"""

from __future__ import annotations

import threading
import time

import pytest
from flux_api import GROUP, PLURAL, VERSION
from fluxtest import longrun
from fluxtest.faults import as_runner, log_tail, metric
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.hostile.test_fairness import CANCELLING, first_seen

FLOOD_SECONDS = 60  # at most: it stops once the bystander's start and cancel were seen
THREADS = 4
PAD = "x" * (256 * 1024)
# Generous on 2 shared cores, where the API server and etcd take most of the flood's cost: without it a start
# takes about a second.
START_WITHIN = 20.0
CANCEL_WITHIN = 15.0


def flood(runner: client.ApiClient, namespace: str, name: str, until: float, stop: threading.Event,
          written: list[int]) -> None:
    api, n = client.CustomObjectsApi(runner), 0
    while time.monotonic() < until and not stop.is_set():
        n += 1
        try:
            api.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, {"status": {
                "checkpoint": {"state": "Running", "sequence": n, "results": {"pad": PAD, "n": n}}}})
            written.append(len(PAD))
        except ApiException:
            time.sleep(0.05)


@pytest.mark.threat("status-flood", f"a runner patches its own status with {len(PAD) // 1024} KiB checkpoints from "
                    f"{THREADS} threads, as fast as the API server takes them (its own token)",
                    "another namespace's executions still start and cancel within seconds; the operator lives; the "
                    "flooder can still be cancelled")
@pytest.mark.timeout(300)
def test_a_runner_flooding_its_status_does_not_delay_another_namespace(tenant, bystander, operators, fx, kubeconfig,
                                                                       result):
    op = operators.start()
    bystander.create(longrun("victim-cancel", steps=600, seconds=0.5))
    tenant.fx.create(longrun("flooder", steps=600, seconds=0.5))
    bystander.wait_phase("victim-cancel", "Running", timeout=60)
    fx.wait_step("flooder")
    cpu_before = metric(op, "process_cpu_seconds_total")
    runner = as_runner(kubeconfig, tenant.namespace, "flooder")
    written: list[int] = []
    began, stop = time.monotonic(), threading.Event()
    threads = [threading.Thread(target=flood, args=(runner, tenant.namespace, "flooder", began + FLOOD_SECONDS, stop,
                                                    written)) for _ in range(THREADS)]
    try:
        for t in threads:
            t.start()
        time.sleep(5)  # the flood is on
        asked = time.time()
        bystander.create(longrun("victim-start", steps=600, seconds=0.5))
        bystander.cancel("victim-cancel", reason="the bystander changes its mind")
        seen = first_seen(bystander, {"victim-start": ("Running",), "victim-cancel": CANCELLING},
                          max(START_WITHIN, CANCEL_WITHIN) + 5)
        during = len(written)
    finally:
        stop.set()  # once the bystander was seen (or not): the flood has made its point
        for t in threads:
            t.join()
        runner.close()
    lasted = time.monotonic() - began
    cpu = metric(op, "process_cpu_seconds_total") - cpu_before
    start_took = round(seen["victim-start"] - asked, 1) if "victim-start" in seen else None
    cancel_took = round(seen["victim-cancel"] - asked, 1) if "victim-cancel" in seen else None
    tenant.fx.cancel("flooder", "flooded its status")
    final = fx.wait_phase("flooder", "Cancelled", timeout=90)
    mib = sum(written) / 2**20
    result.figure(f"{len(written)} writes accepted in {lasted:.0f} s ({mib:.0f} MiB, {len(written) / lasted:.0f}/s); meanwhile "
                  f"start -> Running {start_took} s, cancel -> Cancelling {cancel_took} s; operator CPU "
                  f"{cpu:.1f} s over the flood; flooder {final['phase']}")
    assert op.proc.poll() is None, f"the operator died: {log_tail(op)}"
    assert during >= 20, f"the flood is not real: {during} writes accepted before the bystander acted"
    assert start_took is not None and start_took <= START_WITHIN, f"a new execution took {start_took} s to start"
    assert cancel_took is not None and cancel_took <= CANCEL_WITHIN, f"the cancel took {cancel_took} s"
