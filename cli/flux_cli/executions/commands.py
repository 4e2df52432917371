"""`kubectl flux cancel|suspend|resume|status|list|tree`: parse flags, call the actions, print what the renderers
make."""

from __future__ import annotations

from typing import Annotated

import typer
from flux_api import Phase
from rich.text import Text

from flux_cli.app import (
    Cluster,
    Output,
    OutputFormat,
    Reach,
    Selector,
    app,
    command,
    emit,
    name_argument,
    note_none_found,
    now,
    print_error,
    print_note,
    reporting,
)
from flux_cli.durations import DURATION_HELP, DurationError, parse_duration
from flux_cli.errors import ArgumentError, ExitCode
from flux_cli.executions import actions, render, retrying, signalling, suspending
from flux_cli.executions.cancelling import DEFAULT_REASON, build_cancel_patch
from flux_cli.executions.selection import check_name, make_selection

CANCEL_EPILOG = """Examples:
  kubectl flux cancel etl-nightly --reason "bad input" --wait --timeout 2m
  kubectl flux cancel -l team=data --stale 2h --dry-run
  kubectl flux cancel --all -A --force -o json

Exit codes:
  0  done (without --wait: cancel accepted or already in progress)
  1  error: not found, forbidden, cluster unreachable, bad arguments
  3  nothing to cancel: a targeted execution had already finished
     (-l/--all/--stale: nothing matched that is still running)
  4  --wait timed out before every targeted execution finished
With several targets the worst code wins: 1, then 4, then 3, then 0."""

ExecutionName = name_argument("The execution.", check_name)
RootName = name_argument("The root execution.", check_name)


@command(app, Reach.NAMESPACES, epilog=CANCEL_EPILOG)
def cancel(
    names: Annotated[
        list[str] | None, typer.Argument(metavar="NAME", help="Executions to cancel.", show_default=False)
    ] = None,
    selector: Selector = None,
    all_: Annotated[bool, typer.Option("--all", help="Every unfinished execution in the namespace.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded on the execution.")] = DEFAULT_REASON,
    no_cascade: Annotated[bool, typer.Option("--no-cascade", help="Do not cancel child executions.")] = False,
    force: Annotated[bool, typer.Option("--force", help="No grace period: kill at once.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Return once every targeted execution has finished.")] = False,
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", help=f"How long --wait waits (default 60s); {DURATION_HELP}.", show_default=False),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the executions and pods it would touch; change nothing.")] = False,
    stale: Annotated[
        str | None,
        typer.Option("--stale", help="Only executions without checkpoint or progress for this long, e.g. 2h.", show_default=False),
    ] = None,
    output: Output = OutputFormat.TEXT,
    *,
    cluster: Cluster,
) -> int:
    """Cancel executions (and, unless --no-cascade, their children)."""
    with reporting():
        selection = make_selection(names, selector, all_, cluster.all_namespaces)
        if timeout is not None and not wait:
            raise ArgumentError("--timeout only applies with --wait")
        if wait and dry_run:
            raise ArgumentError("--wait and --dry-run do not go together: a dry run changes nothing to wait for")
        build_cancel_patch(reason)  # checks --reason before any API call
        options = actions.CancelOptions(
            reason=reason,
            cascade=not no_cascade,
            force=force,
            dry_run=dry_run,
            stale_seconds=_duration_arg("--stale", stale),
            wait=wait,
            timeout_seconds=_duration_arg("--timeout", timeout) if timeout is not None else 60.0,
        )
        kube = cluster.connect()
        run = actions.cancel(kube, selection, cluster.namespace_in(kube), options)
    for note in run.notes:
        print_note(note)
    # Like kubectl: a target that failed (not found, forbidden, rejected) is an error line on stderr;
    # JSON keeps it in the array too, so a script sees every target in one place.
    for result in run.results:
        if result.error:
            print_error(result.message)
    shown = [result for result in run.results if not result.error]
    if output is OutputFormat.JSON:
        emit(output, None, render.cancel_json(run.results))
    elif shown:
        emit(output, render.cancel_text(shown), None)
    return run.exit_code


SUSPEND_EPILOG = """Exit codes:
  0  suspend (resume) requested, or already so
  1  error: not found, forbidden, cluster unreachable, bad arguments
  3  nothing to do: the execution has finished or is being cancelled"""


@command(app, Reach.NAMESPACE, epilog=SUSPEND_EPILOG)
def suspend(
    name: ExecutionName,
    reason: Annotated[str | None, typer.Option("--reason", help="Why; recorded on the execution.",
                                              show_default=False)] = None,
    output: Output = OutputFormat.TEXT,
    *,
    cluster: Cluster,
) -> int:
    """Suspend an execution: its runner stops gracefully (as for a cancel), its checkpoint and children are kept
    (suspended too) and no pod runs until `resume`."""
    with reporting():
        suspending.suspend_patch(reason)  # checks --reason before any API call
        kube = cluster.connect()
        result = suspending.suspend(kube, cluster.namespace_in(kube), name, reason)
    return _toggled(result, output)


@command(app, Reach.NAMESPACE, epilog=SUSPEND_EPILOG)
def resume(name: ExecutionName, output: Output = OutputFormat.TEXT, *, cluster: Cluster) -> int:
    """Resume a suspended execution: a new runner pod continues from the checkpoint; no finished step runs again."""
    with reporting():
        kube = cluster.connect()
        result = suspending.resume(kube, cluster.namespace_in(kube), name)
    return _toggled(result, output)


@command(app, Reach.NAMESPACE)
def signal(
    name: ExecutionName,
    signal_name: Annotated[str, typer.Argument(metavar="SIGNAL", help="The signal the workflow waits for.")],
    data: Annotated[str | None, typer.Option("--data", help="JSON handed to the workflow.", show_default=False)] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why; recorded with the signal.",
                                              show_default=False)] = None,
    output: Output = OutputFormat.TEXT,
    *,
    cluster: Cluster,
) -> int:
    """Send a signal to an execution (ctx.wait_for_signal): appended to spec.signals; exit code 3 if it has
    finished."""
    with reporting():
        entry = signalling.signal_entry(signal_name, data, reason)  # checked before any API call
        kube = cluster.connect()
        sent = signalling.send(kube, cluster.namespace_in(kube), name, entry)
    emit(output, Text(f'execution "{sent.name}": {sent.message}'), sent.to_json())
    return sent.exit_code


Wait = Annotated[bool, typer.Option("--wait", help="Return once the new execution has finished.")]
Timeout = Annotated[str | None, typer.Option("--timeout", help=f"How long --wait waits (default 60s); {DURATION_HELP}.",
                                             show_default=False)]


@command(app, Reach.NAMESPACE)
def retry(
    name: ExecutionName,
    from_step: Annotated[str | None, typer.Option("--from-step", help="Run this step and every later one again "
                                                                      "(default: only what did not finish).",
                                                  show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the Execution it would create; create nothing.")] = False,
    wait: Wait = False,
    timeout: Timeout = None,
    output: Output = OutputFormat.TEXT,
    *,
    cluster: Cluster,
) -> int:
    """Retry a finished execution as a new one (spec.retryOf): its finished steps before --from-step are skipped
    and their results reused; the original is never changed."""
    return _made("retry", name, from_step, dry_run, wait, timeout, output, cluster)


@command(app, Reach.NAMESPACE)
def resubmit(name: ExecutionName, wait: Wait = False, timeout: Timeout = None, output: Output = OutputFormat.TEXT,
             *, cluster: Cluster) -> int:
    """Run an execution's spec again as a new execution, from the start (no checkpoint)."""
    return _made("resubmit", name, None, False, wait, timeout, output, cluster)


def _made(kind: str, name: str, from_step: str | None, dry_run: bool, wait: bool, timeout: str | None,
          output: OutputFormat, cluster: Cluster) -> int:
    with reporting():
        if timeout is not None and not wait:
            raise ArgumentError("--timeout only applies with --wait")
        if wait and dry_run:
            raise ArgumentError("--wait and --dry-run do not go together: a dry run creates nothing to wait for")
        seconds = _duration_arg("--timeout", timeout) if timeout is not None else 60.0
        kube = cluster.connect()
        made = retrying.make(kube, cluster.namespace_in(kube), name, kind, from_step, dry_run)
        if wait:
            made = retrying.wait_finished(kube, made, seconds)
    emit(output, Text(made.message), made.to_json())
    return made.exit_code


def _toggled(result: suspending.Toggled, output: OutputFormat) -> int:
    emit(output, Text(f'execution "{result.name}": {result.message}'), result.to_json())
    return result.exit_code


def _duration_arg(flag: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except DurationError as error:
        raise ArgumentError(f"{flag}: {error}") from None


@command(app, Reach.NAMESPACE)
def status(name: ExecutionName, output: Output = OutputFormat.TEXT, *, cluster: Cluster) -> int:
    """Phase, conditions, cancellation, checkpoint and children of one execution."""
    with reporting():
        kube = cluster.connect()
        view = actions.status(kube, cluster.namespace_in(kube), name)
    emit(output, render.status_text(view, now()), render.status_json(view))
    return ExitCode.OK


@command(app, Reach.NAMESPACES, name="list")
def list_(
    phase: Annotated[
        Phase | None, typer.Option("--phase", case_sensitive=False, help="Only executions in this phase.", show_default=False)
    ] = None,
    selector: Selector = None,
    output: Output = OutputFormat.TEXT,
    *,
    cluster: Cluster,
) -> int:
    """List executions: NAME, PHASE, REASON, AGE."""
    with reporting():
        if selector is not None and not selector.strip():
            raise ArgumentError("-l/--selector needs a label selector, e.g. -l app=etl")
        kube = cluster.connect()
        where = cluster.scope_in(kube)
        found = actions.list_executions(kube, where, selector, phase)
    moment = now()
    if not found and output is OutputFormat.TEXT:
        note_none_found("executions", where)
        return ExitCode.OK
    emit(output, render.list_table(found, moment, cluster.all_namespaces), render.list_json(found, moment))
    return ExitCode.OK


@command(app, Reach.NAMESPACE)
def tree(name: RootName, output: Output = OutputFormat.TEXT, *, cluster: Cluster) -> int:
    """An execution and all its descendants, with their phases."""
    with reporting():
        kube = cluster.connect()
        root = actions.tree(kube, cluster.namespace_in(kube), name)
    emit(output, render.execution_tree(root), render.tree_json(root))
    return ExitCode.OK
