"""The pod's termination message: `kubectl describe pod` shows why the runner stopped."""

from __future__ import annotations

import logging
import os
from pathlib import Path

TERMINATION_LOG = Path("/dev/termination-log")
MAX_MESSAGE = 4096  # kubelet truncates longer messages anyway

log = logging.getLogger("flux.runner")


def write_termination_message(line: str, path: Path = TERMINATION_LOG) -> None:
    text = " ".join(line.split())[:MAX_MESSAGE - 1] + "\n"
    try:
        # No O_CREAT: kubelet provides the file; outside a pod /dev is not ours to write.
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    except OSError as exc:
        log.debug("no termination message written to %s: %s", path, exc.strerror)
        return
    try:
        os.write(fd, text.encode())
    except OSError as exc:
        log.debug("termination message to %s failed: %s", path, exc.strerror)
    finally:
        os.close(fd)
