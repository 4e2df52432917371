"""Kubernetes resource quantities ("500m", "4Gi", "1e3", 2) as exact decimals, to compare with a maximum."""

from __future__ import annotations

import re
from decimal import Decimal

_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal("1e3"),
            "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18")}
# Far past any real resource (10^18 is an exa): a larger exponent overflows Decimal, which raises
# decimal.Overflow, not ValueError.
MAX_EXPONENT = 100
# No real quantity is longer; a longer one is refused before the pattern runs. The pattern itself takes a digit run
# one way only (`\d+\.?\d*` would split it every way before failing: hours for a megabyte of digits).
MAX_LENGTH = 64
_QUANTITY = re.compile(r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
                       r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")


def parse_quantity(value: str | int | float) -> Decimal:
    """The quantity's value; ValueError for anything the API server would not accept as one."""
    text = str(value).strip()
    if len(text) > MAX_LENGTH:
        raise ValueError(f"{text[:16]!r}... ({len(text)} characters) is not a quantity: at most {MAX_LENGTH}")
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a quantity (such as 2, 500m or 4Gi)")
    number, suffix = Decimal(match["number"]), match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    exponent = int(suffix[1:])
    if number == 0:
        return Decimal(0)
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"{value!r}: its exponent is out of range (at most {MAX_EXPONENT} either way)")
    return number * (Decimal(10) ** exponent)


def is_quantity(value: object) -> bool:
    try:
        parse_quantity(value)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True
