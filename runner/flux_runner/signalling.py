"""`ctx.wait_for_signal`: the k-th wait for a name takes the k-th signal of that name in spec.signals.

Two steps record a wait, so a replay after a restart does what the first run did: `signal-<name>-<k>-wait`
(its deadline, set once) and `signal-<name>-<k>` (the data received and the signal's checked sender, or that
it timed out). A wait that would last longer than the durable threshold ends the pod (state Waiting with the
signal it waits for); the operator starts a new pod when the signal arrives or the timeout comes.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from flux_api import nesting
from flux_api.signals import MAX_SIGNALS, SIGNAL_NAME_PATTERN, SignalWait, nth, signal_step, wait_step
from flux_api.timefmt import format_time, parse_time, utcnow

from flux_runner.cancel import CancelSwitch
from flux_runner.client import ExecutionClient
from flux_runner.errors import SignalTimeout
from flux_runner.journal import Journal
from flux_runner.waits import DurableWait, seconds_of


def decoded(text: str | None) -> Any:
    """A signal's data: its JSON decoded; text that is not JSON is handed over as it is (nothing is lost)."""
    if text is None:
        return None
    try:
        return nesting.loads(text)
    except ValueError:
        return text


class SignalWaits:
    def __init__(self, api: ExecutionClient, journal: Journal, switch: CancelSwitch, claim: Callable[[str], None],
                 enforce: Callable[[dict[str, Any] | None], Awaitable[None]], durable_after: float,
                 poll_interval: float) -> None:
        self._api, self._journal, self._switch = api, journal, switch
        self._claim, self._enforce = claim, enforce
        self._durable_after, self._poll = durable_after, poll_interval
        self._counts: Counter[str] = Counter()  # waits per name: they name the steps, signal-<name>-<k>
        # Signals taken per name: a wait that timed out takes none, so the next wait takes the one it missed.
        self._taken: Counter[str] = Counter()

    async def wait(self, name: str, timeout: float | timedelta | None) -> tuple[Any, str | None]:
        """The signal's data and its sentBy (which admission checked is its writer's user name; None if unsigned)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"ctx.wait_for_signal needs a signal name, got {name!r}")
        if not re.fullmatch(SIGNAL_NAME_PATTERN, name):
            # spec.signals takes no other name, so such a wait could only end by its timeout
            raise ValueError(f"ctx.wait_for_signal: {name!r} is no signal name (letters, digits, '-', '_' and '.', "
                             "starting and ending with a letter or digit, at most 63)")
        seconds = seconds_of(timeout) if timeout is not None else None
        self._counts[name] += 1
        waits, occurrence = self._counts[name], self._taken[name] + 1
        step = signal_step(name, waits)
        deadline_step = wait_step(step)
        self._claim(deadline_step)
        self._claim(step)
        if self._journal.done(step):
            recorded = self._journal.result(step)
            if not (isinstance(recorded, dict) and recorded.get("timedOut")):
                self._taken[name] += 1
            return _outcome(recorded, name)
        if occurrence > MAX_SIGNALS:
            raise ValueError(f"ctx.wait_for_signal({name!r}) would take signal {name} number {occurrence}, which can "
                             f"never come: an execution takes at most {MAX_SIGNALS} signals (spec.signals)")
        until = self._deadline(deadline_step)
        if not self._journal.done(deadline_step):
            until = utcnow() + timedelta(seconds=seconds) if seconds is not None else None
            recorded = {"until": format_time(until) if until else None}
            await self._enforce(await self._journal.record_step(deadline_step, recorded))
        while True:
            execution = await self._api.poll()
            await self._switch.enforce(execution)
            signal = nth(((execution.get("spec") or {}).get("signals") or []), name, occurrence)
            if isinstance(signal, dict):
                data, sender = decoded(signal.get("data")), signal.get("sentBy")
                received = {"data": data, **({"sentBy": sender} if isinstance(sender, str) else {})}
                self._taken[name] += 1
                await self._enforce(await self._journal.record_step(step, received))
                return _outcome(received, name)
            left = (until - utcnow()).total_seconds() if until is not None else math.inf
            if left <= 0:
                await self._enforce(await self._journal.record_step(step, {"timedOut": True}))
                return _outcome({"timedOut": True}, name)
            if left > self._durable_after:
                raise DurableWait(until, f"waiting for signal {name}", SignalWait(name=name, occurrence=occurrence))
            await self._api.changed(execution, self._poll, left)

    def _deadline(self, step: str) -> datetime | None:
        recorded = self._journal.result(step)
        return parse_time(recorded.get("until")) if isinstance(recorded, dict) and recorded.get("until") else None


def _outcome(result: Any, name: str) -> tuple[Any, str | None]:
    if isinstance(result, dict) and result.get("timedOut"):
        raise SignalTimeout(f"no signal {name!r} arrived before the timeout")
    if not isinstance(result, dict):
        return None, None
    sender = result.get("sentBy")
    return result.get("data"), sender if isinstance(sender, str) else None
