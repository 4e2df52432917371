"""The chart's alerts in a real Prometheus (pinned, built from the Go module proxy) scraping a real operator
the way the chart's monitors do (HTTPS, the scraper's token, a `namespace` label on the target): a normal
cancel raises no alert at all, an execution stuck Cancelling past its grace period raises
FluxExecutionStuckCancelling, which clears once it ends. The rules are the chart's, rendered; only the stuck
alert's threshold and `for` are shortened to fit a test."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml
from fluxtest import REPO, Executions, longrun, manifest
from fluxtest.identity import SCRAPER_TOKEN_ENV
from localcluster.faults import ClusterFaults
from localcluster.layout import binaries_dir
from localcluster.procs import free_port, stop

pytestmark = pytest.mark.cluster

STUCK = "FluxExecutionStuckCancelling"
STUCK_AFTER = 6  # seconds past the grace period before the alert's condition holds (the chart's default: 300)


class Prometheus:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> dict:
        url = f"{self.base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())

    def alerts(self) -> list[dict]:
        return self.get("/api/v1/alerts")["data"]["alerts"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["data"]["result"]


def wait_for(test, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := test():
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def prometheus(cluster, operator, operator_env, tmp_path_factory) -> Prometheus:
    bin_dir = binaries_dir(with_prometheus=True)
    work = tmp_path_factory.mktemp("prometheus")
    rendered = subprocess.run([str(bin_dir / "helm"), "template", "t", str(REPO / "charts" / "flux-operator"),
                               "--namespace", "flux-system", "--kube-version", "1.35.4",
                               "--set", "metrics.prometheusRule.enabled=true",
                               "--set", f"metrics.prometheusRule.stuckCancellingSeconds={STUCK_AFTER}",
                               "--show-only", "templates/prometheusrule.yaml"],
                              capture_output=True, text=True, timeout=120, check=True).stdout
    groups = yaml.safe_load(rendered)["spec"]["groups"]
    for rule in (r for g in groups for r in g["rules"] if r["alert"] == STUCK):
        rule["for"] = "2s"
    (work / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    (work / "prometheus.yaml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yaml"],
        "scrape_configs": [{
            "job_name": "flux-operator", "scheme": "https", "tls_config": {"insecure_skip_verify": True},
            "authorization": {"type": "Bearer", "credentials_file": operator_env[SCRAPER_TOKEN_ENV]},
            "static_configs": [{"targets": [f"127.0.0.1:{operator.metrics_port}"],
                                "labels": {"namespace": "flux-system"}}]}]}))
    port = free_port()
    log = open(cluster.logs / "prometheus.log", "ab")
    proc = subprocess.Popen([str(bin_dir / "prometheus"), "--config.file", str(work / "prometheus.yaml"),
                             "--storage.tsdb.path", str(work / "data"), f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    prom = Prometheus(port)
    try:
        wait_for(lambda: _answers(prom) and prom.query('up{job="flux-operator"} == 1'), 60, "the first scrape")
        wait_for(lambda: prom.query('flux_build_info{namespace="flux-system"}'), 30, "the operator's series")
        wait_for(lambda: not prom.alerts(), 30, "no alert (FluxOperatorAbsent is pending until the first scrape)")
        yield prom
    finally:
        stop(proc, timeout=30)  # SIGKILL if it outlives the SIGTERM: a slow shutdown is no test's failure
        log.close()


def _answers(prom: Prometheus) -> bool:
    try:
        return prom.get("/api/v1/status/buildinfo")["status"] == "success"
    except OSError:
        return False


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


def test_a_normal_cancel_raises_no_alert(prometheus, fx):
    fx.create(longrun("calm", steps=100, seconds=0.2))
    fx.wait_step("calm", steps=2)
    fx.cancel("calm")
    assert fx.wait_phase("calm", "Cancelled", timeout=30)["cancellation"]["outcome"] == "Graceful"
    seen: list[dict] = []
    deadline = time.monotonic() + STUCK_AFTER + 10  # past the stuck threshold and its `for`, scraped each second
    while time.monotonic() < deadline:
        seen += prometheus.alerts()
        time.sleep(1)
    assert seen == []
    assert prometheus.query('flux_cancellations_total{namespace="flux-system",outcome="Graceful"} > 0')


def test_an_execution_stuck_past_its_grace_period_fires_the_alert_and_it_clears_once_it_ends(prometheus, fx, core,
                                                                                             cluster):
    """The alert counts from the end of the execution's own grace period: a tenant's long grace is no stall. A
    stalled node (its process paused) keeps the cancel from ending: no kubelet says the runner stopped, and a
    finalizer keeps the pod object through the force delete (a pod held by finalizers alone, its containers
    ended, ends the cancel: test_decide)."""
    grace = 12
    fx.create(manifest("stuck", "flux_examples.stubborn:main", {"onCancel": "ignore"}, gracePeriodSeconds=grace))
    fx.wait_step("stuck")
    pod = fx.pod("stuck").metadata.name
    core.patch_namespaced_pod(pod, fx.ns, {"metadata": {"finalizers": ["test.flux.dev/hold"]}})
    try:
        with ClusterFaults(cluster).paused("process-node"):
            _fires_while_stuck(prometheus, fx, grace)
    finally:
        core.patch_namespaced_pod(pod, fx.ns, {"metadata": {"finalizers": None}})
    outcome = fx.wait_phase("stuck", "Cancelled", timeout=60)["cancellation"]["outcome"]
    assert outcome in ("Killed", "ForceDeleted"), outcome
    wait_for(lambda: not [a for a in prometheus.alerts() if a["labels"]["alertname"] == STUCK], 15,
             f"{STUCK} to clear")
    others = [a["labels"]["alertname"] for a in prometheus.alerts()]
    assert others == [], f"only the stuck cancel was to raise an alert: {others}"


def _fires_while_stuck(prometheus, fx, grace: int) -> None:
    fx.cancel("stuck")
    asked = time.monotonic()
    firing = wait_for(lambda: [a for a in prometheus.alerts() if a["labels"]["alertname"] == STUCK
                               and a["state"] == "firing"], grace + STUCK_AFTER + 30, f"{STUCK} firing")
    fired_after = time.monotonic() - asked
    assert grace + STUCK_AFTER <= fired_after, f"fired {fired_after:.1f}s after the cancel: within its grace"
    assert firing[0]["labels"]["severity"] == "warning"
    assert firing[0]["annotations"]["runbook_url"].endswith("docs/runbooks.md#fluxexecutionstuckcancelling")
    assert fx.phase("stuck") == "Cancelling"
