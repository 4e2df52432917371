"""The CRD the chart installs is the generated one: no hand edits, no stale copy."""

from __future__ import annotations

import subprocess
import sys

import pytest
from flux_api import crd

pytestmark = pytest.mark.unit


def test_chart_copy_is_byte_identical_to_the_canonical_crd():
    assert crd.CHART_COPY.exists(), f"{crd.CHART_COPY} is missing: run `make crds`"
    assert crd.CHART_COPY.read_bytes() == crd.CANONICAL.read_bytes(), (
        f"{crd.CHART_COPY} differs from {crd.CANONICAL}: run `make crds`")


def test_crds_are_exactly_what_the_models_generate():
    result = subprocess.run([sys.executable, "-m", "flux_api.crd", "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_check_fails_on_a_stale_crd(tmp_path, monkeypatch):
    # The check above must be able to fail: a chart copy with one line added by hand is caught.
    stale = tmp_path / crd.CRD_FILE
    stale.write_text(crd.render() + "# edited by hand\n")
    monkeypatch.setattr(crd, "CHART_COPY", stale)
    assert crd.main(["--check"]) == 1


def test_a_schedule_template_sets_none_of_the_operators_label_marks():
    """Its runs would carry them (the operator's create is exempt from the owned-metadata policy), and no one
    could then remove them, nor retry such a run."""
    from flux_api import crd_rules
    from flux_api.names import OWNED_LABEL_VALUES

    for key, value in OWNED_LABEL_VALUES.items():
        assert f"(k == '{key}' && self[k] == '{value}')" in crd_rules.TEMPLATE_LABELS_RULE["rule"]
