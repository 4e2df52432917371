"""The chart's Grafana dashboards, generated from the queries below (`make dashboards`, or
`python -m flux_operator.dashboards --write`): operator health, executions, cancellation, schedules.
tests/alerts/test_dashboards.py keeps the chart's copies identical to this and checks every query against
the metrics the operator serves. Series are per replica: gauges of the watched state are the same on both
(max), counters and histograms come from the leader (sum)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "charts" / "flux-operator" / "dashboards"
NS = 'namespace=~"$namespace"'
NOT_2XX, CANCELLING, SCHEDULE_QUEUE = 'code!~"2.."', 'phase="Cancelling"', 'queue="schedule"'
UNGRACEFUL = 'outcome=~"Killed|ForceDeleted|CleanupFailed"'


def m(metric: str, *matchers: str) -> str:
    """`metric` limited to the chosen release namespace(s), with more label matchers."""
    return f"{metric}{{{', '.join((NS, *matchers))}}}"


def p(quantile: float, histogram: str, by: str = "", window: str = "5m", *matchers: str) -> str:
    keep = f"le, {by}" if by else "le"
    return f"histogram_quantile({quantile}, sum by ({keep}) (rate({m(histogram + '_bucket', *matchers)}[{window}])))"


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[tuple[str, str], ...]  # (query, legend)
    unit: str = "short"
    kind: str = "timeseries"


def panel(title: str, *exprs: tuple[str, str], unit: str = "short", kind: str = "timeseries") -> Panel:
    return Panel(title, exprs, unit, kind)


DASHBOARDS: dict[str, tuple[str, list[Panel]]] = {
    "flux-operator-health": ("Flux / Operator health", [
        panel("Replicas scraped", (f"count({m('flux_build_info')})", "replicas"), kind="stat"),
        panel("Leader", (f"max by (pod) ({m('flux_leader')})", "{{pod}}")),
        panel("Reconcile errors by kind", (f"sum by (kind) (rate({m('flux_reconcile_errors_total')}[5m]))", "{{kind}}"),
              unit="ops"),
        panel("Work queue: ready, delayed, busy workers",
              (f"max by (queue) ({m('flux_workqueue_depth')})", "ready {{queue}}"),
              (f"max by (queue) ({m('flux_workqueue_delayed')})", "delayed {{queue}}"),
              (f"max by (queue) ({m('flux_workqueue_busy_workers')})", "busy {{queue}}")),
        panel("Queue wait and reconcile time, p95",
              (p(0.95, "flux_workqueue_wait_seconds", "queue"), "wait {{queue}}"),
              (p(0.95, "flux_reconcile_duration_seconds", "queue"), "reconcile {{queue}}"), unit="s"),
        panel("API requests by verb and resource",
              (f"sum by (verb, resource) (rate({m('flux_api_request_duration_seconds_count')}[5m]))",
               "{{verb}} {{resource}}"), unit="reqps"),
        panel("API request time p95 by verb", (p(0.95, "flux_api_request_duration_seconds", "verb"), "{{verb}}"),
              unit="s"),
        panel("API answers other than 2xx",
              (f"sum by (code) (rate({m('flux_api_request_duration_seconds_count', NOT_2XX)}[5m]))",
               "{{code}}"), unit="reqps"),
        panel("Waiting on the client rate limit",
              (f"sum(rate({m('flux_api_throttled_seconds_total')}[5m]))", "seconds waited per second")),
        panel("Watch restarts (1h)", (f"sum by (stream) (increase({m('flux_watch_restarts_total')}[1h]))",
                                      "{{stream}}")),
        panel("Watch events received", (f"sum by (stream) (rate({m('flux_watch_events_total')}[5m]))", "{{stream}}"),
              unit="ops"),
        panel("Deletions no watch event told of (1h)",
              (f"sum by (stream) (increase({m('flux_watch_unseen_deletions_total')}[1h]))", "{{stream}}")),
        panel("Memory", (f"max by (pod) ({m('process_resident_memory_bytes')})", "{{pod}}"), unit="bytes"),
        panel("CPU", (f"sum by (pod) (rate({m('process_cpu_seconds_total')}[5m]))", "{{pod}}"), unit="percentunit"),
    ]),
    "flux-executions": ("Flux / Executions", [
        panel("Executions by phase", (f"max by (phase) ({m('flux_executions')})", "{{phase}}")),
        panel("Created to started (schedule-to-start)",
              (p(0.5, "flux_schedule_to_start_seconds"), "p50"), (p(0.95, "flux_schedule_to_start_seconds"), "p95"),
              unit="s"),
        panel("Oldest Pending execution that could start", (f"max({m('flux_oldest_pending_seconds')})", "age"),
              unit="s"),
        panel("Queued under ConcurrencyLimits, by limit",
              (f"max by (limit) ({m('flux_limit_queued')})", "{{limit}}")),
        panel("Ended per second by phase",
              (f"sum by (phase) (rate({m('flux_execution_duration_seconds_count')}[5m]))", "{{phase}}"), unit="ops"),
        panel("Duration p95 by phase", (p(0.95, "flux_execution_duration_seconds", "phase", "1h"), "{{phase}}"),
              unit="s"),
        panel("Execution size p95 (checkpoint budget 256 KiB)",
              (p(0.95, "flux_checkpoint_bytes"), "p95"), unit="bytes"),
        panel("Spawns refused by reason (1h)",
              (f"sum by (reason) (increase({m('flux_spawns_refused_total')}[1h]))", "{{reason}}")),
    ]),
    "flux-cancellation": ("Flux / Cancellation", [
        panel("Cancelling now", (f"max({m('flux_executions', CANCELLING)})", "Cancelling"), kind="stat"),
        panel("Oldest Cancelling, and past its grace period",
              (f"max({m('flux_oldest_cancelling_seconds')})", "age"),
              (f"max({m('flux_oldest_cancel_overdue_seconds')})", "past its grace"), unit="s"),
        panel("Cancels concluded by source",
              (f"sum by (source) (rate({m('flux_cancellations_total')}[5m]))", "{{source}}"), unit="ops"),
        panel("Outcomes (1h)", (f"sum by (outcome) (increase({m('flux_cancellations_total')}[1h]))", "{{outcome}}")),
        panel("Request to SIGTERM by source, p50 and p95",
              (p(0.5, "flux_cancel_signal_seconds", "source"), "p50 {{source}}"),
              (p(0.95, "flux_cancel_signal_seconds", "source"), "p95 {{source}}"), unit="s"),
        panel("Request to terminal phase by source, p50 and p95",
              (p(0.5, "flux_cancel_complete_seconds", "source"), "p50 {{source}}"),
              (p(0.95, "flux_cancel_complete_seconds", "source"), "p95 {{source}}"), unit="s"),
        panel("Ungraceful share (1h)",
              (f"sum(increase({m('flux_cancellations_total', UNGRACEFUL)}[1h]))"
               f" / sum(increase({m('flux_cancellations_total')}[1h]))", "Killed, ForceDeleted, CleanupFailed"),
              unit="percentunit"),
    ]),
    "flux-schedules": ("Flux / Schedules", [
        panel("Runs started per second", (f"sum(rate({m('flux_schedule_lateness_seconds_count')}[5m]))", "runs"),
              unit="ops"),
        panel("Lateness: cron time to run created",
              (p(0.5, "flux_schedule_lateness_seconds"), "p50"), (p(0.95, "flux_schedule_lateness_seconds"), "p95"),
              unit="s"),
        panel("Missed runs (1h)", (f"sum(increase({m('flux_schedule_missed_runs_total')}[1h]))", "missed")),
        panel("Schedule queue", (f"max({m('flux_workqueue_depth', SCHEDULE_QUEUE)})", "ready")),
    ]),
}


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict:
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    laid_out = []
    for i, item in enumerate(panels):
        laid_out.append({
            "id": i + 1, "type": item.kind, "title": item.title, "datasource": datasource,
            "gridPos": {"x": 12 * (i % 2), "y": 8 * (i // 2), "w": 12, "h": 8},
            "fieldConfig": {"defaults": {"unit": item.unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + j), "datasource": datasource, "expr": expr, "legendFormat": legend}
                        for j, (expr, legend) in enumerate(item.exprs)]})
    return {
        "uid": uid, "title": title, "tags": ["flux"], "schemaVersion": 39, "editable": True,
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
            {"name": "namespace", "type": "query", "label": "Release namespace", "datasource": datasource,
             "query": "label_values(flux_build_info, namespace)", "includeAll": True, "multi": True,
             "refresh": 2}]},
        "panels": laid_out,
    }


def rendered() -> dict[str, str]:
    return {f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=1) + "\n"
            for uid, (title, panels) in DASHBOARDS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write them into {OUT}")
    args = parser.parse_args()
    files = rendered()
    if args.write:
        OUT.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (OUT / name).write_text(text)
    print("\n".join(sorted(files)))


if __name__ == "__main__":
    main()
