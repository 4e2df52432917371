"""The real `flux-runner` process against a local HTTPS fake API server: TLS, token, signals, exit codes.

Without the SIGTERM handler the process dies of the signal (exit -15) and nothing is recorded.
"""

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flux_runner.testing import FakeExecutionApi, new_execution
from localcluster.pki import make_pki

pytestmark = pytest.mark.unit

RUNNER = Path(sys.executable).with_name("flux-runner")


class TlsServer(ThreadingHTTPServer):
    def __init__(self, address, handler, pki: Path) -> None:
        super().__init__(address, handler)
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")

    def finish_request(self, request, client_address) -> None:
        # The handshake runs in the connection's own thread, as in a real API server: a client
        # cancelled mid-handshake (SIGTERM!) must not stall accept() for every later request.
        request.settimeout(10)
        with self.tls.wrap_socket(request, server_side=True) as connection:
            self.RequestHandlerClass(connection, client_address, self)

    def handle_error(self, request, client_address) -> None:
        pass  # dropped connections are expected when the runner is cancelled mid-request


class Served:
    """A FakeExecutionApi behind HTTPS on 127.0.0.1, as the runner finds the API server in a pod."""

    def __init__(self, api: FakeExecutionApi, pki: Path) -> None:
        self.api = api
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    path, _, query = self.path.partition("?")
                    code, answer = api.handle(self.command, path, dict(self.headers), body, query)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

        self.server = TlsServer(("127.0.0.1", 0), Handler, pki)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Served":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    make_pki(directory)
    return directory


@pytest.fixture
def sa_dir(tmp_path: Path, pki: Path) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("runner-token")
    (directory / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
    return directory


def start_env(served: Served, sa_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FLUX_EXECUTION_NAME": "demo", "FLUX_EXECUTION_NAMESPACE": "default", "FLUX_POD_NAME": "demo-pod",
        "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(served.port),
        "FLUX_SA_DIR": str(sa_dir),
    }


def start_runner(served: Served, sa_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([str(RUNNER)], env=start_env(served, sa_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the runner")
        time.sleep(0.02)


def finish(runner: subprocess.Popen, timeout: float) -> str:
    """Waits for the runner; on a hang, kills it and fails with its log."""
    try:
        return runner.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        runner.kill()
        pytest.fail(f"flux-runner did not exit within {timeout}s; its log:\n{runner.communicate()[1]}")


@pytest.fixture
def served(pki: Path) -> Iterator[Served]:
    with Served(FakeExecutionApi(new_execution("demo", "flux_examples.quick:main", {"name": "pod"})), pki) as s:
        yield s


def test_the_runner_process_runs_a_workflow_over_tls(served, sa_dir):
    runner = start_runner(served, sa_dir)
    stderr = finish(runner, timeout=60)
    assert runner.returncode == 0, stderr
    assert served.api.checkpoint["state"] == "Succeeded"
    assert served.api.checkpoint["result"]["greeting"] == "hello, pod"
    assert {r.headers["authorization"] for r in served.api.requests} == {"Bearer runner-token"}
    assert "finished: Succeeded" in stderr


def test_sigterm_to_the_runner_process_ends_in_a_graceful_cancel(served, sa_dir):
    served.api.execution["spec"].update(workflow="flux_examples.longrun:main",
                                        input={"steps": 500, "stepSeconds": 0.05})
    runner = start_runner(served, sa_dir)
    wait_for(lambda: len((served.api.checkpoint or {}).get("steps", [])) >= 2)
    runner.send_signal(signal.SIGTERM)
    stderr = finish(runner, timeout=20)
    assert runner.returncode == 0, f"exit {runner.returncode}: {stderr}"
    final = served.api.checkpoint
    assert final["state"] == "Cancelled"
    assert final["data"]["cleanedUp"] is True
    # The SIGTERM may land while a step's checkpoint is in flight: recorded, yet unseen by the workflow.
    assert 2 <= len(final["steps"]) <= final["data"]["completedSteps"] + 1 < 500
    assert "received SIGTERM" in stderr


def test_an_api_error_makes_the_process_exit_non_zero_for_a_restart(served, sa_dir):
    served.api.failures = [403]  # not retried, so quick; 5xx take the same exit after backoff
    runner = start_runner(served, sa_dir)
    stderr = finish(runner, timeout=60)
    assert runner.returncode == 1
    assert "exiting for a restart" in stderr and "HTTP 403" in stderr
    assert served.api.checkpoint is None


def test_a_thread_the_workflow_left_running_does_not_hold_the_process_open(served, sa_dir, tmp_path):
    (tmp_path / "lingering.py").write_text(
        "import threading, time\n"
        "async def main(ctx, input):\n"
        "    threading.Thread(target=time.sleep, args=(600,)).start()  # not a daemon: joined at exit\n"
        "    return 'done'\n")
    served.api.execution["spec"].update(workflow="lingering:main", input={})
    runner = subprocess.Popen([str(RUNNER)], env={**start_env(served, sa_dir), "PYTHONPATH": str(tmp_path)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr = finish(runner, timeout=30)
    assert runner.returncode == 0, stderr
    assert served.api.checkpoint["state"] == "Succeeded" and served.api.checkpoint["result"] == "done"
