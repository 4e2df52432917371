"""This checkout's operator as a local process against the local cluster: the one runner that tests, the
fault and hostile suites and the benchmarks start operators with."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from localcluster.probes import wait_for
from localcluster.procs import free_port, stop

from fluxtest import identity

# What the suite's operators take unless told otherwise: a short Lease, so failover tests are quick.
TEST_ARGS = ("--lease-seconds", "5")


def operator_command() -> list[str]:
    """$FLUX_TEST_OPERATOR (e.g. .venv-operator/bin/flux-operator: the operator without the dev packages,
    as its image has it), else this interpreter's flux_operator."""
    command = os.environ.get("FLUX_TEST_OPERATOR", "").split()
    return command or [sys.executable, "-m", "flux_operator"]


def insecure_tls() -> ssl.SSLContext:
    """For the operator's self-signed /metrics certificate, as a scrape config with insecure_skip_verify."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def healthy(port: int) -> bool:
    """Whether an operator's /healthz on loopback `port` answers 200 now (a chart's pod or a local process)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


class OperatorProcess:
    """The operator as a local process against the cluster; its own metrics and health ports on loopback.
    `command` defaults to operator_command(), `base_args` (given on every start) to TEST_ARGS."""

    def __init__(self, env: dict[str, str], logs: Path, command: list[str] | None = None,
                 base_args: tuple[str, ...] = TEST_ARGS, log_path: Path | None = None,
                 serve_metrics: bool = True) -> None:
        self.env, self.logs = env, logs
        self.command, self.base_args, self.serve_metrics = command, base_args, serve_metrics
        self.metrics_port = self.health_port = 0
        self.metrics_secure = True
        self.proc: subprocess.Popen | None = None
        self.log_path = log_path or logs / f"operator-{os.getpid()}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the operator was never started"
        return self.proc.pid

    def health(self) -> tuple[int, dict]:
        """/healthz as (HTTP status, JSON body); (0, {}) while nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")
        except OSError:
            return 0, {}

    def start(self, *extra: str, wait_healthy: bool = True, timeout: float = 60, interval: float = 0.1,
              error: type[Exception] = AssertionError) -> None:
        self.metrics_port, self.health_port = free_port() if self.serve_metrics else 0, free_port()
        self.metrics_secure = "--no-metrics-secure" not in extra
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*(self.command or operator_command()), "--metrics-port", str(self.metrics_port),
                 "--health-port", str(self.health_port), *self.base_args, *extra],
                env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if wait_healthy:
            wait_for(lambda: self._healthy(error), timeout=timeout, interval=interval, what="operator liveness",
                     error=error)

    def _healthy(self, error: type[Exception] = AssertionError) -> bool:
        if healthy(self.health_port):
            return True
        if self.proc.poll() is not None:
            raise error(f"operator exited with {self.proc.returncode}; {self.log_path}: "
                        f"{self.log_path.read_text()[-3000:]}")
        return False

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
            self.proc.wait()
        stop(self.proc, timeout=15)

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait()

    def metrics(self, token: str | None = None) -> str:
        """/metrics as Prometheus would scrape it: over HTTPS with the scraper's token (fluxtest.identity)."""
        if not self.metrics_secure:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
                return r.read().decode()
        if token is None:
            token_file = self.env.get(identity.SCRAPER_TOKEN_ENV)
            assert token_file, "no scraper token in this operator's environment (use the operator_env fixture)"
            token = Path(token_file).read_text()
        request = urllib.request.Request(f"https://127.0.0.1:{self.metrics_port}/metrics",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, context=insecure_tls(), timeout=10) as r:
            return r.read().decode()

    def samples(self, token: str | None = None) -> dict[str, float]:
        """Every sample of /metrics by its name as printed, labels and all: 'flux_leader',
        'flux_reconcile_errors_total{kind="Poison"}'."""
        found = {}
        for line in self.metrics(token).splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                try:
                    found[key] = float(value)
                except ValueError:
                    pass
        return found


# The head of a crash wrapper: the operator with KubeApi's writes wrapped, each one logged ("flux-test: wrote
# <what>"), and the process dying (as a SIGKILL leaves it: no cleanup, no Lease release) right after the one
# named by FLUX_TEST_CRASH_AFTER reached the API server. crash_wrapper() appends the writes to wrap.
_CRASH_HEAD = r'''
import os
import sys

from flux_operator import kube, main

POINT = os.environ["FLUX_TEST_CRASH_AFTER"]


def wrap(write, describe):
    def wrapped(self, *args, **kwargs):
        result = write(self, *args, **kwargs)
        what = describe(*args, **kwargs)
        print(f"flux-test: wrote {what}", file=sys.stderr, flush=True)
        if what == POINT and %s:
            print(f"flux-test: crashing after {what}", file=sys.stderr, flush=True)
            os._exit(137)
        return result
    return wrapped


api = kube.KubeApi
'''


def crash_wrapper(wraps: str, only_if_made: bool = False) -> str:
    """A `python -c` script: _CRASH_HEAD, `wraps` (lines `api.<write> = wrap(api.<write>, <describe>)`), then
    the operator's main. `only_if_made`: no crash after a write that returned None (made nothing)."""
    return _CRASH_HEAD % ("result is not None" if only_if_made else "True") + wraps.strip() + \
        "\nmain.main(sys.argv[1:])\n"


class CrashingOperator(OperatorProcess):
    """OperatorProcess's flags, run through `wrapper` (crash_wrapper()), dying after the write `crash_after`."""

    wrapper = ""
    crash_after = ""

    def start(self, *extra: str, **kwargs) -> None:
        self.command = [sys.executable, "-c", self.wrapper]
        self.env = {**self.env, "FLUX_TEST_CRASH_AFTER": self.crash_after}
        super().start(*extra, **kwargs)
