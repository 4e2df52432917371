"""Executions as text (rich renderables) or JSON-ready dicts: cancel results, trees, lists, status.

Built on rendering.py, which escapes every string from the cluster on its way in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flux_api import CANCEL_ANNOTATION
from flux_api.timefmt import parse_time
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from flux_cli import objects
from flux_cli.executions.actions import StatusView
from flux_cli.executions.cancelling import CancelResult
from flux_cli.executions.family import Node
from flux_cli.durations import age
from flux_cli.rendering import NONE, Field, Indented, cell, fields, kubectl_table, listing, phase_text, when
from flux_cli.terminal import printable

_DATA_CHARS = 400


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
        return Group(headline, Indented(fields([("namespace", result.namespace)])))
    rows: list[Field] = [
        ("namespace", result.namespace),
        ("status", phase_text(result.phase)),
        ("would cancel" if result.dry_run else "cancelled", _count_text(result.cancelled_count, len(result.children))),
        ("reason", result.reason),
        ("children", list(result.children)),
    ]
    parts: list[RenderableType] = [headline, Indented(fields(rows))]
    if result.tree is not None:
        parts.append(Indented(Group(Text("would touch:", style="bold"), execution_tree(result.tree, pods=True))))
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
        created = objects.created_at(obj)
        rows.append(
            {
                "name": objects.name_of(obj),
                "namespace": objects.namespace_of(obj),
                "phase": objects.phase_of(obj),
                "reason": objects.reason_of(obj),
                "createdAt": objects.metadata(obj).get("creationTimestamp"),
                "age": age(created, now),
            }
        )
    return rows


def list_json(executions: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    return list_rows(executions, now)


def list_table(executions: Sequence[dict[str, Any]], now: datetime, all_namespaces: bool) -> Table:
    table = listing(all_namespaces, "NAME", "PHASE", "REASON", "AGE", wrap=["REASON"])
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
    for obj in sorted(live, key=objects.name_of):
        row = merged.setdefault(objects.name_of(obj), {"name": objects.name_of(obj), "result": None, "error": None})
        row["phase"] = objects.phase_of(obj)
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
    status = objects.status(obj)
    return {
        "name": objects.name_of(obj),
        "namespace": objects.namespace_of(obj),
        "workflow": objects.spec(obj).get("workflow"),
        "phase": objects.phase_of(obj),
        "podName": status.get("podName"),
        "createdAt": objects.metadata(obj).get("creationTimestamp"),
        "startedAt": status.get("startedAt"),
        "finishedAt": status.get("finishedAt"),
        "message": status.get("message"),
        "conditions": [
            {key: condition.get(key) for key in ("type", "status", "reason", "message", "lastTransitionTime")}
            for condition in objects.conditions(obj)
        ],
        "cancelRequest": objects.spec_cancel(obj),
        "cancelAnnotation": objects.annotations_of(obj).get(CANCEL_ANNOTATION),
        "cancellation": objects.cancellation(obj),
        "checkpoint": _checkpoint_json(objects.checkpoint(obj)),
        "children": merge_children(status.get("children") or [], view.children),
        "scheduling": objects.scheduling(obj),
    }


def _short(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _DATA_CHARS else text[:_DATA_CHARS] + f"... ({len(text)} characters; -o json shows all)"


def status_text(view: StatusView, now: datetime) -> RenderableType:
    data = status_json(view)
    parts: list[RenderableType] = [
        fields(
            [
                ("Name", cell(data["name"], "bold")),
                ("Namespace", data["namespace"]),
                ("Workflow", data["workflow"]),
                ("Phase", phase_text(data["phase"])),
                ("Pod", data["podName"]),
                ("Created", when(data["createdAt"], now)),
                ("Started", when(data["startedAt"], now)),
                ("Finished", when(data["finishedAt"], now)),
                ("Message", data["message"]),
            ]
        )
    ]
    parts += [Text(""), Text("Conditions:", style="bold"), Indented(_conditions_table(data["conditions"], now))]
    parts += [Text(""), Text("Scheduling:", style="bold"), Indented(scheduling_fields(data["scheduling"], now))]
    parts += [Text(""), Text("Cancellation:", style="bold"), Indented(_cancellation_fields(data, now))]
    parts += [Text(""), Text("Checkpoint:", style="bold"), Indented(_checkpoint_fields(data["checkpoint"], now))]
    parts += [Text(""), Text("Children:", style="bold"), Indented(_children_table(data["children"]))]
    return Group(*parts)


def _conditions_table(conditions: list[dict[str, Any]], now: datetime) -> RenderableType:
    if not conditions:
        return Text(NONE)
    with_message = any(condition.get("message") for condition in conditions)
    table = kubectl_table("TYPE", "STATUS", "REASON", "AGE", *(["MESSAGE"] if with_message else []), wrap=["MESSAGE"])
    for condition in conditions:
        moment = parse_time(condition.get("lastTransitionTime"))
        cells = [Text(printable(condition.get(key) or "")) for key in ("type", "status", "reason")]
        cells.append(Text(age(moment, now) or NONE))
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
        ("Requested", when(cancellation.get("requestedAt"), now)),
        ("Signalled", when(cancellation.get("signalledAt"), now)),
        ("Acknowledged", when(cancellation.get("acknowledgedAt"), now)),
        ("Completed", when(cancellation.get("completedAt"), now)),
        ("Outcome", cancellation.get("outcome")),
    ]
    if request:
        rows.append(("Cascade", "yes" if request.get("cascade", True) else "no"))
        rows.append(("Force", "yes" if request.get("force") else "no"))
    rows.append(("Children", [f"{c.get('name')} ({c.get('phase') or NONE})" for c in children]))
    return fields(rows)


def _checkpoint_fields(checkpoint: dict[str, Any] | None, now: datetime) -> RenderableType:
    if checkpoint is None:
        return Text("none yet")
    last = checkpoint["lastStep"]
    last_text = None
    if last:
        done = parse_time(last.get("completedAt"))
        last_text = str(last["name"]) + (f" (completed {age(done, now)} ago)" if done else "")
    rows: list[Field] = [
        ("State", checkpoint["state"]),
        ("Sequence", checkpoint["sequence"]),
        ("Steps", checkpoint["stepsCount"]),
        ("Last step", last_text),
        ("Updated", when(checkpoint["updatedAt"], now)),
        ("Data", _short(checkpoint["data"])),
    ]
    if checkpoint["result"] is not None:
        rows.append(("Result", _short(checkpoint["result"])))
    if checkpoint["error"]:
        rows.append(("Error", checkpoint["error"]))
    return fields(rows)


def _children_table(children: list[dict[str, Any]]) -> RenderableType:
    if not children:
        return Text(NONE)
    with_error = any(child.get("error") for child in children)
    table = kubectl_table("NAME", "PHASE", *(["ERROR"] if with_error else []), wrap=["ERROR"])
    for child in children:
        cells = [cell(child["name"]), phase_text(child.get("phase"))]
        if with_error:
            cells.append(Text(printable(child.get("error") or "")))
        table.add_row(*cells)
    return table


def scheduling_fields(data: dict[str, Any], now: datetime) -> RenderableType:
    """Delayed start, retries, retention and the Schedule of an execution: only what is set."""
    retry = data.get("retry")
    request = data.get("unscheduleRequest") or {}
    rows: list[Field] = [
        ("Schedule", data.get("schedule")),
        ("Scheduled for", when(data.get("scheduledAt"), now)),
        ("Start at", when(data.get("startAt"), now)),
        ("Retry", f"limit {retry.get('limit')}, backoff {retry.get('backoffSeconds', 10)}s" if retry else None),
        ("Retries", data.get("retries")),
        ("Next retry", when(data.get("nextRetryAt"), now)),
        ("TTL", f"{data['ttlSecondsAfterFinished']}s after finishing"
         if data.get("ttlSecondsAfterFinished") is not None else None),
        ("Unschedule", request.get("reason")),
    ]
    shown = [(label, value) for label, value in rows if value not in (None, "")]
    return fields(shown) if shown else Text(NONE)
