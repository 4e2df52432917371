"""The step ledger: every finished step, in a size that does not grow with numbered steps."""

from __future__ import annotations

import json

import pytest
from flux_api.ledger import Ledger
from flux_api.types import StepLedger

pytestmark = pytest.mark.unit


def test_numbered_steps_fold_into_one_run() -> None:
    ledger = Ledger()
    for i in range(100_000):
        ledger.add(f"step-{i}")
    stored = ledger.stored()
    assert [(r.prefix, r.first, r.last) for r in stored.runs] == [("step-", 0, 99_999)]
    assert len(json.dumps(stored.model_dump())) < 100
    assert "step-99999" in ledger and "step-100000" not in ledger
    assert len(ledger) == 100_000


def test_other_names_are_kept_and_order_is_preserved() -> None:
    ledger = Ledger()
    for name in ["fetch", "part-1", "part-2", "step-007", "part-4", "transform"]:
        ledger.add(name)
    assert list(ledger) == ["part-1", "part-2", "step-007", "part-4", "fetch", "transform"]
    assert "step-7" not in ledger and "step-007" in ledger, "leading zeros are kept exactly"


def test_a_stored_ledger_round_trips() -> None:
    ledger = Ledger()
    for name in ["a-1", "a-2", "b", "a-3"]:
        ledger.add(name)
    again = Ledger(StepLedger.model_validate(ledger.stored().model_dump()))
    assert list(again) == list(ledger) and all(n in again for n in ["a-1", "a-2", "a-3", "b"])


def test_discarding_the_last_add_undoes_it() -> None:
    ledger = Ledger()
    for name in ["s-1", "s-2", "odd"]:
        ledger.add(name)
    ledger.discard_last("odd")
    ledger.discard_last("s-2")
    assert list(ledger) == ["s-1"]
    ledger.add("s-2")
    assert [(r.first, r.last) for r in ledger.stored().runs] == [(1, 2)]


def test_checkpoints_from_before_the_ledger_are_read() -> None:
    assert list(Ledger(None, ["x", "y-1"])) == ["y-1", "x"]
