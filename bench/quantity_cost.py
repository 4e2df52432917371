"""CPU to refuse a quantity that is a long run of digits and an `x`: the pattern before 16a80d6 against today's.

    .venv/bin/python -m bench.quantity_cost

The old pattern (`\\d+\\.?\\d*`) split the run every way before failing: quadratic, hours for a megabyte, the
operator's interpreter held all the while. Today's takes the run one way only, and parse_quantity refuses a
value past 64 characters before the pattern runs. Figures in the stop note of 16a80d6's session.
"""

from __future__ import annotations

import re
import time

from flux_api.quantity import _QUANTITY, parse_quantity

OLD = re.compile(r"^(?P<number>[+-]?(\d+\.?\d*|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")


def cpu(fn) -> float:
    began = time.process_time()
    fn()
    return time.process_time() - began


def refused(text: str) -> None:
    try:
        parse_quantity(text)
    except ValueError:
        return
    raise AssertionError("a quantity?")


def main() -> None:
    for digits in (4_000, 8_000, 16_000):
        text = "1" * digits + "x"
        old, new, parsed = cpu(lambda: OLD.match(text)), cpu(lambda: _QUANTITY.match(text)), cpu(lambda: refused(text))
        print(f"{digits} digits: old pattern {old:.2f} s CPU; today's pattern {new * 1e3:.2f} ms; "
              f"parse_quantity {parsed * 1e6:.0f} us")


if __name__ == "__main__":
    main()
