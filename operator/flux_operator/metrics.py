"""Prometheus metrics: what a platform team graphs and alerts on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import metadata

from flux_api import Phase
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from flux_operator.execution.actions import Observe
from flux_operator.metric_values import LimitShown, QueueStats, Transition

# Cancels are meant to take seconds; the top buckets catch long grace periods.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
# A reconcile or an API request: milliseconds to a few seconds.
WORK_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Executions run from seconds to days.
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 7 * 86400)
# Checkpoints are bounded at 256 KiB (flux_api.types.CHECKPOINT_BUDGET); 209716 is 80% of it, the alert's line.
CHECKPOINT_BUCKETS = (1024, 4096, 16384, 65536, 131072, 209716, 262144)


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
        self.spawns_refused = Counter("flux_spawns_refused", "Spawn requests refused, by why (TooDeep, TreeFull, "
                                      "TooManyChildren, NameTaken, Refused).", ["reason"], registry=self.registry)
        self.leader = Gauge("flux_leader", "1 while this replica holds the leader lease.", registry=self.registry)
        self.access_reviews = Counter("flux_metrics_access_reviews",
                                      "TokenReviews and SubjectAccessReviews /metrics asked the API server for.",
                                      ["kind"], registry=self.registry)
        self.api_requests = Gauge("flux_api_requests", "API requests this replica's workers made (total).",
                                  registry=self.registry)
        self.api_request_seconds = Histogram("flux_api_request_duration_seconds",
                                             "The operator's API requests (not its watches), by verb, resource and "
                                             "HTTP code (0: no answer).", ["verb", "resource", "code"],
                                             buckets=WORK_BUCKETS, registry=self.registry)
        self.api_throttled = Counter("flux_api_throttled_seconds",
                                     "Seconds requests waited for the client-side rate limit (--qps, --burst).",
                                     registry=self.registry)
        self.events_deferred = Gauge("flux_events_deferred",
                                     "Events waiting for a token the client budget can spare (after every other "
                                     "request).", registry=self.registry)
        self.events_dropped = Counter("flux_events_dropped", "Deferred Events dropped: more than 10,000 waited.",
                                      registry=self.registry)
        self.queue_wait = Histogram("flux_workqueue_wait_seconds", "From a key being ready to a worker taking it.",
                                    ["queue"], buckets=WORK_BUCKETS, registry=self.registry)
        self.reconcile_seconds = Histogram("flux_reconcile_duration_seconds", "One reconcile of one key.",
                                           ["queue"], buckets=WORK_BUCKETS, registry=self.registry)
        self.schedule_to_start = Histogram("flux_schedule_to_start_seconds",
                                           "From an Execution's creation to its runner starting (phase Running).",
                                           buckets=LATENCY_BUCKETS, registry=self.registry)
        self.duration = Histogram("flux_execution_duration_seconds",
                                  "From an Execution's start (its creation if it never started) to its end, by phase.",
                                  ["phase"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.checkpoint_bytes = Histogram("flux_checkpoint_bytes",
                                          "Size of the Executions the watch brings (the checkpoint is most of it).",
                                          buckets=CHECKPOINT_BUCKETS, registry=self.registry)
        self.schedule_lateness = Histogram("flux_schedule_lateness_seconds",
                                           "From a Schedule's cron time to its run being created.",
                                           buckets=LATENCY_BUCKETS, registry=self.registry)
        self.schedule_missed = Counter("flux_schedule_missed_runs",
                                       "Schedule runs skipped: their startingDeadlineSeconds passed.",
                                       registry=self.registry)
        self.build_info = Gauge("flux_build_info", "1, labelled with the operator's version.", ["version"],
                                registry=self.registry)
        self.build_info.labels(_version()).set(1)

    def observe(self, event: Observe, trace_id: str | None = None) -> None:
        """`trace_id`: the execution's trace, as the latency's exemplar (served in the OpenMetrics format)."""
        exemplar = {"trace_id": trace_id} if trace_id else None
        if event.name == "outcome":
            self.cancellations.labels(event.source, str(event.value)).inc()
        elif event.name == "signal_seconds":
            self.signal_seconds.labels(event.source).observe(float(event.value), exemplar)
        elif event.name == "complete_seconds":
            self.complete_seconds.labels(event.source).observe(float(event.value), exemplar)

    def transition(self, change: Transition) -> None:
        """A status write that started or ended an execution."""
        if change.started_after is not None:
            self.schedule_to_start.observe(max(change.started_after, 0.0))
        if change.ended is not None and change.ran_for is not None:
            self.duration.labels(str(change.ended)).observe(max(change.ran_for, 0.0))

    def api_request(self, verb: str, resource: str, code: int, seconds: float) -> None:
        self.api_request_seconds.labels(verb, resource, str(code)).observe(seconds)

    def watch_queue(self, name: str, stats: Callable[[], QueueStats]) -> None:
        """flux_workqueue_depth{queue}, flux_workqueue_delayed{queue}, flux_workqueue_busy_workers{queue}."""
        self.registry.register(_QueueCollector(name, stats))

    def watch_oldest(self, cancelling: Callable[[], float], pending: Callable[[], float],
                     overdue: Callable[[], float]) -> None:
        """The age of the oldest cancel not yet concluded, of the oldest past its grace period, and of the oldest
        execution waiting to start (0: none)."""
        Gauge("flux_oldest_cancelling_seconds", "Seconds since the oldest cancel request of an Execution still "
              "Cancelling reached the API (0 when none is).", registry=self.registry).set_function(cancelling)
        Gauge("flux_oldest_cancel_overdue_seconds", "Seconds the oldest Execution still Cancelling has gone on past "
              "its grace period (0 when none has).", registry=self.registry).set_function(overdue)
        Gauge("flux_oldest_pending_seconds", "Seconds the oldest Pending Execution (not suspended, not waiting on "
              "its namespace's own queue or quota) has been able to start: since its creation or its startAt "
              "(0 when none is).",
              registry=self.registry).set_function(pending)

    def watch_phases(self, counts: Callable[[], dict[str, int]]) -> None:
        """flux_executions{phase}: counted from the watched state at each scrape."""
        self.registry.register(_PhaseCollector(counts))

    def watch_restarts(self, restarts: Callable[[], dict[str, int]]) -> None:
        """flux_watch_restarts{stream}: kopf watchers restarted after they failed, ended or fell silent."""
        self.registry.register(_StreamCounter("flux_watch_restarts", "Watch streams restarted after they failed, "
                                              "ended or fell silent, by stream (resource@namespace).", restarts))

    def watch_events(self, heard: Callable[[], dict[str, int]]) -> None:
        """flux_watch_events{stream}: what each watch brought the operator, every object it decodes."""
        self.registry.register(_StreamCounter("flux_watch_events", "Watch events the operator received (a "
                                              "listing's objects included, bookmarks not), by stream "
                                              "(resource@namespace).", heard))

    def watch_unseen_deletions(self, forgotten: Callable[[], dict[str, int]]) -> None:
        """flux_watch_unseen_deletions{stream}: objects a new listing proved deleted with no DELETED event."""
        self.registry.register(_StreamCounter("flux_watch_unseen_deletions", "Objects a stream's new listing proved "
                                              "deleted while no watch was open (no DELETED event came), by stream "
                                              "(resource@namespace).", forgotten))

    def watch_limits(self, shown: Callable[[], list[LimitShown]]) -> None:
        """flux_limit_max, flux_limit_active, flux_limit_queued {limit="namespace/name"}: each ConcurrencyLimit as
        its status shows it (a limit not applied shows its max only). One label, not `namespace`: that one the
        scrape adds (the operator's own), and Prometheus would rename ours."""
        self.registry.register(_LimitCollector(shown))

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


class _QueueCollector(Collector):
    def __init__(self, name: str, stats: Callable[[], QueueStats]) -> None:
        self.name, self.stats = name, stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.stats()
        for metric, help_, value in (
                ("flux_workqueue_depth", "Keys ready for a worker, by queue.", stats.ready),
                ("flux_workqueue_delayed", "Keys waiting for a later time (a deadline, a backoff), by queue.",
                 stats.delayed),
                ("flux_workqueue_busy_workers", "Workers reconciling a key now, by queue.", stats.busy)):
            family = GaugeMetricFamily(metric, help_, labels=["queue"])
            family.add_metric([self.name], value)
            yield family


class _LimitCollector(Collector):
    def __init__(self, shown: Callable[[], list[LimitShown]]) -> None:
        self.shown = shown

    def collect(self) -> Iterator[GaugeMetricFamily]:
        limits = self.shown()
        for metric, help_, field in (
                ("flux_limit_max", "A ConcurrencyLimit's spec.max.", "max"),
                ("flux_limit_active", "Executions holding one of a ConcurrencyLimit's slots.", "active"),
                ("flux_limit_queued", "Executions a ConcurrencyLimit counts that wait for a slot.", "queued")):
            family = GaugeMetricFamily(metric, help_, labels=["limit"])
            for limit in limits:
                if (value := getattr(limit, field)) is not None:
                    family.add_metric([f"{limit.namespace}/{limit.name}"], value)
            yield family


def _version() -> str:
    try:
        return metadata.version("flux-operator")
    except metadata.PackageNotFoundError:
        return "unknown"


class _StreamCounter(Collector):
    def __init__(self, name: str, documentation: str, counts: Callable[[], dict[str, int]]) -> None:
        self.name, self.documentation, self.counts = name, documentation, counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=["stream"])
        for stream, count in sorted(self.counts().items()):
            family.add_metric([stream], count)
        yield family
