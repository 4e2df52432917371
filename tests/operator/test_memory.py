"""The malloc arena limit: set through glibc, a no-op (not an error) where there is no mallopt."""

from __future__ import annotations

import ctypes.util
import platform

import pytest
from flux_operator import memory

pytestmark = pytest.mark.unit


def test_the_arena_limit_is_accepted_by_glibc() -> None:
    assert platform.libc_ver()[0] == "glibc"  # the images and these machines are Debian
    assert memory.limit_malloc_arenas() is True


def test_no_c_library_means_no_limit_and_no_error(monkeypatch) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert memory.limit_malloc_arenas() is False
