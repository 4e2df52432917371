"""`kubectl flux`: the typer commands. Thin on purpose: parse flags, call actions, print render output.

stdout carries results (text or JSON); stderr carries errors and notes, one line each.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from typing import Annotated, Any

import typer
from flux_api import API_VERSION, Phase
from rich.console import Console, RenderableType
from typer.core import TyperGroup

from flux_cli import actions, following, render
from flux_cli.cancelling import DEFAULT_REASON, ExitCode, build_cancel_patch
from flux_cli.durations import DURATION_HELP, DurationError, parse_duration
from flux_cli.errors import ArgumentError, FluxCliError
from flux_cli.kube import Kube, KubeError, connect
from flux_cli.selection import check_name, make_selection
from flux_cli.terminal import Guarded, LogWriter, printable

PROG = "kubectl flux"
DISTRIBUTION = "kubectl-flux"
# When piped, lines are as long as their content: no wrapping inside a table a script reads.
_PIPE_WIDTH = 4096

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


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class FluxGroup(TyperGroup):
    """Bad arguments are errors like any other: one line on stderr and exit code 1 (not click's 2)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            # Without standalone mode typer returns exit codes and raises usage errors to us.
            result = super().main(
                args=argv or ["--help"], prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra
            )
            code = result if isinstance(result, int) else 0
        except typer.TyperException as error:
            command = getattr(getattr(error, "ctx", None), "command_path", None) or prog_name or PROG
            # Typer's pydantic-based checks prefix "Value error, ": noise for the user.
            message = error.format_message().replace("Value error, ", "")
            print_error(f"{message} (see '{command} --help')")
            code = ExitCode.ERROR
        except typer.Abort:
            print_error("aborted")
            code = ExitCode.ERROR
        if standalone_mode:
            sys.exit(int(code))
        return int(code)


app = typer.Typer(
    name=PROG,
    cls=FluxGroup,
    help="Inspect and cancel Flux workflow executions (executions.workflows.flux.dev).",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    # Locals in a traceback could include credentials from the kubeconfig.
    pretty_exceptions_show_locals=False,
)


# Output


def make_console(stderr: bool = False) -> Console:
    """Colour only on a terminal and never with NO_COLOR set (then no ANSI codes at all)."""
    stream = sys.stderr if stderr else sys.stdout
    no_color = bool(os.environ.get("NO_COLOR"))
    width = None if stream.isatty() else (_env_int("COLUMNS") or _PIPE_WIDTH)
    return Console(
        file=stream,
        color_system=None if no_color else "auto",
        width=width,
        markup=False,
        highlight=False,
        emoji=False,
    )


def _env_int(name: str) -> int | None:
    try:
        return int(os.environ.get(name, ""))
    except ValueError:
        return None


def print_error(message: str) -> None:
    """One line: API servers quote what they refuse, so the message may carry a tenant's strings."""
    console = make_console(stderr=True)
    console.print(Guarded(render.Text.assemble(("error: ", "bold red"), printable(" ".join(message.split())))))


def print_note(message: str) -> None:
    make_console(stderr=True).print(Guarded(render.Text.assemble(("note: ", "yellow"), printable(message))))


def emit(output: OutputFormat, text: RenderableType, json_data: Any) -> None:
    if output is OutputFormat.JSON:
        sys.stdout.write(render.to_json_text(json_data) + "\n")
    else:
        make_console().print(Guarded(text))


@contextmanager
def reporting() -> Iterator[None]:
    """Our own errors become one line and exit code 1."""
    try:
        yield
    except FluxCliError as error:
        print_error(str(error))
        raise typer.Exit(ExitCode.ERROR) from None


# Shared flags (kubectl's names)

Kubeconfig = Annotated[
    str | None,
    typer.Option("--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).", show_default=False, rich_help_panel="Cluster"),
]
Context = Annotated[str | None, typer.Option("--context", help="Kubeconfig context to use.", show_default=False, rich_help_panel="Cluster")]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace (default: the context's namespace, else default).", show_default=False, rich_help_panel="Cluster"),
]
AllNamespaces = Annotated[bool, typer.Option("--all-namespaces", "-A", help="Across all namespaces (overrides -n).", rich_help_panel="Cluster")]
Output = Annotated[OutputFormat, typer.Option("--output", "-o", case_sensitive=False, help="Output format.")]
Selector = Annotated[
    str | None, typer.Option("--selector", "-l", help="Label selector, e.g. -l team=data,tier!=batch.", show_default=False)
]


def _name(text: str) -> str:
    try:
        return check_name(text)
    except ArgumentError as error:
        raise typer.BadParameter(str(error)) from None


def _connect(kubeconfig: str | None, context: str | None) -> Kube:
    return connect(kubeconfig=kubeconfig, context=context)


def _now() -> datetime:
    return datetime.now(UTC)


# Commands


@app.command(epilog=CANCEL_EPILOG)
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
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
) -> int:
    """Cancel executions (and, unless --no-cascade, their children)."""
    with reporting():
        selection = make_selection(names, selector, all_, all_namespaces)
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
        kube = _connect(kubeconfig, context)
        run = actions.cancel(kube, selection, namespace or kube.default_namespace, options)
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


def _duration_arg(flag: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except DurationError as error:
        raise ArgumentError(f"{flag}: {error}") from None


@app.command()
def status(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The execution.", parser=_name, show_default=False)],
    output: Output = OutputFormat.TEXT,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> int:
    """Phase, conditions, cancellation, checkpoint and children of one execution."""
    with reporting():
        kube = _connect(kubeconfig, context)
        view = actions.status(kube, namespace or kube.default_namespace, name)
    emit(output, render.status_text(view, _now()), render.status_json(view))
    return ExitCode.OK


@app.command(name="list")
def list_(
    phase: Annotated[
        Phase | None, typer.Option("--phase", case_sensitive=False, help="Only executions in this phase.", show_default=False)
    ] = None,
    selector: Selector = None,
    output: Output = OutputFormat.TEXT,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
) -> int:
    """List executions: NAME, PHASE, REASON, AGE."""
    with reporting():
        if selector is not None and not selector.strip():
            raise ArgumentError("-l/--selector needs a label selector, e.g. -l app=etl")
        kube = _connect(kubeconfig, context)
        where = None if all_namespaces else (namespace or kube.default_namespace)
        found = actions.list_executions(kube, where, selector, phase)
    now = _now()
    if not found and output is OutputFormat.TEXT:
        print_note("no executions found " + ("in any namespace" if where is None else f'in namespace "{where}"'))
        return ExitCode.OK
    emit(output, render.list_table(found, now, all_namespaces), render.list_json(found, now))
    return ExitCode.OK


@app.command()
def tree(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The root execution.", parser=_name, show_default=False)],
    output: Output = OutputFormat.TEXT,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> int:
    """An execution and all its descendants, with their phases."""
    with reporting():
        kube = _connect(kubeconfig, context)
        root = actions.tree(kube, namespace or kube.default_namespace, name)
    emit(output, render.execution_tree(root), render.tree_json(root))
    return ExitCode.OK


LOGS_EPILOG = """Examples:
  kubectl flux logs etl-nightly
  kubectl flux logs etl-nightly -f -n data

With -f the log is followed until the execution finishes: a retry's new runner pod, a pod resumed
after an eviction and a restarted container are followed too (a note on stderr marks each).
Without -f, the current runner's log is printed; an execution with no runner pod yet is an error.

On a terminal, control characters in the log (escape sequences, carriage returns) are shown as
escapes such as \\x1b, since the log is the workflow's output, not yours; --raw prints it as written.
Piped or redirected, the log is always passed on exactly as written, like kubectl logs."""


@app.command(epilog=LOGS_EPILOG)
def logs(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The execution.", parser=_name, show_default=False)],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Follow the log until the execution finishes.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="On a terminal too, print control characters as written.")] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> int:
    """The runner's log of an execution, read through the API server (like kubectl logs)."""

    def write(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()  # a follow shows each line as it comes

    out = log_sink(write, raw, sys.stdout.isatty())
    with reporting():
        kube = _connect(kubeconfig, context)
        try:
            following.show_logs(kube, namespace or kube.default_namespace, name, follow, out, print_note)
        except KeyboardInterrupt:
            return ExitCode.OK  # Ctrl-C ends a follow, as with kubectl logs -f
        finally:
            if isinstance(out, LogWriter):
                out.close()
    return ExitCode.OK


def log_sink(write: Callable[[bytes], None], raw: bool, terminal: bool) -> Callable[[bytes], None]:
    """Where the log's bytes go: escaped on a terminal (the workflow's output must not drive the user's
    terminal), as written when piped or with --raw (a file or a grep gets the exact log, as kubectl logs)."""
    return write if raw or not terminal else LogWriter(write)


@app.command()
def version(
    client: Annotated[bool, typer.Option("--client", help="Only the plugin's version; do not contact the cluster.")] = False,
    output: Output = OutputFormat.TEXT,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> int:
    """The plugin version and, unless --client, the cluster's version and whether it serves executions."""
    plugin = plugin_version()
    server: str | None = None
    served: bool | None = None
    error: KubeError | None = None
    if not client:
        try:
            kube = _connect(kubeconfig, context)
            server, served = kube.server_version(), kube.execution_api_served()
        except KubeError as failure:
            error = failure
    data = {"plugin": plugin, "apiVersion": API_VERSION, "server": server, "apiInstalled": served}
    emit(output, render.version_text(plugin, API_VERSION, server, served), data)
    if error is not None:
        print_error(str(error))
        return ExitCode.ERROR
    return ExitCode.OK


def plugin_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


# The Schedule verbs register themselves on `app`; they use the shared flags above.
from flux_cli import schedule_commands  # noqa: E402,F401


def run() -> None:
    """Console script entry point (`kubectl-flux`; kubectl finds it on PATH as `kubectl flux`)."""
    app(prog_name=PROG)
