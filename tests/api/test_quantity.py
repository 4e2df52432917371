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


@pytest.mark.timeout(20)
@pytest.mark.parametrize("digits", [20_000, 1_000_000])
def test_a_long_run_of_digits_is_refused_without_backtracking(digits):
    """A tenant's `1111...1x` once cost the operator's pattern hours (it split the run every way before failing),
    holding its interpreter; now a value past MAX_LENGTH is refused unread, and the pattern is linear."""
    from flux_api.quantity import _QUANTITY

    with pytest.raises(ValueError, match="at most 64"):
        parse_quantity("1" * digits + "x")
    assert _QUANTITY.match("1" * digits + "x") is None


def test_a_quantity_is_at_most_64_characters_here_and_in_the_schema():
    from flux_api.crd import crd

    assert is_quantity("1" * 64) and not is_quantity("1" * 65)
    spec = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    resources = spec["properties"]["podTemplate"]["properties"]["resources"]["properties"]
    assert resources["limits"]["additionalProperties"] == {"x-kubernetes-int-or-string": True, "maxLength": 64}


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


@pytest.mark.parametrize(("image", "allowed"), [
    ("registry.example.com/team/x:1", True), ("registry.example.com", True), ("registry.example.com:5000/x", True),
    ("registry.example.com.evil.io/x", False), ("registry.example.comx/y", False),
    ("reg/team-a/x", True), ("reg/team-a:1", True), ("reg/team-a@sha256:ab", True), ("reg/team-ab/x", False),
    ("r2/ok/y", True), ("r2/okz", False), ("", False)])
def test_an_allowed_image_prefix_ends_at_a_host_or_a_path_segment(image, allowed):
    """A platform listing `registry.example.com` allows its images, not those of `registry.example.com.evil.io`."""
    from flux_api.tenancy import image_allowed

    assert image_allowed(image, ["registry.example.com", "reg/team-a", "r2/ok/", ""]) is allowed
