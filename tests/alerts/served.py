"""What the operator serves on /metrics: every series name with the label names it carries, from a Metrics
with each watcher given and each labelled metric used once."""

from __future__ import annotations

import re

from flux_api import Phase
from prometheus_client import generate_latest

from flux_operator.metric_values import LimitShown, QueueStats, Transition
from flux_operator.metrics import Metrics

# Added by the scrape (the target's namespace and pod, the job, the instance), not by the operator.
SCRAPE_LABELS = {"namespace", "pod", "job", "instance", "container", "service", "endpoint"}


def served() -> dict[str, set[str]]:
    metrics = Metrics()
    metrics.watch_phases(lambda: {})
    metrics.watch_restarts(lambda: {"executions@a": 1})
    metrics.watch_unseen_deletions(lambda: {"pods@a": 1})
    metrics.watch_events(lambda: {"pods@a": 1})
    metrics.watch_queue("execution", lambda: QueueStats(1, 1, 1))
    metrics.watch_oldest(lambda: 1.0, lambda: 1.0, lambda: 1.0)
    metrics.watch_limits(lambda: [LimitShown("ns", "etl", 2, 1, 1)])
    metrics.leader.set(1)
    metrics.transition(Transition(started_after=1.0, ended=Phase.CANCELLED, ran_for=1.0))
    metrics.api_request("GET", "pods", 200, 0.1)
    metrics.reconcile_errors.labels("Forbidden").inc()
    metrics.spawns_refused.labels("TreeFull").inc()
    metrics.cancellations.labels("spec", "Graceful").inc()
    metrics.signal_seconds.labels("spec").observe(1)
    metrics.complete_seconds.labels("spec").observe(1)
    metrics.queue_wait.labels("execution").observe(0.1)
    metrics.reconcile_seconds.labels("execution").observe(0.1)
    metrics.access_reviews.labels("TokenReview").inc()
    for name in ("api_throttled", "schedule_missed"):
        getattr(metrics, name).inc()
    metrics.checkpoint_bytes.observe(1)
    metrics.schedule_lateness.observe(1)
    found: dict[str, set[str]] = {}
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            found.setdefault(name, set()).update(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', line))
    return found
