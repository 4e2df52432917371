"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def token(tmp_path: Path) -> Path:
    """A service-account token file, as the runner reads it in a pod."""
    path = tmp_path / "token"
    path.write_text("token-1\n")
    return path


@pytest.fixture(autouse=True)
def _asyncio_wait_for_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` makes asyncio.wait_for cancel-safe for the process (flux_runner.waitfor); each test gets it back."""
    import asyncio.tasks

    monkeypatch.setattr(asyncio, "wait_for", asyncio.wait_for)
    monkeypatch.setattr(asyncio.tasks, "wait_for", asyncio.tasks.wait_for)


@pytest.fixture(autouse=True)
def _asyncio_timeout_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` installs flux_runner.deadline as asyncio.timeout where the interpreter's is wrong; each test gets
    the one it started with back."""
    import asyncio.timeouts

    for module in (asyncio, asyncio.timeouts):
        monkeypatch.setattr(module, "timeout", module.timeout)
        monkeypatch.setattr(module, "timeout_at", module.timeout_at)
