"""Signals: which one a wait takes, and who sent the list (from managedFields)."""

import pytest
from flux_api.signals import Signal, field_manager_of, nth, nth_index
from pydantic import ValidationError

pytestmark = pytest.mark.unit

SIGNALS = [{"name": "go", "data": "1"}, {"name": "stop"}, {"name": "go", "data": "2"}]


def test_the_kth_wait_takes_the_kth_signal_of_its_name():
    assert nth(SIGNALS, "go", 1)["data"] == "1" and nth(SIGNALS, "go", 2)["data"] == "2"
    assert nth(SIGNALS, "go", 3) is None and nth(SIGNALS, "absent", 1) is None
    # the place in the list, which status.signals records
    assert nth_index(SIGNALS, "go", 2) == 2 and nth_index(SIGNALS, "stop", 1) == 1
    assert nth_index(SIGNALS, "go", 3) is None


def test_the_field_manager_is_the_last_one_that_wrote_the_list():
    fields = [
        {"manager": "kubectl-create", "time": "2026-12-01T10:00:00Z", "fieldsV1": {"f:spec": {"f:workflow": {}}}},
        {"manager": "gitops", "time": "2026-12-01T10:01:00Z", "fieldsV1": {"f:spec": {"f:signals": {}}}},
        {"manager": "kubectl-flux", "time": "2026-12-01T10:02:00Z", "fieldsV1": {"f:spec": {"f:signals": {}}}},
        {"manager": "flux-operator", "time": "2026-12-01T10:03:00Z", "fieldsV1": {"f:status": {}}},
    ]
    assert field_manager_of(fields) == "kubectl-flux"
    assert field_manager_of(fields[:1]) is None and field_manager_of(None) is None


@pytest.mark.parametrize("entry", [{"name": "has space"}, {"name": "x" * 64}, {"name": "ok", "data": "x" * 4097},
                                   {"name": "ok", "reason": "r" * 257}, {"name": "ok", "sentBy": ""},
                                   {"name": "ok", "sentBy": "u" * 513}])
def test_a_signal_is_bounded(entry):
    with pytest.raises(ValidationError):
        Signal.model_validate(entry)
