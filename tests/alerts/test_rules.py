"""The chart's alerts, as the chart renders them: promtool's unit tests (cases.yaml), each alert both firing
and quiet, every metric they name served by the operator, every runbook link a section of docs/runbooks.md.
promtool is built from the Go module proxy at the pinned version (hack/prometheus) like the control plane."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from fluxtest import REPO
from localcluster.layout import binaries_dir

from tests.alerts.served import served

CHART = REPO / "charts" / "flux-operator"
CASES = Path(__file__).with_name("cases.yaml")
RUNBOOKS = REPO / "docs" / "runbooks.md"
NAMESPACE = "flux-system"


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    return binaries_dir(with_prometheus=True)


@pytest.fixture(scope="module")
def rules(bin_dir) -> list[dict]:
    out = subprocess.run([str(bin_dir / "helm"), "template", "t", str(CHART), "--namespace", NAMESPACE,
                          "--kube-version", "1.35.4", "--set", "metrics.prometheusRule.enabled=true",
                          "--show-only", "templates/prometheusrule.yaml"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return yaml.safe_load(out)["spec"]["groups"]


def alerts(groups: list[dict]) -> dict[str, dict]:
    return {r["alert"]: r for g in groups for r in g["rules"]}


def filled_cases(groups: list[dict]) -> dict:
    """cases.yaml with each expected alert's severity and annotations taken from the rendered rule."""
    cases = yaml.safe_load(CASES.read_text())
    by_name = alerts(groups)
    for test in cases["tests"]:
        for check in test["alert_rule_test"]:
            rule = by_name[check["alertname"]]
            for expected in check["exp_alerts"]:
                expected["exp_labels"] = {**expected.get("exp_labels", {}), **rule["labels"]}
                expected["exp_annotations"] = copy.deepcopy(rule["annotations"])
    cases["rule_files"] = ["rules.yaml"]
    return cases


def test_promtool_checks_the_rules_and_every_case_passes(bin_dir, rules, tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rules}))
    (tmp_path / "cases.yaml").write_text(yaml.safe_dump(filled_cases(rules)))
    promtool = str(bin_dir / "promtool")
    check = subprocess.run([promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(alerts(rules))} rules found" in check.stdout
    result = subprocess.run([promtool, "test", "rules", "cases.yaml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_fails_a_case_that_expects_the_wrong_thing(bin_dir, rules, tmp_path):
    """The harness can fail: a quiet case made to expect an alert does."""
    cases = filled_cases(rules)
    quiet = next(c for t in cases["tests"] for c in t["alert_rule_test"] if not c["exp_alerts"])
    quiet["exp_alerts"] = [{"exp_labels": {"severity": "warning"}}]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rules}))
    (tmp_path / "cases.yaml").write_text(yaml.safe_dump(cases))
    result = subprocess.run([str(bin_dir / "promtool"), "test", "rules", "cases.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0


def test_every_alert_has_a_case_that_fires_and_one_that_stays_quiet(rules):
    fires, quiet = set(), set()
    for test in yaml.safe_load(CASES.read_text())["tests"]:
        for check in test["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert fires == set(alerts(rules)) and quiet == set(alerts(rules))


def test_every_runbook_link_is_a_section_of_the_runbook(rules):
    sections = {"#" + re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-"))
                for h in re.findall(r"^## (.+)$", RUNBOOKS.read_text(), re.M)}
    for name, rule in alerts(rules).items():
        url = rule["annotations"]["runbook_url"]
        assert url.endswith("docs/runbooks.md#" + name.lower()), url
        assert "#" + name.lower() in sections, f"{name}: no section in docs/runbooks.md"


def test_every_metric_an_alert_names_is_served(rules):
    names = served()
    for name, rule in alerts(rules).items():
        for metric in re.findall(r"\b(flux_[a-z_]+)", rule["expr"]):
            assert metric in names, f"{name} names {metric}, which the operator does not serve"
