"""A figure's row and its numbers as the tables print them: shared by bench.report and its parts' modules."""

from __future__ import annotations


def ms(x: float) -> str:
    return f"{x:.0f} ms" if x >= 100 else f"{x:.1f} ms"


def seconds(x: float) -> str:
    return f"{x:.2f} s" if x < 10 else f"{x:.1f} s"


def row(figure: str, source: str, measured: str, baseline: str, ratio: str, target: str, met: bool | None,
        note: str = "") -> dict:
    return {"figure": figure, "source": source, "measured": measured, "baseline": baseline, "ratio": ratio,
            "target": target, "met": met, "note": note}
