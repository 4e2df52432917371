"""`kubectl flux logs`: the runner's log of an execution, escaped on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import typer

from flux_cli.app import Cluster, Reach, app, command, name_argument, print_note, reporting
from flux_cli.errors import ExitCode
from flux_cli.executions.selection import check_name
from flux_cli.logs import following
from flux_cli.terminal import LogWriter

LOGS_EPILOG = """Examples:
  kubectl flux logs etl-nightly
  kubectl flux logs etl-nightly -f -n data

With -f the log is followed until the execution finishes: a retry's new runner pod, a pod resumed
after an eviction and a restarted container are followed too (a note on stderr marks each).
Without -f, the current runner's log is printed; an execution with no runner pod yet is an error.

On a terminal, control characters in the log (escape sequences, carriage returns) are shown as
escapes such as \\x1b, since the log is the workflow's output, not yours; --raw prints it as written.
Piped or redirected, the log is always passed on exactly as written, like kubectl logs."""

ExecutionName = name_argument("The execution.", check_name)


@command(app, Reach.NAMESPACE, epilog=LOGS_EPILOG)
def logs(
    name: ExecutionName,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Follow the log until the execution finishes.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="On a terminal too, print control characters as written.")] = False,
    *,
    cluster: Cluster,
) -> int:
    """The runner's log of an execution, read through the API server (like kubectl logs)."""

    def write(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()  # a follow shows each line as it comes

    out = log_sink(write, raw, sys.stdout.isatty())
    with reporting():
        kube = cluster.connect()
        try:
            following.show_logs(kube, cluster.namespace_in(kube), name, follow, out, print_note)
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
