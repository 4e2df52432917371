"""Schedules as text or JSON-ready dicts (the scheduling fields of an execution are in executions.render)."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text

from flux_cli.rendering import cell, listing
from flux_cli.schedules.actions import UnscheduleResult
from flux_cli.terminal import printable


def schedule_table(rows: list[dict[str, Any]], all_namespaces: bool) -> RenderableType:
    table = listing(all_namespaces, "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "NEXT", "AGE",
                    "REASON", wrap=["REASON"])
    for row in rows:
        cells = [cell(row["namespace"])] if all_namespaces else []
        cells += [cell(row["name"]), cell(row["schedule"]), cell(row["timeZone"]),
                  Text("True" if row["suspend"] else "False"), Text(str(len(row["active"]))),
                  cell(row["lastAgo"] + " ago" if row["lastAgo"] else None), cell(row["nextScheduleTime"]),
                  cell(row["age"]), Text(printable(row["reason"] or ""))]
        table.add_row(*cells)
    return table


def unschedule_text(result: UnscheduleResult) -> RenderableType:
    state = "was already suspended" if result.already_suspended else "suspended"
    lines = [f'schedule "{result.schedule}" {state}' + (f" (reason: {result.reason})" if result.reason else "")]
    lines += [f'execution "{name}" cancel requested' for name in result.cancelled]
    return Text("\n").join(cell(line) for line in lines)


def unschedule_json(result: UnscheduleResult) -> dict[str, Any]:
    return {"schedule": result.schedule, "namespace": result.namespace, "suspended": True,
            "alreadySuspended": result.already_suspended, "reason": result.reason, "cancelled": result.cancelled}
