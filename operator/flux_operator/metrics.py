"""Prometheus metrics: what a platform team graphs and alerts on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flux_api import Phase
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from flux_operator.execution.actions import Observe

# Cancels are meant to take seconds; the top buckets catch long grace periods.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # process_resident_memory_bytes and the rest: what a hostile tenant's large objects would grow.
        ProcessCollector(registry=self.registry)
        self.cancellations = Counter("flux_cancellations", "Cancellations concluded, by source and outcome.",
                                     ["source", "outcome"], registry=self.registry)
        self.signal_seconds = Histogram("flux_cancel_signal_seconds",
                                        "From the cancel request reaching the API to the runner being signalled.",
                                        ["source"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.complete_seconds = Histogram("flux_cancel_complete_seconds",
                                          "From the cancel request reaching the API to a terminal phase.",
                                          ["source"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.reconcile_errors = Counter("flux_reconcile_errors", "Reconciles that failed, by kind of failure.",
                                        ["kind"], registry=self.registry)
        self.leader = Gauge("flux_leader", "1 while this replica holds the leader lease.", registry=self.registry)
        self.access_reviews = Counter("flux_metrics_access_reviews",
                                      "TokenReviews and SubjectAccessReviews /metrics asked the API server for.",
                                      ["kind"], registry=self.registry)
        self.api_requests = Gauge("flux_api_requests", "API requests this replica's workers made (total).",
                                  registry=self.registry)

    def observe(self, event: Observe) -> None:
        if event.name == "outcome":
            self.cancellations.labels(event.source, str(event.value)).inc()
        elif event.name == "signal_seconds":
            self.signal_seconds.labels(event.source).observe(float(event.value))
        elif event.name == "complete_seconds":
            self.complete_seconds.labels(event.source).observe(float(event.value))

    def watch_phases(self, counts: Callable[[], dict[str, int]]) -> None:
        """flux_executions{phase}: counted from the watched state at each scrape."""
        self.registry.register(_PhaseCollector(counts))

    def watch_restarts(self, restarts: Callable[[], dict[str, int]]) -> None:
        """flux_watch_restarts{stream}: kopf watchers restarted after they failed, ended or fell silent."""
        self.registry.register(_WatchRestartCollector(restarts))

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)


class _PhaseCollector(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("flux_executions", "Executions the operator watches, by phase.", labels=["phase"])
        counts = self.counts()
        for phase in Phase:
            family.add_metric([str(phase)], counts.get(phase, 0))
        yield family


class _WatchRestartCollector(Collector):
    def __init__(self, restarts: Callable[[], dict[str, int]]) -> None:
        self.restarts = restarts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("flux_watch_restarts", "Watch streams restarted after they failed, ended or "
                                     "fell silent, by stream (resource@namespace).", labels=["stream"])
        for stream, count in sorted(self.restarts().items()):
            family.add_metric([stream], count)
        yield family
