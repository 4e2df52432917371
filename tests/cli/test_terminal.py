"""Strings from the cluster never drive the terminal: every verb's output, with ESC/OSC/CSI sequences, BEL,
C1 controls, CR, backspace, newlines and bidi overrides in every field a tenant can write."""

from __future__ import annotations

import io
import json
import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flux_cli import app as shared
from flux_cli import main
from flux_cli.executions import render
from flux_cli.logs.commands import log_sink
from flux_cli.rendering import to_text
from flux_cli.schedules import render as render_schedules
from flux_cli.executions.actions import StatusView
from flux_cli.executions.family import Node, PodRef
from flux_cli.schedules.actions import UnscheduleResult, rows
from flux_cli.terminal import Guarded, LogWriter, json_text, printable, printable_lines
from rich.console import Console
from rich.text import Text

from tests.cli.test_kube import FakeApi, _no_ambient_kubeconfig, cli, fake, kubeconfig  # noqa: F401

pytestmark = pytest.mark.unit

OSC52 = "\x1b]52;c;cm0gLXJmIH4K\x07"  # writes the clipboard
TITLE = "\x1b]0;pwned\x1b\\"  # sets the window title (ST-terminated)
LINK = "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"  # a hidden hyperlink
CSI = "\x1b[2J\x1b[1A"  # clears the screen, moves the cursor up
C1 = "\x9b31m\x9d0;t\x9c"  # the same as single C1 characters
OVERWRITE = "\rPhase:  Succeeded\x08\x07\x7f\x00"
FORGED_LINE = "\nforged line\t"
BIDI = "\u202etxt.exe\u2066x\u2069\u200f\u061c\u2028\u2029"
EVIL = "ok" + OSC52 + TITLE + LINK + CSI + C1 + OVERWRITE + FORGED_LINE + BIDI + "\ud800end"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def unsafe(text: str) -> list[str]:
    """What a terminal may act on, other than the newline that ends a printed line."""
    bidi = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
    return sorted({repr(c) for c in text if c != "\n" and (unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")
                                                          or c in bidi)})


# --- the one function ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw, shown", [
    ("\x1b", "\\x1b"), ("\x07", "\\x07"), ("\x9b", "\\x9b"), ("\x85", "\\x85"), ("\x7f", "\\x7f"), ("\x00", "\\x00"),
    ("\r", "\\r"), ("\n", "\\n"), ("\t", "\\t"), ("\x08", "\\x08"), ("\u202e", "\\u202e"), ("\u2066", "\\u2066"),
    ("\u200f", "\\u200f"), ("\u2028", "\\u2028"), ("\ud800", "\\ud800"),
])
def test_each_unsafe_character_is_shown_as_an_escape(raw, shown):
    assert printable(f"a{raw}b") == f"a{shown}b"


def test_ordinary_text_is_left_alone():
    for text in ("plain", "Grüße, 日本語, émoji 👩‍👩‍👧 (a ZWJ sequence)", "[red]markup[/] stays text", "\\x1b typed"):
        assert printable(text) == text


def test_a_log_keeps_its_lines_and_tabs():
    assert printable_lines(f"a\tb\n{CSI}\r\n") == "a\tb\n\\x1b[2J\\x1b[1A\\r\n"


def test_json_output_is_valid_exact_and_safe():
    data = {"reason": EVIL, EVIL: [EVIL]}
    text = json_text(data)
    assert not unsafe(text)
    assert json.loads(text) == data


def test_the_net_catches_what_a_renderer_did_not_escape():
    shown = to_text(Text(f"raw {CSI}{C1}{BIDI}"))
    assert not unsafe(shown) and "\\x1b[2J" in shown and "\\u202e" in shown


def test_with_colour_the_only_escape_sequences_are_our_own_colours():
    console = Console(file=io.StringIO(), color_system="truecolor", width=300, markup=False, highlight=False)
    execution = {"metadata": {"name": "x", "namespace": "ns"},
                 "spec": {"cancel": {"reason": EVIL}}, "status": {"phase": "Cancelling"}}
    console.print(Guarded(render.list_table([execution], NOW, all_namespaces=True)))
    out = console.file.getvalue()
    colours = re.compile(r"\x1b\[[0-9;]*m")
    assert colours.search(out) and "\x1b" not in colours.sub("", out)
    assert "\\x1b]52;c;" in out


# --- every verb's renderer ----------------------------------------------------------------------

def evil_execution(name: str = "victim", phase: str = "Cancelled") -> dict:
    return {
        "metadata": {"name": name, "namespace": "team-a", "creationTimestamp": "2026-11-21T11:00:00Z",
                     "labels": {"workflows.flux.dev/schedule": EVIL},
                     "annotations": {"workflows.flux.dev/cancel": EVIL, "workflows.flux.dev/scheduled-at": EVIL}},
        "spec": {"workflow": "pkg.mod:main", "cancel": {"reason": EVIL}, "startAt": EVIL},
        "status": {
            "phase": phase, "message": EVIL, "podName": EVIL, "startedAt": EVIL,
            "conditions": [{"type": "Finished", "status": "True", "reason": EVIL, "message": EVIL,
                            "lastTransitionTime": EVIL}],
            "cancellation": {"reason": EVIL, "source": "spec", "outcome": EVIL, "requestedAt": EVIL,
                             "children": [{"name": EVIL, "phase": EVIL}]},
            "checkpoint": {"state": EVIL, "sequence": 1, "steps": [{"name": EVIL, "completedAt": EVIL}],
                           "data": {EVIL: EVIL}, "result": EVIL, "error": EVIL, "updatedAt": EVIL},
            "children": [{"name": EVIL, "phase": EVIL, "error": EVIL}],
            "unscheduleRequest": {"reason": EVIL}, "retries": 1, "nextRetryAt": EVIL,
        },
    }


def test_status_shows_every_field_escaped():
    view = StatusView(evil_execution(), [evil_execution("child", EVIL)])
    shown = to_text(render.status_text(view, NOW), width=400)
    assert not unsafe(shown)
    assert shown.count("\\x1b]52;c;cm0gLXJmIH4K\\x07") >= 15  # shown, not dropped
    assert "forged line" not in [line.strip() for line in shown.splitlines()]


def test_list_tree_cancel_and_schedules_show_every_field_escaped():
    victim = evil_execution()
    tree = Node(EVIL, EVIL, EVIL, EVIL, children=[Node(EVIL, EVIL, EVIL, EVIL)], pods=[PodRef(EVIL, EVIL)])
    from flux_cli.executions.cancelling import CancelResult
    results = [CancelResult(name=EVIL, namespace=EVIL, phase=EVIL, reason=EVIL, children=[EVIL, EVIL], message=EVIL,
                            accepted=True, cancelled_count=3, tree=tree, dry_run=True),
               CancelResult(name=EVIL, namespace=EVIL, error=True, message=EVIL)]
    schedule = {"metadata": {"name": EVIL, "namespace": EVIL, "creationTimestamp": "2026-11-21T11:00:00Z",
                             "annotations": {"workflows.flux.dev/unschedule-reason": EVIL}},
                "spec": {"schedule": EVIL, "timeZone": EVIL, "suspend": True},
                "status": {"lastScheduleTime": EVIL, "nextScheduleTime": EVIL, "active": [{"name": EVIL}]}}
    renderables = [render.list_table([victim], NOW, all_namespaces=True), render.execution_tree(tree, pods=True),
                   render.cancel_text(results), render_schedules.schedule_table(rows([schedule], NOW), True),
                   render_schedules.unschedule_text(UnscheduleResult(EVIL, EVIL, EVIL, [EVIL])),
                   main.version_text(EVIL, EVIL, EVIL, True)]
    for renderable in renderables:
        shown = to_text(renderable, width=400)
        assert not unsafe(shown), (renderable, shown)
        assert "\\x1b]52;c;" in shown


def test_errors_and_notes_are_one_escaped_line(capsys):
    shared.print_error(f"the server said: {EVIL}")
    shared.print_note(EVIL)
    err = capsys.readouterr().err
    assert not unsafe(err) and len(err.splitlines()) == 2


def test_a_log_is_escaped_on_a_terminal_and_exact_when_piped():
    written: list[bytes] = []
    evil = f"step 1\t{OSC52}{CSI}\rdone é\n".encode() + b"\xff\n"
    assert log_sink(written.append, raw=True, terminal=True) == written.append  # --raw
    piped = log_sink(written.append, raw=False, terminal=False)
    for i in range(len(evil)):
        piped(evil[i:i + 1])
    piped.close()
    assert b"".join(written) == evil, "piped: every line that is not a runner's JSON line exactly as written"
    written.clear()
    sink = log_sink(written.append, raw=False, terminal=True)
    for i in range(len(evil)):  # one byte at a time: sequences and characters split across chunks
        sink(evil[i:i + 1])
    sink.close()
    shown = b"".join(written).decode()
    assert shown == "step 1\t\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[2J\\x1b[1A\\rdone é\n\\xff\n"


def test_a_runners_json_lines_are_shown_plain_and_still_escaped_on_a_terminal():
    line = json.dumps({"time": "2026-12-04T09:00:00.000Z", "severity": "info", "logger": "flux.workflow",
                       "message": f"step {CSI}done", "namespace": "a", "execution": "e", "uid": "u"})
    log = f"{line}\nplain line\n{{\"not\": \"ours\"}}\n".encode()
    written: list[bytes] = []
    sink = log_sink(written.append, raw=False, terminal=True)
    sink(log[:17])
    sink(log[17:])
    sink.close()
    assert b"".join(written).decode() == ("2026-12-04T09:00:00.000Z INFO flux.workflow: step \\x1b[2J\\x1b[1Adone\n"
                                          'plain line\n{"not": "ours"}\n')
    written.clear()
    raw = log_sink(written.append, raw=True, terminal=False)
    raw(log)
    assert b"".join(written) == log


# --- every verb, end to end against a fake API server -------------------------------------------

def test_every_verb_prints_a_tenants_strings_escaped_and_json_exact(fake: FakeApi, kubeconfig: Path) -> None:
    fake.add("victim", status=evil_execution()["status"], spec={"cancel": {"reason": EVIL}})
    fake.add("running", phase="Running", status={"message": EVIL, "conditions": [
        {"type": "Started", "status": "True", "reason": EVIL, "message": EVIL}]})
    fake.add("kid", parent="running", phase="Running", spec={"cancel": {"reason": EVIL}})
    fake.add_pod("running-runner", "running")
    config = ["--kubeconfig", str(kubeconfig)]
    verbs = [["list"], ["list", "-A"], ["status", "victim"], ["status", "running"], ["tree", "running"],
             ["cancel", "victim"], ["cancel", "running", "--dry-run"], ["logs", "victim"]]
    for verb in verbs:
        result = cli(*verb, *config)
        assert "Traceback" not in result.output, result.output
        assert not unsafe(result.stdout) and not unsafe(result.stderr), (verb, result.stdout, result.stderr)
    assert "\\x1b]52;c;" in cli("list", *config).stdout
    for verb in (["list"], ["status", "victim"], ["tree", "running"], ["cancel", "victim"]):
        result = cli(*verb, "-o", "json", *config)
        assert not unsafe(result.stdout), verb
        assert _contains(json.loads(result.stdout), EVIL), verb  # valid JSON, the exact string


def _contains(data, value: str) -> bool:
    if isinstance(data, dict):
        return any(_contains(v, value) for v in data.values())
    if isinstance(data, list):
        return any(_contains(v, value) for v in data)
    return data == value
