"""Everything one operator replica runs beside kopf's watches, wired together once."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from flux_api import GROUP, VERSION
from flux_api.timefmt import utcnow

from flux_operator import boundary, listings, memory
from flux_operator.admission_check import policy_problems
from flux_operator.builders import RunnerSettings
from flux_operator.controller import Controller
from flux_operator.deferred import DeferredEvents
from flux_operator.health import Health
from flux_operator.kube import ApiFailure, KubeApi
from flux_operator.leader import LeaderElector
from flux_operator import metrics_server
from flux_operator.metric_values import cancelling_since, oldest_age, pending_since, resource_of
from flux_operator.metrics import Metrics
from flux_operator.metrics_auth import MetricsAccess, api_reviews
from flux_operator.namespaces import NamespaceGate, Namespaces, Notices
from flux_operator.queues import LimitReconciler, LimitStore, Queues
from flux_operator.reconcile import Reconciler
from flux_operator.schedule_shell import ScheduleReconciler, ScheduleStore
from flux_operator.startup import api_served, missing_permissions
from flux_operator.watches import WatchMonitor
from flux_operator.workqueue import WorkQueue
from flux_operator.wakes import Wakes
from flux_operator.world import World

log = logging.getLogger("flux_operator")


@dataclass
class Options:
    identity: str
    runner: RunnerSettings
    workers: int = 4
    safety_seconds: float = 60.0
    leader_election: bool = True
    lease_namespace: str = "default"
    lease_name: str = "flux-operator"
    lease_seconds: float = 15.0
    renew_deadline: float = 10.0
    retry_seconds: float = 2.0
    renew_seconds: float = 6.0
    metrics_port: int = 0
    # /metrics over HTTPS for callers the API server authenticates and authorizes; False: plain HTTP, open
    # to anyone who reaches the port (only behind a NetworkPolicy).
    metrics_secure: bool = True
    metrics_cert_file: str = ""  # empty: a self-signed certificate made at start-up
    metrics_key_file: str = ""
    health_port: int = 0
    stale_after: float = 30.0
    namespaces: list[str] = field(default_factory=list)


class Runtime:
    def __init__(self, api: KubeApi, options: Options) -> None:
        self.api, self.options = api, options
        self.metrics = Metrics()
        self.world = World()
        # Namespaces take turns for workers, and one namespace never holds all of them: a worker stays
        # free for another namespace's cancel or deadline while one namespace's keys are slow or failing.
        self.queue = WorkQueue(shard_limit=max(1, options.workers - 1))
        self.elector = LeaderElector(api, options.lease_namespace, options.lease_name, options.identity,
                                     options.lease_seconds, options.renew_deadline, options.retry_seconds,
                                     options.renew_seconds,
                                     on_started=self._started_leading, on_stopped=self._stopped_leading)
        leading = (lambda: self.elector.leading) if options.leader_election else (lambda: True)
        self.reconciler = Reconciler(self.world, api, options.runner, self.metrics)
        # An execution's Event waits behind every other request when the budget is short (deferred.py).
        self.deferred_events = DeferredEvents(api.post_event, on_drop=self.metrics.events_dropped.inc)
        api.defer_event = self.deferred_events.add
        if options.runner.tracing_endpoint:
            from flux_operator.tracing import Tracing  # OpenTelemetry only when tracing is on
            self.reconciler.tracing = Tracing(options.runner.tracing_endpoint, options.runner.tracing_ratio)
        # Only where the operator serves (opt-in namespaces); elsewhere a notice, once.
        self.namespaces = Namespaces(options.namespaces)
        notices = Notices(api, self.namespaces)
        self.controller = Controller(self.world,
                                     NamespaceGate(self.namespaces, self.reconciler.reconcile,
                                                   notices.execution(self.world)).reconcile,
                                     self.queue, self.metrics, options.workers, leading,
                                     on_failure=self.reconciler.report_failure)
        # Schedules get their own queue: a burst of executions never delays a cron time.
        self.schedules = ScheduleStore()
        # Two workers, one a namespace: one tenant's long pass never holds every other namespace's cron times.
        self.schedule_queue = WorkQueue(shard_limit=1)
        schedule_reconciler = ScheduleReconciler(self.schedules, self.world, api, metrics=self.metrics)
        self.schedule_controller = Controller(self.world,
                                              NamespaceGate(self.namespaces, schedule_reconciler.reconcile,
                                                            notices.schedule(self.schedules)).reconcile,
                                              self.schedule_queue, self.metrics, 2, leading, kind="schedule",
                                              live=self.schedules.keys, on_failure=schedule_reconciler.report_failure)
        # Concurrency limits: their store, the verdicts the reconcile asks for, and workers for their status.
        self.limits = LimitStore()
        self.queues = Queues(self.world, self.limits)
        self.reconciler.queues = self.queues
        self.reconciler.on_wake = self.controller.enqueue
        self.wakes = Wakes(self.queues.to_wake, self.controller.enqueue, utcnow)
        self.limit_queue = WorkQueue(shard_limit=1)
        self.limit_controller = Controller(self.world,
                                           NamespaceGate(self.namespaces, LimitReconciler(self.queues, api, utcnow).reconcile,
                                                         lambda key, why: None).reconcile,
                                           self.limit_queue, self.metrics, 2, leading, kind="limit",
                                           live=self.limits.keys)
        self.watches = WatchMonitor()
        self.health = Health(options.identity, lambda: api.last_success, leading,
                             lambda: self.elector.holder if options.leader_election else options.identity,
                             lambda: len(self.queue), options.stale_after, self.watches.problems,
                             lambda: [*self.controller.stopped_workers(), *self.schedule_controller.stopped_workers(),
                                      *self.limit_controller.stopped_workers()])
        self._stopped = threading.Event()

    def serve_endpoints(self) -> None:
        """Before kopf starts, so the probe answers (red) even while the CRD is missing."""
        if self.options.health_port:
            self.health.serve(self.options.health_port)
        if self.options.metrics_port:
            self._serve_metrics()
        self.metrics.api_requests.set_function(lambda: self.api.calls)
        self.metrics.leader.set_function(lambda: 1 if self.health.leading() else 0)
        self.metrics.watch_phases(self.world.phase_counts)
        self.metrics.watch_restarts(self.watches.restarts)
        self.metrics.watch_unseen_deletions(listings.forgotten)
        self.metrics.watch_events(self.watches.heard)
        self.metrics.watch_limits(lambda: self.limits.shown(self.namespaces.served))
        self.metrics.watch_queue("execution", self.queue.stats)
        self.metrics.watch_queue("schedule", self.schedule_queue.stats)
        self.metrics.watch_queue("limit", self.limit_queue.stats)
        self.metrics.watch_oldest(
            lambda: oldest_age(cancelling_since(self.world.watched()), utcnow()),
            lambda: oldest_age(pending_since(self.world.watched()), utcnow()),
            lambda: oldest_age(cancelling_since(self.world.watched(), self.options.runner.default_grace_period),
                               utcnow()))
        self.queue.on_wait = self.metrics.queue_wait.labels("execution").observe
        self.schedule_queue.on_wait = self.metrics.queue_wait.labels("schedule").observe
        self.api.on_request = lambda verb, path, code, seconds: self.metrics.api_request(
            verb, resource_of(path), code, seconds)
        self.api.on_throttled = self.metrics.api_throttled.inc
        self.metrics.events_deferred.set_function(self.deferred_events.pending)
        boundary.on_execution_line(self.metrics.checkpoint_bytes.observe)

    def _serve_metrics(self) -> None:
        port = self.options.metrics_port
        if not self.options.metrics_secure:
            log.warning("/metrics on port %d is plain HTTP without authentication: keep it behind a NetworkPolicy",
                        port)
            self.metrics.serve(port)
            return
        if self.options.metrics_cert_file:
            files = metrics_server.CertificateFiles(self.options.metrics_cert_file, self.options.metrics_key_file)
            tls = files.current
        else:
            context = metrics_server.self_signed_context()
            tls = lambda: context  # noqa: E731
        # A client of its own: flux_api_requests counts the workers' requests, not the scrapes'.
        token_review, access_review = api_reviews(KubeApi(self.api.config))
        access = MetricsAccess(token_review, access_review,
                               on_review=lambda kind: self.metrics.access_reviews.labels(kind).inc())
        metrics_server.serve(port, self.metrics.registry, access, tls)

    def start(self) -> None:
        memory.start_trimmer(self._stopped)
        self.controller.start(self.options.safety_seconds)
        self.schedule_controller.start(self.options.safety_seconds)
        self.limit_controller.start(self.options.safety_seconds)
        self.wakes.start()
        if self.options.leader_election:
            threading.Thread(target=self.elector.run, name="leader-election", daemon=True).start()
        threading.Thread(target=self._startup_checks, name="startup-checks", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        self.elector.stop()
        self.controller.stop()
        self.schedule_controller.stop()
        self.limit_controller.stop()
        self.wakes.stop()
        if self.reconciler.tracing is not None:
            self.reconciler.tracing.shutdown()
        if self.elector.leading:
            self.elector.release()  # hand over now: the standby need not wait the lease out

    def _started_leading(self) -> None:
        # What the standby watched meanwhile is in the World: act on all of it now.
        self.controller.enqueue(self.world.keys())
        self.schedule_controller.enqueue(self.schedules.keys())
        self.limit_controller.enqueue(self.limits.keys())

    def _stopped_leading(self) -> None:
        log.warning("%s stopped acting: another replica leads", self.options.identity)

    def _startup_checks(self) -> None:
        """One clear line and a red probe while the CRD is missing, a permission is, or the admission policies
        are not in force as this version generates them; re-checked until fixed."""
        said: dict[str, str] = {}
        while not self._stopped.is_set():
            try:
                served = api_served(self.api)
                missing = missing_permissions(self.api, self.options.namespaces,
                                              self.options.lease_namespace if self.options.leader_election else None,
                                              network_policies=self.options.runner.egress is not None,
                                              lease_name=self.options.lease_name)
                policies = policy_problems(self.api, self.options.runner.limits)
            except ApiFailure as err:
                log.warning("start-up checks could not run: %s", err)
                self._stopped.wait(5)
                continue
            problems = {
                "crd": None if served else f"the Execution API ({GROUP}/{VERSION}) is not served: "
                                           "install the CRD (kubectl apply -f crds/)",
                "permissions": None if not missing else "missing permissions: " + "; ".join(missing),
                "policies": policies,
            }
            for name, problem in problems.items():
                if problem and said.get(name) != problem:
                    log.error("%s", problem)
                said[name] = problem or ""
                self.health.set_problem(name, problem)
            if not any(problems.values()):
                return
            self._stopped.wait(10)
