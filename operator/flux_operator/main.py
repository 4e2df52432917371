"""`flux-operator`: runs the kopf operator. Every flag has an environment fallback for the chart."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import kopf

from flux_operator import handlers  # noqa: F401 - registers the handlers with kopf
from flux_operator.builders import RunnerSettings
from flux_operator.kube import KubeApi, load_client_config
from flux_operator.metrics import Metrics
from flux_operator.reconcile import Reconciler

DEFAULT_RUNNER_IMAGE = "ghcr.io/flux-dev/flux-runner:0.1.0"


def _env_list(name: str) -> list[str]:
    return [n.strip() for n in os.environ.get(name, "").split(",") if n.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="flux-operator", description="Runs Flux Executions and cancels them.")
    p.add_argument("--namespace", action="append", dest="namespaces", default=None,
                   help="watch this namespace (repeatable); default: all namespaces [FLUX_NAMESPACES]")
    p.add_argument("--runner-image", default=os.environ.get("FLUX_RUNNER_IMAGE", DEFAULT_RUNNER_IMAGE))
    p.add_argument("--runner-command", default=os.environ.get("FLUX_RUNNER_COMMAND", "flux-runner"),
                   help="the runner container's command [FLUX_RUNNER_COMMAND]")
    p.add_argument("--default-grace-period", type=int,
                   default=os.environ.get("FLUX_DEFAULT_GRACE_PERIOD", "30"),
                   help="grace period for executions that leave spec.gracePeriodSeconds unset [FLUX_DEFAULT_GRACE_PERIOD]")
    p.add_argument("--metrics-port", type=int, default=os.environ.get("FLUX_METRICS_PORT", "9090"),
                   help="Prometheus /metrics port; 0 disables [FLUX_METRICS_PORT]")
    p.add_argument("--health-port", type=int, default=os.environ.get("FLUX_HEALTH_PORT", "8081"),
                   help="kopf liveness endpoint /healthz; 0 disables [FLUX_HEALTH_PORT]")
    # String defaults go through `type`, so a bad environment value gets the same clear error as a flag.
    p.add_argument("--log-format", default=os.environ.get("FLUX_LOG_FORMAT", "text"), help="text or json")
    p.add_argument("--resync-seconds", type=float, default=os.environ.get("FLUX_RESYNC_SECONDS", "5"))
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    args.namespaces = args.namespaces or _env_list("FLUX_NAMESPACES")
    if args.log_format not in ("text", "json"):
        p.error(f"--log-format must be text or json, not {args.log_format!r}")
    if not 0 <= args.default_grace_period <= 3600:
        p.error("--default-grace-period must be between 0 and 3600")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    kopf.configure(verbose=args.verbose,
                   log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN)
    logging.getLogger("flux_operator").setLevel(logging.INFO)
    api = KubeApi(load_client_config())
    metrics = Metrics()
    runner = RunnerSettings(image=args.runner_image, command=tuple(args.runner_command.split()),
                            default_grace_period=args.default_grace_period)
    memo = kopf.Memo(api=api, metrics=metrics, reconciler=Reconciler(api, runner, metrics),
                     namespaces=args.namespaces, metrics_port=args.metrics_port, resync_seconds=args.resync_seconds)
    liveness = f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
    asyncio.run(kopf.operator(
        standalone=True,  # one replica by design (Recreate): no peering objects needed
        clusterwide=not args.namespaces,
        namespaces=args.namespaces,
        memo=memo,
        liveness_endpoint=liveness,
    ))
