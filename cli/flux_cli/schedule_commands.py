"""`kubectl flux unschedule` and `kubectl flux schedule list|suspend|resume`: thin typer commands."""

from __future__ import annotations

from typing import Annotated

import typer

from flux_cli import render, render_schedules, schedules
from flux_cli.cancelling import ExitCode
from flux_cli.main import (
    AllNamespaces,
    Context,
    Kubeconfig,
    Namespace,
    Output,
    OutputFormat,
    _connect,
    _name,
    _now,
    app,
    emit,
    print_note,
    reporting,
)

schedule_app = typer.Typer(help="List, suspend and resume Schedules (schedules.workflows.flux.dev).",
                           no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")
Reason = Annotated[str | None, typer.Option("--reason", help="Why; kept on the Schedule.", show_default=False)]


@app.command()
def unschedule(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The Schedule.", parser=_name, show_default=False)],
    reason: Reason = None,
    cancel_running: Annotated[bool, typer.Option("--cancel-running", help="Also cancel its running executions.")] = False,
    output: Output = OutputFormat.TEXT,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> int:
    """Suspend a Schedule (no new runs) and, with --cancel-running, cancel the runs still active."""
    with reporting():
        kube = _connect(kubeconfig, context)
        result = schedules.unschedule(kube, namespace or kube.default_namespace, name, reason, cancel_running)
    emit(output, render_schedules.unschedule_text(result), render_schedules.unschedule_json(result))
    return ExitCode.OK


@schedule_app.command(name="list")
def schedule_list(
    output: Output = OutputFormat.TEXT,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
) -> int:
    """List Schedules: cron, time zone, suspended or not, active runs, last and next run."""
    with reporting():
        kube = _connect(kubeconfig, context)
        where = None if all_namespaces else (namespace or kube.default_namespace)
        rows = schedules.rows(kube.list_schedules(where), _now())
    if not rows and output is OutputFormat.TEXT:
        print_note("no schedules found " + ("in any namespace" if where is None else f'in namespace "{where}"'))
        return ExitCode.OK
    emit(output, render_schedules.schedule_table(rows, all_namespaces), rows)
    return ExitCode.OK


@schedule_app.command(name="suspend")
def schedule_suspend(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The Schedule.", parser=_name, show_default=False)],
    reason: Reason = None,
    output: Output = OutputFormat.TEXT,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> int:
    """Suspend a Schedule: no new runs; running ones carry on (`unschedule --cancel-running` stops them)."""
    with reporting():
        kube = _connect(kubeconfig, context)
        result = schedules.unschedule(kube, namespace or kube.default_namespace, name, reason, False)
    emit(output, render_schedules.unschedule_text(result), render_schedules.unschedule_json(result))
    return ExitCode.OK


@schedule_app.command(name="resume")
def schedule_resume(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The Schedule.", parser=_name, show_default=False)],
    output: Output = OutputFormat.TEXT,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> int:
    """Resume a suspended Schedule: the next cron time starts a run (missed ones are not made up)."""
    with reporting():
        kube = _connect(kubeconfig, context)
        schedules.resume(kube, namespace or kube.default_namespace, name)
    emit(output, render.Text(f'schedule "{name}" resumed'), {"schedule": name, "suspended": False})
    return ExitCode.OK
