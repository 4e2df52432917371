"""A tenant's strings reach other people's terminals through `kubectl flux`: a cancel reason, a Schedule's
unschedule reason. Run by someone else (here the admin), no verb may pass a control character, an escape
sequence or a bidi override through to the terminal; JSON output stays valid JSON with the exact value."""

from __future__ import annotations

import json
import subprocess
import unicodedata

import pytest
from fluxtest import manifest, schedule

# OSC 52 writes the clipboard, OSC 0 the window title, OSC 8 a hidden hyperlink; CSI clears the screen and
# moves the cursor; C1 controls (single bytes 0x80-0x9f) do the same on terminals that honour them; CR and
# backspace overwrite what was printed; a newline forges a line; bidi overrides reverse what is shown.
EVIL = ("ok\x1b]52;c;cm0gLXJmIH4K\x07 \x1b]0;pwned\x1b\\ \x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"
        "\x1b[2J\x1b[1A\x9b31m\x9d0;t\x9c\rPhase:  Succeeded\x08\x07\x7f\nforged line\t\u202etxt.exe\u2066x\u2069"
        "\u2028end")
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u2028\u2029")


def unsafe(text: str) -> list[str]:
    """Characters a terminal may act on, other than the newline that ends each printed line."""
    return sorted({repr(c) for c in text if (unicodedata.category(c) == "Cc" and c != "\n") or c in BIDI})


def strings(data) -> list[str]:
    if isinstance(data, dict):
        return [s for value in data.values() for s in strings(value)]
    if isinstance(data, list):
        return [s for value in data for s in strings(value)]
    return [data] if isinstance(data, str) else []


@pytest.fixture
def flux(kube_env, tenant):
    """`kubectl flux` as the admin, in the tenant's namespace, output piped (as in a script or `| less -R`)."""
    env = {**{k: v for k, v in kube_env.items() if k != "COLUMNS"}, "NO_COLOR": "1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl-flux", *args, "-n", tenant.namespace], env=env, capture_output=True,
                              text=True, timeout=60, errors="surrogateescape")
    return run


@pytest.mark.threat("terminal-escapes", "a tenant's cancel reason and unschedule reason carry ESC/OSC/CSI sequences, "
                    "C1 controls, CR, BEL and bidi overrides", "kubectl flux (list, status, tree, cancel, logs, "
                    "schedule list) run by someone else prints them escaped; -o json is valid and exact")
@pytest.mark.timeout(180)
def test_escape_sequences_in_cluster_strings_never_reach_the_terminal(tenant, operators, fx, flux, result):
    tenant.fx.create(manifest("victim", "flux_examples.quick:main", startAt="2099-01-01T00:00:00Z"))
    tenant.fx.cancel("victim", EVIL)
    tenant.schedules.create(schedule("nightly", "flux_examples.quick:main", cron="0 3 * * *", suspend=True))
    tenant.schedules.patch("nightly", {"metadata": {"annotations": {"workflows.flux.dev/unschedule-reason": EVIL}}})
    operators.start()
    fx.wait_phase("victim", "Cancelled", timeout=60)  # the operator copied the reason into status too
    verbs = [("list",), ("list", "-A"), ("status", "victim"), ("tree", "victim"), ("cancel", "victim"),
             ("cancel", "victim", "--dry-run"), ("logs", "victim"), ("schedule", "list")]
    leaks = {}
    for verb in verbs:
        done = flux(*verb)
        assert "Traceback" not in done.stderr, done.stderr
        found = unsafe(done.stdout + done.stderr)
        if found:
            leaks[" ".join(verb)] = found
    shown = flux("status", "victim").stdout
    for verb in [("list",), ("status", "victim"), ("tree", "victim"), ("cancel", "victim"), ("schedule", "list")]:
        out = flux(*verb, "-o", "json")
        assert not unsafe(out.stdout), (verb, unsafe(out.stdout))
        assert EVIL in strings(json.loads(out.stdout)), (verb, out.stdout[:600])  # valid JSON, the exact value
    result.figure(f"{len(verbs)} verbs, {len(leaks)} leaked; status shows the reason as "
                  f"{next((ln.strip() for ln in shown.splitlines() if 'Reason' in ln), '')[:90]!r}")
    assert not leaks, leaks
    assert "\\x1b]52;c;" in shown and "\\u202e" in shown  # escaped, visible, not dropped

