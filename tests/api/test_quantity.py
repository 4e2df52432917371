from decimal import Decimal

import pytest
from flux_api.quantity import is_quantity, parse_quantity
from flux_api.tenancy import TenancyLimits, limits_of, tenancy_policy

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text,value", [
    ("2", 2), (2, 2), ("500m", Decimal("0.5")), ("1Gi", 2 ** 30), ("1024Mi", 2 ** 30), ("1G", 10 ** 9),
    ("1e3", 1000), ("1.5", Decimal("1.5")), (".5", Decimal("0.5")), ("100k", 100_000),
])
def test_quantities_parse_as_the_api_server_reads_them(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["lots", "1 Gi", "Gi", "1GB", "-", ""])
def test_what_is_no_quantity_is_refused(text):
    assert not is_quantity(text)


@pytest.mark.parametrize("text", ["1e1000000", "1e4294967296", "5e-101", "1e101"])
def test_an_exponent_past_any_resource_is_refused_as_no_quantity_not_an_overflow(text):
    with pytest.raises(ValueError, match="exponent is out of range"):
        parse_quantity(text)


def test_zero_is_zero_whatever_its_exponent():
    assert parse_quantity("0e1000000") == 0 and parse_quantity("1e100") == Decimal(10) ** 100


def test_limits_refuse_a_maximum_that_is_no_quantity():
    with pytest.raises(ValueError, match="maxResources.memory"):
        TenancyLimits(maxResources={"memory": "lots"})


def test_the_tenancy_policy_object_leaves_defaults_out_and_reads_back():
    limits = TenancyLimits(allowedImages=["r.io/"], maxResources={"cpu": "2"})
    obj = tenancy_policy(["system:serviceaccount:flux:flux"], limits)
    assert obj["metadata"]["name"] == "flux-tenancy"
    assert obj["spec"] == {"allowedImages": ["r.io/"], "maxResources": {"cpu": "2"},
                           "operators": ["system:serviceaccount:flux:flux"]}
    assert limits_of(obj["spec"]) == limits
    assert tenancy_policy(["me"])["spec"] == {"operators": ["me"]}
