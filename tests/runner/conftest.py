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
