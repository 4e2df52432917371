"""`flux-operator`: runs the kopf operator. Every flag but --verbose has an environment fallback for the chart."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import kopf
import pydantic
from flux_api import GROUP, PLURAL, logfields
from flux_api.tenancy import TenancyLimits
from flux_api.types import PodTemplate

from flux_api.names import LIMIT_PLURAL, SCHEDULE_PLURAL
from flux_api.namespace_policy import reserved

from flux_operator import boundary, listings, watches
from flux_operator import handlers  # noqa: F401 - registers the handlers with kopf
from flux_operator.builders import DEFAULT_RUNNER_IMAGE, RunnerSettings, owned_field_problems
from flux_operator.kube import KubeApi, RateLimiter
from flux_operator.kubeconfig import ConfigError, load_client_config
from flux_operator.memory import limit_malloc_arenas
from flux_operator.runtime import Options, Runtime


def _env_list(name: str) -> list[str]:
    return [n.strip() for n in os.environ.get(name, "").split(",") if n.strip()]


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _json(text: str) -> Any:
    """A flag's text read as JSON: text that is not JSON is a usage error."""
    try:
        return json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from None


def _resources(text: str) -> dict | None:
    if not text.strip():
        return None
    value = _json(text)
    if not isinstance(value, dict) or set(value) - {"requests", "limits"} or \
            not all(isinstance(v, dict) for v in value.values()):
        raise argparse.ArgumentTypeError('expected {"requests": {...}, "limits": {...}}')
    return value


def _pod_template(text: str) -> PodTemplate | None:
    if not text.strip():
        return None
    try:
        template = PodTemplate.model_validate_json(text)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        raise argparse.ArgumentTypeError(f"{'.'.join(map(str, first['loc'])) or 'template'}: {first['msg']}") from None
    problems = owned_field_problems(template)
    if problems:
        raise argparse.ArgumentTypeError("; ".join(problems) + ": the operator owns them")
    return template


def _egress(text: str) -> tuple[dict, ...] | None:
    if not text.strip():
        return None
    rules = _json(text)
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise argparse.ArgumentTypeError("expected a JSON list of NetworkPolicy egress rules")
    if not rules:
        raise argparse.ArgumentTypeError("an empty list would cut runners off from the API server")
    return tuple(rules)


def _namespace(name: str) -> str:
    if reserved(name):
        raise argparse.ArgumentTypeError(f"the operator never acts in {name}: kube-* namespaces belong to Kubernetes")
    return name


def _tenancy_limits(text: str) -> TenancyLimits | None:
    if not text.strip():
        return None
    try:
        return TenancyLimits.model_validate_json(text)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        raise argparse.ArgumentTypeError(f"{'.'.join(map(str, first['loc'])) or 'limits'}: {first['msg']}") from None


def _number_between(low: float, high: float, unit: str = "") -> Callable[[str], float]:
    """An argparse type: a number from `low` to `high` (of `unit`), or a clear error naming the range."""
    of_unit, in_unit = (f" of {unit}", f" {unit}") if unit else ("", "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number{of_unit}: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}{in_unit}")
        return value
    return parse


_interval = _number_between(0, 3600, "seconds")
# A durable wait lasts at least 10 s (execution/waiting.py: MIN_WAIT).
_wait_threshold = _number_between(10, 86400, "seconds")
_ratio = _number_between(0, 1)


def _optional_int(text: str) -> int | None:
    if not str(text).strip():
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="flux-operator", description="Runs Flux Executions and cancels them.")
    p.add_argument("--namespace", action="append", dest="namespaces", default=None, type=_namespace,
                   help="serve this namespace, labelled or not (repeatable); default: every namespace labelled "
                        "workflows.flux.dev/enabled=true, never kube-* [FLUX_NAMESPACES]")
    p.add_argument("--runner-image", default=_env("FLUX_RUNNER_IMAGE", DEFAULT_RUNNER_IMAGE))
    p.add_argument("--runner-command", default=_env("FLUX_RUNNER_COMMAND", "flux-runner"),
                   help="the runner container's command [FLUX_RUNNER_COMMAND]")
    p.add_argument("--default-grace-period", type=int, default=_env("FLUX_DEFAULT_GRACE_PERIOD", "30"),
                   help="grace period for executions that leave spec.gracePeriodSeconds unset [FLUX_DEFAULT_GRACE_PERIOD]")
    p.add_argument("--checkpoint-interval", type=_interval, default=_env("FLUX_CHECKPOINT_INTERVAL", "1"),
                   help="seconds between two checkpoint writes of one runner, whatever its step rate; the final "
                        "checkpoint and ctx.flush() write at once (0: a write per step) [FLUX_CHECKPOINT_INTERVAL]")
    p.add_argument("--durable-wait-after", type=_wait_threshold, default=_env("FLUX_DURABLE_WAIT_AFTER", "60"),
                   help="seconds: a ctx.sleep longer than this ends the runner's pod (phase Waiting) and a new pod "
                        "goes on at its wake time; shorter ones sleep in the pod [FLUX_DURABLE_WAIT_AFTER]")
    p.add_argument("--runner-resources", type=_resources, default=_env("FLUX_RUNNER_RESOURCES", ""),
                   help='resources of every runner container as JSON ({"requests": {...}, "limits": {...}}); '
                        "an Execution's spec.podTemplate.resources replaces them [FLUX_RUNNER_RESOURCES]")
    p.add_argument("--runner-pod-template", type=_pod_template, default=_env("FLUX_RUNNER_POD_TEMPLATE", ""),
                   help="defaults for every runner pod as JSON, in the shape of spec.podTemplate; an "
                        "Execution's own podTemplate wins [FLUX_RUNNER_POD_TEMPLATE]")
    p.add_argument("--tenancy-policy", type=_tenancy_limits, default=_env("FLUX_TENANCY_POLICY", ""),
                   help="the platform's limits as JSON, in the shape of the TenancyPolicy's spec without operators "
                        "(allowedImages, allowedVolumeTypes, maxResources, ...): no runner pod is built past them, "
                        "and the TenancyPolicy flux-tenancy must hold the same [FLUX_TENANCY_POLICY]")
    p.add_argument("--default-ttl-seconds-after-finished", type=_optional_int,
                   default=_env("FLUX_DEFAULT_TTL_SECONDS_AFTER_FINISHED", ""),
                   help="delete finished top-level executions that leave spec.ttlSecondsAfterFinished unset "
                        "this long after they finish; empty: keep them [FLUX_DEFAULT_TTL_SECONDS_AFTER_FINISHED]")
    p.add_argument("--runner-egress", type=_egress, default=_env("FLUX_RUNNER_EGRESS", ""),
                   help="NetworkPolicy egress rules (JSON list) for a NetworkPolicy per runner pod that also "
                        "refuses all ingress; empty: none [FLUX_RUNNER_EGRESS]")
    p.add_argument("--metrics-port", type=int, default=_env("FLUX_METRICS_PORT", "9090"),
                   help="Prometheus /metrics port; 0 disables [FLUX_METRICS_PORT]")
    p.add_argument("--metrics-secure", action=argparse.BooleanOptionalAction,
                   default=_env("FLUX_METRICS_SECURE", "true").lower() == "true",
                   help="/metrics over HTTPS, only for bearer tokens the API server authenticates and allows "
                        "to get /metrics (TokenReview, SubjectAccessReview); --no-metrics-secure: plain HTTP "
                        "for anyone who reaches the port [FLUX_METRICS_SECURE]")
    p.add_argument("--metrics-cert-file", default=_env("FLUX_METRICS_CERT_FILE", ""),
                   help="certificate for /metrics (re-read when it changes); default: self-signed at start-up "
                        "[FLUX_METRICS_CERT_FILE]")
    p.add_argument("--metrics-key-file", default=_env("FLUX_METRICS_KEY_FILE", ""),
                   help="its private key [FLUX_METRICS_KEY_FILE]")
    p.add_argument("--health-port", type=int, default=_env("FLUX_HEALTH_PORT", "8081"),
                   help="/healthz port (red when this replica cannot make progress); 0 disables [FLUX_HEALTH_PORT]")
    p.add_argument("--tracing-endpoint", default=_env("FLUX_TRACING_ENDPOINT", ""),
                   help="OpenTelemetry collector (OTLP over HTTP, e.g. http://collector:4318) for the operator's and "
                        "its runners' spans; empty: no tracing [FLUX_TRACING_ENDPOINT]")
    p.add_argument("--tracing-sampling-ratio", type=_ratio, default=_env("FLUX_TRACING_SAMPLING_RATIO", "1"),
                   help="share of trees traced, decided at each root (0 to 1) [FLUX_TRACING_SAMPLING_RATIO]")
    # String defaults go through `type`, so a bad environment value gets the same clear error as a flag.
    p.add_argument("--log-format", default=_env("FLUX_LOG_FORMAT", "text"), help="text or json")
    p.add_argument("--resync-seconds", type=float, default=_env("FLUX_RESYNC_SECONDS", "60"),
                   help="safety pass over the watched state (no API reads) [FLUX_RESYNC_SECONDS]")
    p.add_argument("--workers", type=int, default=_env("FLUX_WORKERS", "4"), help="reconcile workers [FLUX_WORKERS]")
    p.add_argument("--qps", type=float, default=_env("FLUX_API_QPS", "50"),
                   help="sustained API requests per second of the workers; 0: unlimited [FLUX_API_QPS]")
    p.add_argument("--burst", type=int, default=_env("FLUX_API_BURST", "300"),
                   help="API requests the workers may make at once [FLUX_API_BURST]")
    p.add_argument("--leader-elect", action=argparse.BooleanOptionalAction,
                   default=_env("FLUX_LEADER_ELECT", "true").lower() == "true",
                   help="act only while holding the leader Lease [FLUX_LEADER_ELECT]")
    p.add_argument("--leader-election-namespace", default=_env("POD_NAMESPACE", "default"),
                   help="namespace of the Lease [POD_NAMESPACE]")
    p.add_argument("--leader-election-id", default=_env("FLUX_LEADER_ELECTION_ID", "flux-operator"),
                   help="name of the Lease: replicas sharing it elect one leader [FLUX_LEADER_ELECTION_ID]")
    p.add_argument("--lease-seconds", type=float, default=_env("FLUX_LEASE_SECONDS", "15"),
                   help="how long a leader's Lease lasts without renewal [FLUX_LEASE_SECONDS]")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    try:
        args.namespaces = args.namespaces or [_namespace(n) for n in _env_list("FLUX_NAMESPACES")]
    except argparse.ArgumentTypeError as err:
        p.error(str(err))
    if bool(args.metrics_cert_file) != bool(args.metrics_key_file):
        p.error("--metrics-cert-file and --metrics-key-file go together")
    if args.log_format not in ("text", "json"):
        p.error(f"--log-format must be text or json, not {args.log_format!r}")
    if not 0 <= args.default_grace_period <= 3600:
        p.error("--default-grace-period must be between 0 and 3600")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if args.qps < 0 or args.burst < 1:
        p.error("--qps must be 0 or more and --burst at least 1")
    if not 3 <= args.lease_seconds <= 300:
        p.error("--lease-seconds must be between 3 and 300")
    return args


def identity() -> str:
    """The pod's name in a cluster (POD_NAME/POD_ID); host and pid for an operator run by hand."""
    return os.environ.get("POD_NAME") or os.environ.get("POD_ID") or f"{socket.gethostname()}-{os.getpid()}"


def options(args: argparse.Namespace) -> Options:
    lease = args.lease_seconds
    limits = args.tenancy_policy
    if args.default_ttl_seconds_after_finished is not None:
        # The API server needs the default TTL too (lowering a TTL below it is deleting sooner): the
        # TenancyPolicy carries it, and the start-up check compares it with this flag's value.
        limits = (limits or TenancyLimits()).model_copy(
            update={"defaultTtlSecondsAfterFinished": args.default_ttl_seconds_after_finished})
    runner = RunnerSettings(image=args.runner_image, command=tuple(args.runner_command.split()),
                            default_grace_period=args.default_grace_period, resources=args.runner_resources,
                            checkpoint_interval=args.checkpoint_interval, durable_wait_after=args.durable_wait_after,
                            default_ttl=args.default_ttl_seconds_after_finished,
                            pod_template=args.runner_pod_template, egress=args.runner_egress, limits=limits,
                            log_format=args.log_format, tracing_endpoint=args.tracing_endpoint or None,
                            tracing_ratio=args.tracing_sampling_ratio)
    # Renew a little past half the lease (about 7 requests a minute at 15 s), retry a failed renewal
    # every 2 s, and step down at 4/5 of the lease: the leader stops acting before anyone may take
    # over. A standby polls every 2 s, so it takes over within lease + 2 s of the last renewal.
    return Options(identity=identity(), runner=runner, workers=args.workers, safety_seconds=args.resync_seconds,
                   leader_election=args.leader_elect, lease_namespace=args.leader_election_namespace,
                   lease_name=args.leader_election_id, lease_seconds=lease, renew_deadline=lease * 0.8,
                   retry_seconds=min(2.0, lease / 5), renew_seconds=lease * 0.55, metrics_port=args.metrics_port,
                   metrics_secure=args.metrics_secure, metrics_cert_file=args.metrics_cert_file,
                   metrics_key_file=args.metrics_key_file, health_port=args.health_port,
                   stale_after=max(30.0, 2 * lease), namespaces=args.namespaces)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    limit_malloc_arenas()  # before any thread starts
    kopf.configure(verbose=args.verbose,
                   log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN)
    logging.getLogger("flux_operator").setLevel(logging.INFO)
    if args.log_format == "json":  # each line names the execution (or Schedule) being reconciled
        for handler in logging.getLogger().handlers:
            handler.addFilter(logfields.FieldsFilter())
    # httpx logs every request at INFO: thousands of lines a minute at scale. Failures reach our own logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not args.verbose:  # "Handler ... succeeded" for every watch event; failures are warnings and errors
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        config = load_client_config()
        # kopf logs in through handlers.login, from this same config: one server, one identity.
        api = KubeApi(config, RateLimiter(args.qps, args.burst))
    except ConfigError as err:
        raise SystemExit(f"flux-operator: {err}") from None
    logging.getLogger("flux_operator").info("API server %s, credentials from %s", config.server, config.source)
    runtime = Runtime(api, options(args))
    boundary.install()  # no object's nesting stops a watch
    boundary.quiet_when(runtime.world.progress_only)  # checkpoint progress never reaches kopf's handling
    watches.install(runtime.watches)  # a watch that stops is restarted, or /healthz says so
    listings.install()  # what a listing after a gap lacks is forgotten: a DELETE missed meanwhile
    listings.track(GROUP, PLURAL, runtime.world.executions_held)
    listings.track("", "pods", runtime.world.pods_held)
    listings.track(GROUP, SCHEDULE_PLURAL, runtime.schedules.held)
    listings.track(GROUP, LIMIT_PLURAL, runtime.limits.held)
    runtime.world.refute_with(listings.refuted)  # nor does a late copy bring one back
    if not args.namespaces:
        handlers.watch_namespaces()  # label mode: which namespaces opted in
    logging.getLogger("flux_operator").info(
        "serving %s", ", ".join(args.namespaces) if args.namespaces else
        "namespaces labelled workflows.flux.dev/enabled=true (none until one is)")
    runtime.serve_endpoints()
    asyncio.run(kopf.operator(
        standalone=True,  # kopf's own peering is off: our Lease decides who acts
        clusterwide=not args.namespaces,
        namespaces=args.namespaces,
        memo=kopf.Memo(runtime=runtime),
    ))
