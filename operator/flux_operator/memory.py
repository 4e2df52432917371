"""Process-wide memory settings, applied once before any thread starts, and the return of freed memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """glibc gives each thread that allocates its own heap arena (up to 8 per core); with the workers,
    the watch loop and the endpoints that fragments the heap, and RSS grows with no gain in speed:
    two arenas are enough for threads that mostly wait on the network. No-op off glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


# An object padded to the API server's limit (~1.5 MB) decodes into megabytes of strings, and they do not go
# away with the last reference we hold: kopf wraps every object it delivers in a Body whose views refer back to
# it, a reference cycle only the cyclic collector frees, and it runs by counts of new containers, not bytes
# (a listing of 30 such objects stayed in memory, 47 MB of it, until then). Then glibc keeps the freed heap.
# So after that much has been decoded, the trimmer collects the cycles and hands the free pages back.
TRIM_AFTER_BYTES = 4 * 1024 * 1024
TRIM_EVERY_SECONDS = 5.0
# And at once, in whichever thread decodes, after this much: a burst (a cold start's listing) holds at most
# this much garbage besides what it is decoding.
COLLECT_AFTER_BYTES = 16 * 1024 * 1024
_decoded = 0  # bytes of JSON decoded since the trimmer's last run; plain ints: a lost update only delays it
_uncollected = 0
_cyclic = False  # some of them went on to kopf (its Body cycles): the trimmer collects, not only trims


def decoded(size: int, cyclic: bool = True) -> None:
    """Called by the decoders with the size of each answer or watch line they decoded. `cyclic` False: what was
    decoded never reached kopf (a checkpoint's progress, boundary.py), so refcounting freed it already and
    only the free pages are to be handed back: a full collection (tens of ms) would be paid for nothing."""
    global _decoded, _uncollected, _cyclic
    _decoded += size
    if not cyclic:
        return
    _cyclic = True
    _uncollected += size
    if _uncollected >= COLLECT_AFTER_BYTES:
        _uncollected = 0
        gc.collect()


def release_free_memory() -> bool:
    """Returns the heap's free pages to the system (glibc's malloc_trim); False where there is none."""
    name = ctypes.util.find_library("c")
    try:
        return bool(name and ctypes.CDLL(name).malloc_trim(0))
    except (OSError, AttributeError):
        return False


# What was decoded is often freed later than the trimmer's next run (kopf's workers hold an object's last event
# until they idle out): so it runs a few more times after the bytes that woke it, even if none arrive.
TRAILING_RUNS = 3


def start_trimmer(stopped: threading.Event, every: float = TRIM_EVERY_SECONDS,
                  after: int = TRIM_AFTER_BYTES, trailing: int = TRAILING_RUNS) -> threading.Thread:
    def run() -> None:
        global _decoded, _cyclic
        owed, collecting = 0, False
        while not stopped.wait(every):
            if _decoded >= after:
                _decoded = 0
                owed = trailing + 1
                collecting, _cyclic = _cyclic, False
            if owed:
                owed -= 1
                if collecting:
                    gc.collect()
                release_free_memory()

    thread = threading.Thread(target=run, name="memory-trimmer", daemon=True)
    thread.start()
    return thread
