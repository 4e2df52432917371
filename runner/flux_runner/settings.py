"""The pod environment the operator gives the runner (flux_operator.builders.runner_pod sets it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flux_runner.errors import ConfigError

# Seconds between two checkpoint writes of one execution, whatever the step rate (FLUX_CHECKPOINT_INTERVAL).
DEFAULT_CHECKPOINT_INTERVAL = 1.0
DEFAULT_SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Settings:
    name: str
    namespace: str
    pod_name: str | None
    api_host: str
    api_port: str
    sa_dir: Path
    checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL  # FLUX_CHECKPOINT_INTERVAL, seconds
    durable_wait_after: float = 60.0  # FLUX_DURABLE_WAIT_AFTER: longer sleeps end the pod (waits.py)

    @property
    def api_url(self) -> str:
        # IPv6 service addresses need brackets in a URL, as client-go does.
        host = f"[{self.api_host}]" if ":" in self.api_host else self.api_host
        return f"https://{host}:{self.api_port}"

    @property
    def token_path(self) -> Path:
        return self.sa_dir / "token"

    @property
    def ca_path(self) -> Path:
        return self.sa_dir / "ca.crt"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        sa_dir = Path(env.get("FLUX_SA_DIR") or DEFAULT_SA_DIR)
        values = {
            "FLUX_EXECUTION_NAME": env.get("FLUX_EXECUTION_NAME"),
            "FLUX_EXECUTION_NAMESPACE": env.get("FLUX_EXECUTION_NAMESPACE") or _namespace_file(sa_dir),
            "KUBERNETES_SERVICE_HOST": env.get("KUBERNETES_SERVICE_HOST"),
            "KUBERNETES_SERVICE_PORT": env.get("KUBERNETES_SERVICE_PORT"),
        }
        missing = [key for key, value in values.items() if not value]
        if missing:
            raise ConfigError(f"missing environment: {', '.join(missing)} (the operator sets these in the pod)")
        return cls(
            name=values["FLUX_EXECUTION_NAME"],
            namespace=values["FLUX_EXECUTION_NAMESPACE"],
            pod_name=env.get("FLUX_POD_NAME") or None,
            api_host=values["KUBERNETES_SERVICE_HOST"],
            api_port=values["KUBERNETES_SERVICE_PORT"],
            sa_dir=sa_dir,
            checkpoint_interval=_interval(env.get("FLUX_CHECKPOINT_INTERVAL")),
            durable_wait_after=_seconds("FLUX_DURABLE_WAIT_AFTER", env.get("FLUX_DURABLE_WAIT_AFTER"), 60.0, 86400),
        )


def _interval(text: str | None) -> float:
    return _seconds("FLUX_CHECKPOINT_INTERVAL", text, DEFAULT_CHECKPOINT_INTERVAL, 3600)


def _seconds(variable: str, text: str | None, default: float, most: float) -> float:
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= most:
        raise ConfigError(f"{variable} must be seconds from 0 to {most:g}, not {text!r}")
    return value


def _namespace_file(sa_dir: Path) -> str | None:
    # Same fallback as in-cluster clients: the service account volume names the namespace.
    try:
        return (sa_dir / "namespace").read_text().strip() or None
    except OSError:
        return None
