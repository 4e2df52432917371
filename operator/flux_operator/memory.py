"""Process-wide memory settings, applied once before any thread starts."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

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
