"""The values the metrics are made of (metric_values.py) and what Metrics serves from them."""

from datetime import datetime, timedelta, timezone

import pytest
from flux_api import Phase
from prometheus_client import generate_latest

from flux_operator.metric_values import QueueStats, Transition, oldest_age, resource_of, transition
from flux_operator.metrics import Metrics

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)


def written(phase: str, created=T0, started=None, finished=None, cancelled=None) -> dict:
    status = {"phase": phase}
    if started:
        status["startedAt"] = started.isoformat()
    if finished:
        status["finishedAt"] = finished.isoformat()
    if cancelled:
        status["cancellation"] = {"completedAt": cancelled.isoformat()}
    return {"metadata": {"creationTimestamp": created.isoformat()}, "status": status}


def test_a_first_start_is_measured_from_the_creation():
    change = transition(Phase.PENDING, None, written("Running", started=T0 + timedelta(seconds=2.5)))
    assert change == Transition(started_after=2.5)


def test_a_pod_started_again_is_no_second_start():
    change = transition(Phase.RUNNING, T0 + timedelta(seconds=1), written("Running", started=T0 + timedelta(seconds=1)))
    assert change == Transition()


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
def test_an_end_is_measured_from_the_start(phase):
    started, finished = T0 + timedelta(seconds=3), T0 + timedelta(seconds=63)
    change = transition(Phase.RUNNING, started, written(phase, started=started, finished=finished))
    assert change == Transition(ended=Phase(phase), ran_for=60.0)


def test_an_execution_that_never_started_ends_measured_from_its_creation():
    change = transition(Phase.PENDING, None, written("Cancelled", finished=T0 + timedelta(seconds=4)))
    assert change == Transition(ended=Phase.CANCELLED, ran_for=4.0)


def test_a_cancel_without_finishedAt_ends_at_the_cancels_completion():
    change = transition(Phase.CANCELLING, T0, written("Cancelled", started=T0, cancelled=T0 + timedelta(seconds=7)))
    assert change.ran_for == 7.0


def test_an_end_written_again_is_not_counted_twice():
    end = T0 + timedelta(seconds=5)
    assert transition(Phase.SUCCEEDED, T0, written("Succeeded", started=T0, finished=end)) == Transition()


@pytest.mark.parametrize("status", [{"phase": "Bogus"}, {"phase": "Running", "startedAt": "not a time"}, {}])
def test_what_does_not_parse_measures_nothing(status):
    assert transition(Phase.PENDING, None, {"metadata": {}, "status": status}) == Transition()


@pytest.mark.parametrize("path, resource", [
    ("/api/v1/namespaces/a/pods/b", "pods"),
    ("/api/v1/namespaces/a/events", "events"),
    ("/api/v1/namespaces/a", "namespaces"),
    ("/apis/workflows.flux.dev/v1alpha1/namespaces/a/executions/b/status", "executions/status"),
    ("/apis/workflows.flux.dev/v1alpha1/namespaces/a/executions/b", "executions"),
    ("/apis/coordination.k8s.io/v1/namespaces/a/leases/l?x=1", "leases"),
    ("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "selfsubjectaccessreviews"),
    ("/healthz", "other"),
    ("/api/v1", "other"),
])
def test_a_request_is_labelled_by_its_resource_never_its_names(path, resource):
    assert resource_of(path) == resource


def test_the_oldest_age_is_of_the_earliest_time_and_zero_for_none():
    assert oldest_age([], T0) == 0.0
    assert oldest_age([T0 - timedelta(seconds=5), T0 - timedelta(seconds=90)], T0) == 90.0
    assert oldest_age([T0 + timedelta(seconds=5)], T0) == 0.0  # a clock behind the API server's: never negative


def test_metrics_serves_every_name_the_chart_and_dashboards_use():
    metrics = Metrics()
    metrics.watch_queue("execution", lambda: QueueStats(ready=3, delayed=2, busy=1))
    metrics.watch_oldest(lambda: 42.0, lambda: 7.0, lambda: 12.0)
    metrics.transition(Transition(started_after=1.5, ended=Phase.CANCELLED, ran_for=30.0))
    metrics.api_request("PATCH", "executions/status", 200, 0.01)
    text = generate_latest(metrics.registry).decode()
    for line in ('flux_workqueue_depth{queue="execution"} 3.0', 'flux_workqueue_delayed{queue="execution"} 2.0',
                 'flux_workqueue_busy_workers{queue="execution"} 1.0', "flux_oldest_cancelling_seconds 42.0", "flux_oldest_pending_seconds 7.0",
                 "flux_oldest_cancel_overdue_seconds 12.0",
                 "flux_schedule_to_start_seconds_count 1.0",
                 'flux_execution_duration_seconds_count{phase="Cancelled"} 1.0',
                 'flux_api_request_duration_seconds_count{code="200",resource="executions/status",verb="PATCH"} 1.0',
                 "flux_build_info{version="):
        assert line in text, line


def test_a_cancels_latency_carries_its_trace_as_an_exemplar_in_openmetrics():
    from flux_api import CancelSource
    from flux_operator.execution.actions import Observe
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
    metrics = Metrics()
    metrics.observe(Observe("complete_seconds", CancelSource.SPEC, 0.7), trace_id="0af7651916cd43dd8448eb211c80319c")
    metrics.observe(Observe("signal_seconds", CancelSource.SPEC, 0.1))
    text = openmetrics(metrics.registry).decode()
    assert '# {trace_id="0af7651916cd43dd8448eb211c80319c"} 0.7' in text
    assert "trace_id" not in text.split("flux_cancel_signal_seconds")[1].split("flux_cancel_complete")[0]


def test_each_limit_shows_its_max_and_usage_as_its_status_has_them():
    from flux_api.limits import MAX_LIMITS_PER_NAMESPACE
    from flux_operator.queues import LimitStore

    store = LimitStore()
    store.seen({"metadata": {"name": "etl", "namespace": "team-a", "uid": "l", "generation": 1},
                "spec": {"max": 5}, "status": {"active": 5, "queued": 12}})
    store.seen({"metadata": {"name": "extra", "namespace": "team-b", "uid": "m", "generation": 1},
                "spec": {"max": 2}, "status": {"message": "not applied: ..."}})
    for i in range(MAX_LIMITS_PER_NAMESPACE + 1):  # the one past the bound is applied nowhere
        store.seen({"metadata": {"name": f"l{i:02d}", "namespace": "team-c", "uid": f"c{i}", "generation": 1},
                    "spec": {"max": 1}})
    store.seen({"metadata": {"name": "anywhere", "namespace": "not-served", "uid": "n", "generation": 1},
                "spec": {"max": 1}})
    metrics = Metrics()
    metrics.watch_limits(lambda: store.shown(lambda namespace: namespace != "not-served"))
    text = generate_latest(metrics.registry).decode()
    assert text.count('flux_limit_max{limit="team-c/') == MAX_LIMITS_PER_NAMESPACE, "a limit applied nowhere shown"
    assert "not-served" not in text, "a limit of a namespace the operator does not serve grew the series"
    for line in ('flux_limit_max{limit="team-a/etl"} 5.0', 'flux_limit_active{limit="team-a/etl"} 5.0',
                 'flux_limit_queued{limit="team-a/etl"} 12.0', 'flux_limit_max{limit="team-b/extra"} 2.0'):
        assert line in text, line
    assert 'flux_limit_active{limit="team-b/extra"' not in text, "a limit not applied showed a usage"
    store.gone({"metadata": {"name": "etl", "namespace": "team-a", "uid": "l"}})
    assert "team-a" not in generate_latest(metrics.registry).decode(), "a deleted limit's series stayed"
