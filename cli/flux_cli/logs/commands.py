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
from flux_cli.logs.plain import PlainLines
from flux_cli.terminal import LogWriter

LOGS_EPILOG = """Examples:
  kubectl flux logs etl-nightly
  kubectl flux logs etl-nightly -f -n data

With -f the log is followed until the execution finishes: a retry's new runner pod, a pod resumed
after an eviction and a restarted container are followed too (a note on stderr marks each).
Without -f, the current runner's log is printed; an execution with no runner pod yet is an error.

A runner logging JSON (the operator's --log-format json) is shown in the plain form, one line each.
On a terminal, control characters in the log (escape sequences, carriage returns) are shown as
escapes such as \\x1b, since the log is the workflow's output, not yours. Piped or redirected, every
other line is passed on exactly as written, like kubectl logs; --raw prints the whole log as written."""

ExecutionName = name_argument("The execution.", check_name)


@command(app, Reach.NAMESPACE, epilog=LOGS_EPILOG)
def logs(
    name: ExecutionName,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Follow the log until the execution finishes.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Print the log exactly as written: JSON lines as JSON, "
                                                   "control characters as they are.")] = False,
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
            if isinstance(out, PlainLines):
                out.close()
    return ExitCode.OK


def log_sink(write: Callable[[bytes], None], raw: bool, terminal: bool) -> Callable[[bytes], None]:
    """Where the log's bytes go: JSON log lines in the plain form, then escaped on a terminal (the workflow's
    output must not drive the user's terminal) or as written when piped; all as written with --raw."""
    if raw:
        return write
    return PlainLines(LogWriter(write) if terminal else write)
