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
