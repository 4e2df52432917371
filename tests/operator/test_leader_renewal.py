"""The leader's renewal rhythm, apart from any API client: a failed renewal is retried soon."""

from __future__ import annotations

import threading
import time

import pytest
from flux_operator.leader import LeaderElector

pytestmark = pytest.mark.unit


class ScriptedElector(LeaderElector):
    """Answers each acquire-or-renew from a script: True won, False lost (e.g. a timeout)."""

    def __init__(self, outcomes: list[bool], **timing) -> None:
        super().__init__(api=None, namespace="ns", name="lease", identity="me", **timing)
        self.outcomes, self.attempts = outcomes, 0

    def try_acquire_or_renew(self) -> bool:
        self.attempts += 1
        return self.outcomes.pop(0) if self.outcomes else True

    def release(self) -> None:
        pass


def run_for(elector: LeaderElector, seconds: float) -> None:
    thread = threading.Thread(target=elector.run, daemon=True)
    thread.start()
    time.sleep(seconds)
    elector.stop()
    thread.join(timeout=2)


def test_a_failed_renewal_is_retried_at_once_not_a_whole_period_later() -> None:
    elector = ScriptedElector([True, False, True], duration=15, renew_deadline=12, retry=0.05, renew_every=0.6)
    run_for(elector, 1.0)
    # Won at 0, failed at 0.6, retried at ~0.65 and won. Waiting a whole period would retry at 1.2.
    assert elector.attempts >= 3
    assert elector.leading


def test_a_leader_that_cannot_renew_steps_down_within_the_renew_deadline() -> None:
    elector = ScriptedElector([True] + [False] * 100, duration=1.0, renew_deadline=0.3, retry=0.05, renew_every=0.1)
    run_for(elector, 0.7)
    assert not elector.leading
