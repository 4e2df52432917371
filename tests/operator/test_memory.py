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


def test_decoding_much_collects_the_cycles_kopf_leaves_behind(monkeypatch) -> None:
    """kopf's Body views refer back to the body: a cycle only the cyclic collector frees. After
    COLLECT_AFTER_BYTES of decoded JSON it runs at once, whatever the count of new containers."""
    collected = []
    monkeypatch.setattr(memory.gc, "collect", lambda *a: collected.append(a) or 0)
    monkeypatch.setattr(memory, "_uncollected", 0)
    memory.decoded(memory.COLLECT_AFTER_BYTES - 1)
    assert collected == []
    memory.decoded(1)
    assert len(collected) == 1 and memory._uncollected == 0


def test_the_trimmer_collects_and_returns_free_pages_after_large_decodes(monkeypatch) -> None:
    import threading
    calls: list[str] = []
    monkeypatch.setattr(memory.gc, "collect", lambda *a: calls.append("collect") or 0)
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append("trim") or True)
    monkeypatch.setattr(memory, "_decoded", 0)
    stopped = threading.Event()
    thread = memory.start_trimmer(stopped, every=0.01, after=1000)
    try:
        threading.Event().wait(0.05)
        assert calls == [], "nothing decoded: nothing to return"
        memory.decoded(1000)
        for _ in range(100):
            if calls:
                break
            threading.Event().wait(0.01)
        assert calls[:2] == ["collect", "trim"]
    finally:
        stopped.set()
        thread.join(1)


def test_the_trimmer_runs_a_few_more_times_after_the_bytes_that_woke_it_then_rests(monkeypatch) -> None:
    """What was decoded is freed later (kopf's idle workers): the runs after the wake-up return it."""
    import threading
    runs: list[str] = []
    monkeypatch.setattr(memory.gc, "collect", lambda *a: 0)
    monkeypatch.setattr(memory, "release_free_memory", lambda: runs.append("trim") or True)
    monkeypatch.setattr(memory, "_decoded", 0)
    stopped = threading.Event()
    memory.decoded(1000)
    thread = memory.start_trimmer(stopped, every=0.01, after=1000, trailing=2)
    try:
        threading.Event().wait(0.3)
        assert runs == ["trim"] * 3, "the wake-up run and two trailing runs, then none while nothing is decoded"
    finally:
        stopped.set()
        thread.join(1)


def test_free_pages_go_back_to_the_system_through_glibc() -> None:
    garbage = [bytearray(64 * 1024) for _ in range(200)]  # 12.5 MB from the heap (under the mmap threshold)
    del garbage
    assert memory.release_free_memory() is True, "glibc says it returned memory"


def test_bytes_kopf_never_saw_are_trimmed_but_never_collected(monkeypatch) -> None:
    """A checkpoint's progress is quieted at the boundary: refcounting freed it, a full collection is waste."""
    import threading
    calls: list[str] = []
    monkeypatch.setattr(memory.gc, "collect", lambda *a: calls.append("collect") or 0)
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append("trim") or True)
    monkeypatch.setattr(memory, "_decoded", 0)
    monkeypatch.setattr(memory, "_uncollected", 0)
    monkeypatch.setattr(memory, "_cyclic", False)
    memory.decoded(memory.COLLECT_AFTER_BYTES * 2, cyclic=False)
    assert calls == [], "no collection in the decoding thread"
    stopped = threading.Event()
    thread = memory.start_trimmer(stopped, every=0.01, after=1000, trailing=0)
    try:
        for _ in range(100):
            if calls:
                break
            threading.Event().wait(0.01)
        assert calls == ["trim"], "free pages handed back, no collection"
        memory.decoded(1000)  # and one that reached kopf: collected again
        for _ in range(100):
            if "collect" in calls:
                break
            threading.Event().wait(0.01)
        assert calls[1:3] == ["collect", "trim"]
    finally:
        stopped.set()
        thread.join(1)
