"""Test helpers for the Flux suite (development only): waiting, paths, Executions on the cluster."""

from fluxtest.executions import TERMINAL, Executions, Schedules, gone, longrun, manifest, schedule
from fluxtest.paths import CRD, REPO
from localcluster.probes import wait_for

__all__ = ["CRD", "REPO", "TERMINAL", "Executions", "Schedules", "gone", "longrun", "manifest", "schedule", "wait_for"]
