"""Turn results and API objects into rich renderables (text) or JSON-ready dicts. No I/O here.

User-controlled strings (names, reasons, messages) are always wrapped in Text, never parsed as
rich markup, so a reason like "[red]x" prints as typed; and every string from the cluster passes through
terminal.printable on its way in (`cell`, `_fields`), so its control characters print as escapes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from flux_api import CANCEL_ANNOTATION, Phase
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from flux_cli import facts
from flux_cli.actions import StatusView
from flux_cli.cancelling import GONE, CancelResult
from flux_cli.durations import human_age
from flux_cli.family import Node
from flux_cli.terminal import Guarded, json_text, printable

NONE = "<none>"
_PHASE_STYLES = {
    Phase.PENDING: "cyan",
    Phase.RUNNING: "blue",
    Phase.CANCELLING: "yellow",
    Phase.CANCELLED: "magenta",
    Phase.SUCCEEDED: "green",
    Phase.FAILED: "red",
    GONE: "dim",
}
_DATA_CHARS = 400


def _kubectl_table(*columns: str, wrap: Sequence[str] = ()) -> Table:
    """kubectl's look: no borders, upper-case headers, three spaces between columns."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 1, 0, 2))
    for column in columns:
        table.add_column(column, no_wrap=column not in wrap)
    return table


def cell(value: Any, style: str = "") -> Text:
    """A string from the cluster as a table cell or label: escaped, never markup."""
    return Text(printable(NONE if value in (None, "") else value), style=style)


def phase_text(phase: str | None) -> Text:
    return cell(phase, _PHASE_STYLES.get(phase or "", ""))


def to_text(renderable: RenderableType, width: int = 200) -> str:
    """Plain text, no ANSI codes: for tests and for anyone who needs a string."""
    console = Console(file=io.StringIO(), width=width, color_system=None, markup=False, highlight=False, emoji=False)
    console.print(Guarded(renderable))
    return console.file.getvalue()  # type: ignore[attr-defined]


def to_json_text(data: Any) -> str:
    return json_text(data)


Field = tuple[str, Text | str | int | list[str] | None]


def _fields(rows: Iterable[Field]) -> Text:
    """Aligned "label:  value" lines; a list value is one line per item, under the first. Strings are
    escaped here (a newline in one shows as \\n: only a list makes several lines)."""
    rows = list(rows)
    width = max((len(label) for label, _ in rows), default=0) + 3
    out = Text()
    for index, (label, value) in enumerate(rows):
        if index:
            out.append("\n")
        if isinstance(value, list):
            value = Text("\n").join(cell(item) for item in value) if value else cell(None)
        elif not isinstance(value, Text):
            value = cell(value)
        out.append(f"{label}:".ljust(width), style="bold")
        for number, line in enumerate(value.split("\n")):
            out.append_text(line if number == 0 else Text("\n" + " " * width).append_text(line))
    return out


class _Indented:
    """A renderable shifted right, without the trailing padding rich's Padding adds."""

    def __init__(self, renderable: RenderableType, spaces: int = 2) -> None:
        self.renderable = renderable
        self.spaces = spaces

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        inner = options.update(width=max(1, options.max_width - self.spaces))
        for line in console.render_lines(self.renderable, inner, pad=False):
            yield Segment(" " * self.spaces)
            yield from line
            yield Segment.line()


def _indent(renderable: RenderableType) -> RenderableType:
    return _Indented(renderable)


def _when(value: Any, now: datetime) -> str | None:
    moment = facts.parse_time(value)
    if moment is None:
        return str(value) if value else None
    return f"{value} ({human_age((now - moment).total_seconds())} ago)"


# cancel


def cancel_json(results: Sequence[CancelResult]) -> list[dict[str, Any]]:
    return [result.to_json() for result in results]


def cancel_text(results: Sequence[CancelResult]) -> RenderableType:
    blocks: list[RenderableType] = []
    for index, result in enumerate(results):
        if index:
            blocks.append(Text(""))
        blocks.append(_cancel_block(result))
    return Group(*blocks)


def _headline_style(result: CancelResult) -> str:
    if result.error or result.timed_out:
        return "red"
    if result.already_finished or result.already_cancelling:
        return "yellow"
    return "green"


def _cancel_block(result: CancelResult) -> RenderableType:
    headline = Text.assemble(cell(result.name, "bold"), "  ", cell(result.message, _headline_style(result)))
    if result.error and result.phase is None:
        return Group(headline, _indent(_fields([("namespace", result.namespace)])))
    rows: list[Field] = [
        ("namespace", result.namespace),
        ("status", phase_text(result.phase)),
        ("would cancel" if result.dry_run else "cancelled", _count_text(result.cancelled_count, len(result.children))),
        ("reason", result.reason),
        ("children", list(result.children)),
    ]
    parts: list[RenderableType] = [headline, _indent(_fields(rows))]
    if result.tree is not None:
        parts.append(_indent(Group(Text("would touch:", style="bold"), execution_tree(result.tree, pods=True))))
    return Group(*parts)


def _count_text(count: int, children: int) -> str:
    if count == 0:
        return "0"
    noun = "execution" if count == 1 else "executions"
    detail = f"itself and {children} {'child' if children == 1 else 'children'}" if children else "itself"
    return f"{count} {noun} ({detail})"


# tree


def execution_tree(node: Node, pods: bool = False) -> Tree:
    tree = Tree(_node_label(node), guide_style="dim")
    _grow(tree, node, pods)
    return tree


def _node_label(node: Node) -> Text:
    label = Text.assemble(cell(node.name, "bold"), "  ", phase_text(node.phase))
    if node.reason:
        label.append_text(cell(f"  {node.reason}", "dim"))
    return label


def _grow(branch: Tree, node: Node, pods: bool) -> None:
    if pods:
        for pod in node.pods:
            branch.add(Text.assemble(("pod ", "dim"), cell(pod.name), "  ", cell(pod.phase, "dim")))
    for child in node.children:
        _grow(branch.add(_node_label(child)), child, pods)


def tree_json(node: Node) -> dict[str, Any]:
    return node.to_json()


# list


def list_rows(executions: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    rows = []
    for obj in executions:
        created = facts.created_at(obj)
        rows.append(
            {
                "name": facts.name_of(obj),
                "namespace": facts.namespace_of(obj),
                "phase": facts.phase_of(obj),
                "reason": facts.reason_of(obj),
                "createdAt": facts.metadata(obj).get("creationTimestamp"),
                "age": human_age((now - created).total_seconds()) if created else None,
            }
        )
    return rows


def list_json(executions: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    return list_rows(executions, now)


def list_table(executions: Sequence[dict[str, Any]], now: datetime, all_namespaces: bool) -> Table:
    columns = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "PHASE", "REASON", "AGE"]
    table = _kubectl_table(*columns, wrap=["REASON"])
    for row in list_rows(executions, now):
        cells: list[Text] = [cell(row["namespace"])] if all_namespaces else []
        cells += [cell(row["name"]), phase_text(row["phase"]), cell(row["reason"]), cell(row["age"])]
        table.add_row(*cells)
    return table


# status


def merge_children(status_children: Sequence[Any], live: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """status.children (spawn order, with results) joined with the children found by label (live phase)."""
    merged: dict[str, dict[str, Any]] = {}
    for entry in status_children:
        if isinstance(entry, dict) and entry.get("name"):
            merged[entry["name"]] = {
                "name": entry["name"],
                "phase": entry.get("phase"),
                "result": entry.get("result"),
                "error": entry.get("error"),
            }
    for obj in sorted(live, key=facts.name_of):
        row = merged.setdefault(facts.name_of(obj), {"name": facts.name_of(obj), "result": None, "error": None})
        row["phase"] = facts.phase_of(obj)
    return list(merged.values())


def _checkpoint_json(checkpoint: dict[str, Any] | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    steps = [step for step in checkpoint.get("steps") or [] if isinstance(step, dict)]
    last = steps[-1] if steps else None
    return {
        "state": checkpoint.get("state"),
        "sequence": checkpoint.get("sequence"),
        "stepsCount": checkpoint.get("stepCount") or len(steps),  # steps lists only the latest ones
        "lastStep": {"name": last.get("name"), "completedAt": last.get("completedAt")} if last else None,
        "data": checkpoint.get("data"),
        "result": checkpoint.get("result"),
        "error": checkpoint.get("error"),
        "updatedAt": checkpoint.get("updatedAt"),
    }


def status_json(view: StatusView) -> dict[str, Any]:
    obj = view.execution
    status = facts.status(obj)
    return {
        "name": facts.name_of(obj),
        "namespace": facts.namespace_of(obj),
        "workflow": facts.spec(obj).get("workflow"),
        "phase": facts.phase_of(obj),
        "podName": status.get("podName"),
        "createdAt": facts.metadata(obj).get("creationTimestamp"),
        "startedAt": status.get("startedAt"),
        "finishedAt": status.get("finishedAt"),
        "message": status.get("message"),
        "conditions": [
            {key: condition.get(key) for key in ("type", "status", "reason", "message", "lastTransitionTime")}
            for condition in facts.conditions(obj)
        ],
        "cancelRequest": facts.spec_cancel(obj),
        "cancelAnnotation": facts.annotations_of(obj).get(CANCEL_ANNOTATION),
        "cancellation": facts.cancellation(obj),
        "checkpoint": _checkpoint_json(facts.checkpoint(obj)),
        "children": merge_children(status.get("children") or [], view.children),
        "scheduling": facts.scheduling(obj),
    }


def _short(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _DATA_CHARS else text[:_DATA_CHARS] + f"... ({len(text)} characters; -o json shows all)"


def status_text(view: StatusView, now: datetime) -> RenderableType:
    data = status_json(view)
    parts: list[RenderableType] = [
        _fields(
            [
                ("Name", cell(data["name"], "bold")),
                ("Namespace", data["namespace"]),
                ("Workflow", data["workflow"]),
                ("Phase", phase_text(data["phase"])),
                ("Pod", data["podName"]),
                ("Created", _when(data["createdAt"], now)),
                ("Started", _when(data["startedAt"], now)),
                ("Finished", _when(data["finishedAt"], now)),
                ("Message", data["message"]),
            ]
        )
    ]
    parts += [Text(""), Text("Conditions:", style="bold"), _indent(_conditions_table(data["conditions"], now))]
    from flux_cli.render_schedules import scheduling_fields  # that module builds on this one

    parts += [Text(""), Text("Scheduling:", style="bold"), _indent(scheduling_fields(data["scheduling"], now))]
    parts += [Text(""), Text("Cancellation:", style="bold"), _indent(_cancellation_fields(data, now))]
    parts += [Text(""), Text("Checkpoint:", style="bold"), _indent(_checkpoint_fields(data["checkpoint"], now))]
    parts += [Text(""), Text("Children:", style="bold"), _indent(_children_table(data["children"]))]
    return Group(*parts)


def _conditions_table(conditions: list[dict[str, Any]], now: datetime) -> RenderableType:
    if not conditions:
        return Text(NONE)
    with_message = any(condition.get("message") for condition in conditions)
    table = _kubectl_table("TYPE", "STATUS", "REASON", "AGE", *(["MESSAGE"] if with_message else []), wrap=["MESSAGE"])
    for condition in conditions:
        moment = facts.parse_time(condition.get("lastTransitionTime"))
        cells = [Text(printable(condition.get(key) or "")) for key in ("type", "status", "reason")]
        cells.append(Text(human_age((now - moment).total_seconds()) if moment else NONE))
        if with_message:
            cells.append(Text(printable(condition.get("message") or "")))
        table.add_row(*cells)
    return table


def _cancellation_fields(data: dict[str, Any], now: datetime) -> RenderableType:
    cancellation = data["cancellation"]
    request = data["cancelRequest"]
    if cancellation is None:
        if request:
            return cell(f"requested (reason: {request.get('reason')}), not yet handled by the operator")
        if data["cancelAnnotation"]:
            return cell(f"requested by annotation (reason: {data['cancelAnnotation']}), not yet handled by the operator")
        return Text("not requested")
    children = [child for child in cancellation.get("children") or [] if isinstance(child, dict)]
    rows: list[Field] = [
        ("Reason", cancellation.get("reason")),
        ("Source", cancellation.get("source")),
        ("Requested", _when(cancellation.get("requestedAt"), now)),
        ("Signalled", _when(cancellation.get("signalledAt"), now)),
        ("Acknowledged", _when(cancellation.get("acknowledgedAt"), now)),
        ("Completed", _when(cancellation.get("completedAt"), now)),
        ("Outcome", cancellation.get("outcome")),
    ]
    if request:
        rows.append(("Cascade", "yes" if request.get("cascade", True) else "no"))
        rows.append(("Force", "yes" if request.get("force") else "no"))
    rows.append(("Children", [f"{c.get('name')} ({c.get('phase') or NONE})" for c in children]))
    return _fields(rows)


def _checkpoint_fields(checkpoint: dict[str, Any] | None, now: datetime) -> RenderableType:
    if checkpoint is None:
        return Text("none yet")
    last = checkpoint["lastStep"]
    last_text = None
    if last:
        done = facts.parse_time(last.get("completedAt"))
        last_text = str(last["name"]) + (f" (completed {human_age((now - done).total_seconds())} ago)" if done else "")
    rows: list[Field] = [
        ("State", checkpoint["state"]),
        ("Sequence", checkpoint["sequence"]),
        ("Steps", checkpoint["stepsCount"]),
        ("Last step", last_text),
        ("Updated", _when(checkpoint["updatedAt"], now)),
        ("Data", _short(checkpoint["data"])),
    ]
    if checkpoint["result"] is not None:
        rows.append(("Result", _short(checkpoint["result"])))
    if checkpoint["error"]:
        rows.append(("Error", checkpoint["error"]))
    return _fields(rows)


def _children_table(children: list[dict[str, Any]]) -> RenderableType:
    if not children:
        return Text(NONE)
    with_error = any(child.get("error") for child in children)
    table = _kubectl_table("NAME", "PHASE", *(["ERROR"] if with_error else []), wrap=["ERROR"])
    for child in children:
        cells = [cell(child["name"]), phase_text(child.get("phase"))]
        if with_error:
            cells.append(Text(printable(child.get("error") or "")))
        table.add_row(*cells)
    return table


# version


def version_text(plugin: str, api_version: str, server: str | None, api_served: bool | None) -> RenderableType:
    rows: list[Field] = [("Plugin", plugin), ("Execution API", api_version)]
    if server is not None:
        rows.append(("Server", server))
        rows.append(("API installed", "yes" if api_served else "no: install the Flux CRD"))
    return _fields(rows)
