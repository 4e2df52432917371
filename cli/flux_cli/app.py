"""The typer app every command registers on, the flags they share and how they print.

stdout carries results (text or JSON); stderr carries errors and notes, one line each.
The cluster flags (kubectl's names) are declared once, here: `@command(...)` adds them to a command and
hands it a `Cluster` instead.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.text import Text
from typer.core import TyperGroup

from flux_cli.errors import ArgumentError, ExitCode, FluxCliError
from flux_cli.connecting import connect
from flux_cli.kube import Kube
from flux_cli.terminal import Guarded, json_text, printable

PROG = "kubectl flux"
# When piped, lines are as long as their content: no wrapping inside a table a script reads.
_PIPE_WIDTH = 4096


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
    console.print(Guarded(Text.assemble(("error: ", "bold red"), printable(" ".join(message.split())))))


def print_note(message: str) -> None:
    make_console(stderr=True).print(Guarded(Text.assemble(("note: ", "yellow"), printable(message))))


def note_none_found(what: str, namespace: str | None) -> None:
    """An empty list is a note on stderr, as kubectl says "No resources found"; None is every namespace."""
    print_note(f"no {what} found " + ("in any namespace" if namespace is None else f'in namespace "{namespace}"'))


def emit(output: OutputFormat, text: RenderableType, json_data: Any) -> None:
    if output is OutputFormat.JSON:
        sys.stdout.write(json_text(json_data) + "\n")
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


def now() -> datetime:
    return datetime.now(UTC)


# Flags shared by several commands

Output = Annotated[OutputFormat, typer.Option("--output", "-o", case_sensitive=False, help="Output format.")]
Selector = Annotated[
    str | None, typer.Option("--selector", "-l", help="Label selector, e.g. -l team=data,tier!=batch.", show_default=False)
]


def name_argument(what: str, check: Callable[[str], str]) -> Any:
    """The NAME argument of a one-object command, checked before any API call."""

    def parse(text: str) -> str:
        try:
            return check(text)
        except ArgumentError as error:
            raise typer.BadParameter(str(error)) from None

    return Annotated[str, typer.Argument(metavar="NAME", help=what, parser=parse, show_default=False)]


# The cluster flags


class Reach(Enum):
    """Which cluster flags a command takes."""

    CLUSTER = 1  # --kubeconfig, --context
    NAMESPACE = 2  # and -n
    NAMESPACES = 3  # and -A


_CLUSTER_FLAGS: list[tuple[Reach, str, Any, Any]] = [
    (Reach.CLUSTER, "kubeconfig", None, Annotated[str | None, typer.Option(
        "--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).", show_default=False,
        rich_help_panel="Cluster")]),
    (Reach.CLUSTER, "context", None, Annotated[str | None, typer.Option(
        "--context", help="Kubeconfig context to use.", show_default=False, rich_help_panel="Cluster")]),
    (Reach.NAMESPACE, "namespace", None, Annotated[str | None, typer.Option(
        "--namespace", "-n", help="Namespace (default: the context's namespace, else default).", show_default=False,
        rich_help_panel="Cluster")]),
    (Reach.NAMESPACES, "all_namespaces", False, Annotated[bool, typer.Option(
        "--all-namespaces", "-A", help="Across all namespaces (overrides -n).", rich_help_panel="Cluster")]),
]


@dataclass(frozen=True)
class Cluster:
    """The cluster flags as given; `connect` reads the kubeconfig only when a command needs the cluster."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False

    def connect(self) -> Kube:
        return connect(kubeconfig=self.kubeconfig, context=self.context)

    def namespace_in(self, kube: Kube) -> str:
        """-n, else the context's namespace."""
        return self.namespace or kube.default_namespace

    def scope_in(self, kube: Kube) -> str | None:
        """Where a list looks: None for every namespace (-A)."""
        return None if self.all_namespaces else self.namespace_in(kube)


def command(parent: typer.Typer, reach: Reach, **settings: Any) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Registers `function` on `parent` with the cluster flags of `reach` after its own; the function takes
    them as one `cluster: Cluster` parameter."""

    def register(function: Callable[..., int]) -> Callable[..., int]:
        own = [p for p in inspect.signature(function, eval_str=True).parameters.values() if p.name != "cluster"]
        flags = [(name, default, kind) for level, name, default, kind in _CLUSTER_FLAGS if level.value <= reach.value]

        def with_cluster(**given: Any) -> int:
            cluster = Cluster(**{name: given.pop(name) for name, _, _ in flags})
            return function(**given, cluster=cluster)

        with_cluster.__name__ = function.__name__
        with_cluster.__doc__ = function.__doc__
        with_cluster.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            own + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
                   for name, default, kind in flags])
        parent.command(**settings)(with_cluster)
        return function

    return register
