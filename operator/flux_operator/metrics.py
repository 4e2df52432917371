"""Prometheus metrics: what a platform team graphs and alerts on for cancellation."""

from __future__ import annotations

from collections import Counter as Tally

from flux_api import Phase
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from flux_operator.decide import Observe

# Cancels are meant to take seconds; the top buckets catch long grace periods.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.cancellations = Counter("flux_cancellations", "Cancellations concluded, by source and outcome.",
                                     ["source", "outcome"], registry=self.registry)
        self.signal_seconds = Histogram("flux_cancel_signal_seconds",
                                        "From the cancel request reaching the API to the runner being signalled.",
                                        ["source"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.complete_seconds = Histogram("flux_cancel_complete_seconds",
                                          "From the cancel request reaching the API to a terminal phase.",
                                          ["source"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.executions = Gauge("flux_executions", "Executions the operator watches, by phase.", ["phase"],
                                registry=self.registry)

    def observe(self, event: Observe) -> None:
        if event.name == "outcome":
            self.cancellations.labels(event.source, str(event.value)).inc()
        elif event.name == "signal_seconds":
            self.signal_seconds.labels(event.source).observe(float(event.value))
        elif event.name == "complete_seconds":
            self.complete_seconds.labels(event.source).observe(float(event.value))

    def count_phases(self, phases: list[str]) -> None:
        tally = Tally(phases)
        for phase in Phase:
            self.executions.labels(phase.value).set(tally.get(phase.value, 0))

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
