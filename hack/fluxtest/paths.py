"""Where the checkout's files are: the dev package is always installed editable from it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "executions.workflows.flux.dev.yaml"
SCHEDULE_CRD = REPO / "crds" / "schedules.workflows.flux.dev.yaml"
TENANCY_CRD = REPO / "crds" / "tenancypolicies.workflows.flux.dev.yaml"
