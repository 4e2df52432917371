"""`kubectl flux signal`: the entry it appends, checked before any API call."""

import pytest
from flux_cli.errors import ArgumentError
from flux_cli.executions.signalling import signal_entry

pytestmark = pytest.mark.unit


def test_data_is_stored_as_compact_json_text_with_the_reason():
    assert signal_entry("approve", '{ "approved": true }', " looks good ") == {
        "name": "approve", "data": '{"approved":true}', "reason": "looks good"}


def test_a_signal_may_carry_nothing_but_its_name():
    assert signal_entry("go", None, None) == {"name": "go"}


@pytest.mark.parametrize(("name", "data", "message"), [
    ("approve", "{not json", "--data is not JSON"),
    ("has space", None, "invalid signal: name"),
    ("approve", '"' + "x" * 5000 + '"', "invalid signal: data"),
])
def test_bad_arguments_are_refused_plainly(name, data, message):
    with pytest.raises(ArgumentError, match=message):
        signal_entry(name, data, None)
