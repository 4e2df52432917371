"""What every renderer builds on: kubectl-like tables, aligned fields, cells. No I/O here.

User-controlled strings (names, reasons, messages) are always wrapped in Text, never parsed as
rich markup, so a reason like "[red]x" prints as typed; and every string from the cluster passes through
terminal.printable on its way in (`cell`, `fields`), so its control characters print as escapes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from flux_api import Phase
from flux_api.timefmt import parse_time
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from flux_cli.durations import age
from flux_cli.objects import GONE
from flux_cli.terminal import Guarded, printable

NONE = "<none>"
_PHASE_STYLES = {
    Phase.PENDING: "cyan",
    Phase.RUNNING: "blue",
    Phase.CANCELLING: "yellow",
    Phase.SUSPENDING: "yellow",
    Phase.SUSPENDED: "dim cyan",
    Phase.WAITING: "cyan",
    Phase.CANCELLED: "magenta",
    Phase.SUCCEEDED: "green",
    Phase.FAILED: "red",
    GONE: "dim",
}


def kubectl_table(*columns: str, wrap: Sequence[str] = ()) -> Table:
    """kubectl's look: no borders, upper-case headers, three spaces between columns."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 1, 0, 2))
    for column in columns:
        table.add_column(column, no_wrap=column not in wrap)
    return table


def listing(all_namespaces: bool, *columns: str, wrap: Sequence[str] = ()) -> Table:
    """kubectl get's table: with -A, a NAMESPACE column first."""
    return kubectl_table(*(["NAMESPACE"] if all_namespaces else []), *columns, wrap=wrap)


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


Field = tuple[str, Text | str | int | list[str] | None]


def fields(rows: Iterable[Field]) -> Text:
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


class Indented:
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


def when(value: Any, now: datetime) -> str | None:
    """A timestamp as the server wrote it, with how long ago; an unparsable one as it is."""
    moment = parse_time(value)
    if moment is None:
        return str(value) if value else None
    return f"{value} ({age(moment, now)} ago)"
