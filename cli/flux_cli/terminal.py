"""What the plugin prints from the cluster is shown, never obeyed by the terminal.

Anyone who may create or patch an Execution writes strings other people print: a cancel reason, a message,
an annotation. A terminal acts on control characters in them: ESC starts sequences that set the window
title, write the clipboard (OSC 52), hide links (OSC 8), clear the screen or move the cursor; C1 controls
(U+0080-U+009F) do the same on terminals that honour them; CR and backspace overwrite what was printed;
a newline forges a line; bidi overrides reorder what is shown. `printable` turns each of them into a
visible escape (`\\x1b`, `\\r`, `\\u202e`), so the text still says what it holds and does nothing.

JSON output keeps the exact strings: JSON escapes C0 controls itself, and `json_text` escapes the rest
(`\\u009b`, `\\u202e`) the same way, so the output stays valid JSON that decodes to the same values.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment

# Besides C0 controls: DEL and the C1 controls (the rest of Unicode category Cc), lone surrogates (Cs, which
# cannot even be encoded), the line and paragraph separators (Zl, Zp), and the bidi embeddings, overrides,
# isolates and marks.
_OTHERS = "\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
UNSAFE = re.compile(f"[\x00-\x1f{_OTHERS}]")
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHERS}]")
_UNSAFE_BUT_NEWLINE_AND_TAB = re.compile(f"[\x00-\x08\x0b-\x1f{_OTHERS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any) -> str:
    """A value from the cluster as text that is safe to print on one line: every control and bidi
    character shown as an escape."""
    text = value if isinstance(value, str) else str(value)
    return UNSAFE.sub(_escape, text)


def printable_lines(text: str) -> str:
    """The same, keeping newlines and tabs: for text made of lines (a workflow's log)."""
    return _UNSAFE_BUT_NEWLINE_AND_TAB.sub(_escape, text)


def json_text(data: Any) -> str:
    """Indented JSON with the exact values, safe to print: json escapes C0 controls in strings; the other
    unsafe characters become \\uXXXX escapes (raw newlines in the output are json's own indentation)."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    return _UNSAFE_BUT_NEWLINE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class Guarded:
    """A renderable whose printed text is escaped once more, as a net under `printable`: whatever a
    renderer forgot to escape is shown escaped too (newlines excepted: rich's own line breaks)."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for segment in console.render(self.renderable, options):
            if segment.control or not _UNSAFE_BUT_NEWLINE.search(segment.text):
                yield segment
            else:
                yield Segment(_UNSAFE_BUT_NEWLINE.sub(_escape, segment.text), segment.style)


class LogWriter:
    """A workflow's log on the way to a terminal: decoded as UTF-8 across chunk boundaries (bytes that are
    not UTF-8 shown as \\xNN), control characters escaped; newlines and tabs kept."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")

    def __call__(self, chunk: bytes) -> None:
        text = self.decoder.decode(chunk)
        if text:
            self.write(printable_lines(text).encode("utf-8"))

    def close(self) -> None:
        rest = self.decoder.decode(b"", final=True)
        if rest:
            self.write(printable_lines(rest).encode("utf-8"))
