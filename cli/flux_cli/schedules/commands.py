"""`kubectl flux unschedule` and `kubectl flux schedule list|suspend|resume`: thin typer commands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from flux_cli.app import (
    Cluster,
    Output,
    OutputFormat,
    Reach,
    app,
    command,
    emit,
    name_argument,
    now,
    note_none_found,
    reporting,
)
from flux_cli.errors import ExitCode
from flux_cli.executions.selection import check_name
from flux_cli.schedules import actions, render

schedule_app = typer.Typer(help="List, suspend and resume Schedules (schedules.workflows.flux.dev).",
                           no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")
Reason = Annotated[str | None, typer.Option("--reason", help="Why; kept on the Schedule.", show_default=False)]
ScheduleName = name_argument("The Schedule.", check_name)


@command(app, Reach.NAMESPACE)
def unschedule(
    name: ScheduleName,
    reason: Reason = None,
    cancel_running: Annotated[bool, typer.Option("--cancel-running", help="Also cancel its running executions.")] = False,
    output: Output = OutputFormat.TEXT,
    *,
    cluster: Cluster,
) -> int:
    """Suspend a Schedule (no new runs) and, with --cancel-running, cancel the runs still active."""
    return _suspend(name, reason, cancel_running, output, cluster)


@command(schedule_app, Reach.NAMESPACES, name="list")
def schedule_list(output: Output = OutputFormat.TEXT, *, cluster: Cluster) -> int:
    """List Schedules: cron, time zone, suspended or not, active runs, last and next run."""
    with reporting():
        kube = cluster.connect()
        where = cluster.scope_in(kube)
        rows = actions.rows(kube.list_schedules(where), now())
    if not rows and output is OutputFormat.TEXT:
        note_none_found("schedules", where)
        return ExitCode.OK
    emit(output, render.schedule_table(rows, cluster.all_namespaces), rows)
    return ExitCode.OK


@command(schedule_app, Reach.NAMESPACE, name="suspend")
def schedule_suspend(name: ScheduleName, reason: Reason = None, output: Output = OutputFormat.TEXT, *,
                     cluster: Cluster) -> int:
    """Suspend a Schedule: no new runs; running ones carry on (`unschedule --cancel-running` stops them)."""
    return _suspend(name, reason, False, output, cluster)


def _suspend(name: str, reason: str | None, cancel_running: bool, output: OutputFormat, cluster: Cluster) -> int:
    with reporting():
        kube = cluster.connect()
        result = actions.unschedule(kube, cluster.namespace_in(kube), name, reason, cancel_running)
    emit(output, render.unschedule_text(result), render.unschedule_json(result))
    return ExitCode.OK


@command(schedule_app, Reach.NAMESPACE, name="resume")
def schedule_resume(name: ScheduleName, output: Output = OutputFormat.TEXT, *, cluster: Cluster) -> int:
    """Resume a suspended Schedule: the next cron time starts a run (missed ones are not made up)."""
    with reporting():
        kube = cluster.connect()
        actions.resume(kube, cluster.namespace_in(kube), name)
    emit(output, Text(f'schedule "{name}" resumed'), {"schedule": name, "suspended": False})
    return ExitCode.OK
