"""The process node signals a container's own process, never pid 0: os.kill(0, ...) is the caller's whole process
group, which is the local cluster (a pid1 shim that died before saying its pid once stopped a CI run)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

# Run in a session of its own, so that if the guard is ever lost only this child's group is signalled.
CHECK = """
import signal
from localcluster import podrunner
got = []
signal.signal(signal.SIGUSR1, lambda *_: got.append(1))
podrunner._signal(0, signal.SIGUSR1)
print(len(got))
"""


def test_a_container_without_a_pid_is_never_signalled_as_pid_0():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60,
                          start_new_session=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0", "pid 0 was signalled: the whole process group got it"
