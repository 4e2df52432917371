"""The chart's Grafana dashboards: what the generator makes (flux_operator/dashboards.py) is what the chart
ships, and every query names only metrics and labels the operator really serves."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from fluxtest import REPO
from localcluster.layout import binaries_dir

from flux_operator import dashboards
from tests.alerts.served import SCRAPE_LABELS, served

SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def problems(expr: str, legend: str, names: dict[str, set[str]]) -> list[str]:
    found = []
    used: set[str] = set()
    for metric, matchers in SELECTOR.findall(expr):
        if metric not in names:
            found.append(f"{metric} is not served")
            continue
        used |= names[metric]
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
            if label not in names[metric] | SCRAPE_LABELS:
                found.append(f"{metric} has no label {label}")
    if not SELECTOR.findall(expr):
        found.append("no metric selector")
    grouped = {g.strip() for group in GROUPING.findall(expr) for g in group.split(",") if g.strip()}
    for label in grouped - used - SCRAPE_LABELS:
        found.append(f"grouped by {label}, which none of its metrics has")
    for label in set(LEGEND.findall(legend)) - grouped:
        found.append(f"the legend names {label}, which the query does not keep")
    return found


def targets():
    for uid, (_, panels) in dashboards.DASHBOARDS.items():
        for panel in panels:
            for expr, legend in panel.exprs:
                yield pytest.param(expr, legend, id=f"{uid}: {panel.title}: {legend}")


@pytest.mark.parametrize("expr, legend", list(targets()))
def test_every_query_names_what_the_operator_serves(expr, legend):
    assert problems(expr, legend, served()) == []


@pytest.mark.parametrize("expr, legend, expected", [
    ('sum(rate(flux_cancels_total{namespace=~"$n"}[5m]))', "x", "flux_cancels_total is not served"),
    ('sum(rate(flux_cancellations_total{reason="x"}[5m]))', "x", "flux_cancellations_total has no label reason"),
    ("sum by (phase) (rate(flux_cancellations_total{}[5m]))", "{{phase}}", "grouped by phase"),
    ("sum by (source) (rate(flux_cancellations_total{}[5m]))", "{{outcome}}", "the legend names outcome"),
])
def test_the_check_catches_a_query_that_names_what_is_not_served(expr, legend, expected):
    assert any(p.startswith(expected) for p in problems(expr, legend, served()))


def test_the_charts_dashboards_are_the_generators():
    shipped = {p.name: p.read_text() for p in dashboards.OUT.glob("*.json")}
    assert shipped == dashboards.rendered(), "run `make dashboards`"


def test_the_chart_ships_each_as_a_configmap_for_the_sidecar():
    helm = binaries_dir() / "helm"
    out = subprocess.run([str(helm), "template", "t", str(REPO / "charts" / "flux-operator"), "--kube-version",
                          "1.35.4", "--set", "dashboards.enabled=true", "--set", "dashboards.namespace=monitoring",
                          "--show-only", "templates/dashboards.yaml"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    maps = [d for d in yaml.safe_load_all(out) if d]
    assert {d["metadata"]["namespace"] for d in maps} == {"monitoring"}
    assert all(d["metadata"]["labels"]["grafana_dashboard"] == "1" for d in maps)
    shipped = {name: json.loads(text) for d in maps for name, text in d["data"].items()}
    assert shipped == {name: json.loads(text) for name, text in dashboards.rendered().items()}
