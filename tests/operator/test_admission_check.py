import pytest
from flux_operator.admission_check import covers

pytestmark = pytest.mark.unit


def test_what_the_server_adds_is_fine_what_differs_is_not():
    wanted = {"failurePolicy": "Fail", "validations": [{"expression": "a", "message": "m"}]}
    assert covers({**wanted, "matchPolicy": "Equivalent"}, wanted)
    assert covers({"failurePolicy": "Fail", "validations": [{"expression": "a", "message": "m", "reason": "Invalid"}]},
                  wanted)
    assert not covers({"failurePolicy": "Ignore", "validations": wanted["validations"]}, wanted)
    assert not covers({"failurePolicy": "Fail", "validations": []}, wanted)
    assert not covers({"failurePolicy": "Fail", "validations": [{"expression": "b", "message": "m"}]}, wanted)
    assert not covers(None, wanted)
