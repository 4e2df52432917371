"""/metrics over HTTPS, for callers the API server vouches for (metrics_auth.MetricsAccess).

The certificate is the one mounted at --metrics-cert-file/--metrics-key-file (cert-manager, or any Secret;
re-read when the files change), else a self-signed one made at start-up. It is made in a child process:
the crypto library costs about 11 MB of memory, which the operator itself then never carries.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from flux_operator.httpserve import CLIENT_TIMEOUT, BoundedServer
from flux_operator.metrics_auth import MetricsAccess, Verdict

log = logging.getLogger("flux_operator")

# A slow or silent client holds one thread (of at most MAX_CONNECTIONS) for at most CLIENT_TIMEOUT, the TLS
# handshake included.
CERT_CHECK_SECONDS = 60.0

_SELF_SIGNED = """
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
cert_path, key_path, *hosts = sys.argv[1:]
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flux-operator-metrics")])
now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
sans = [x509.DNSName(h) for h in hosts] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256()))
with open(key_path, "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
with open(cert_path, "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
"""


def server_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def self_signed_context() -> ssl.SSLContext:
    """A fresh key and a self-signed certificate for this host; the files are gone once loaded."""
    with tempfile.TemporaryDirectory(prefix="flux-metrics-") as tmp:  # mode 0700
        cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        subprocess.run([sys.executable, "-c", _SELF_SIGNED, str(cert), str(key), socket.gethostname(), "localhost"],
                       check=True, timeout=60, capture_output=True)
        return server_context(cert, key)


class CertificateFiles:
    """The context for mounted files, renewed when they change (a rotated Secret)."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self._stamp = self._mtimes()
        self._checked = time.monotonic()
        self.context = server_context(cert_file, key_file)

    def current(self) -> ssl.SSLContext:
        """The context for the next handshake; the files are looked at once a minute at most."""
        now = time.monotonic()
        if now - self._checked >= CERT_CHECK_SECONDS:
            self._checked = now
            self.refresh()
        return self.context

    def _mtimes(self) -> tuple[float, float]:
        return os.stat(self.cert_file).st_mtime, os.stat(self.key_file).st_mtime

    def refresh(self) -> None:
        try:
            stamp = self._mtimes()
            if stamp != self._stamp:
                self.context, self._stamp = server_context(self.cert_file, self.key_file), stamp
                log.info("/metrics: reloaded the certificate from %s", self.cert_file)
        except (OSError, ssl.SSLError) as err:  # mid-rotation: keep the old one, look again later
            log.warning("/metrics: cannot reload the certificate: %s", err)


class _Server(BoundedServer):
    def __init__(self, address: tuple[str, int], handler: Any, tls: Callable[[], ssl.SSLContext]) -> None:
        self.tls = tls
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # In the request's own thread: a slow handshake holds up no one else.
        request.settimeout(CLIENT_TIMEOUT)
        conn = self.tls().wrap_socket(request, server_side=True)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a failed handshake or a dropped client is the client's problem, not a traceback in our log


def serve(port: int, registry: CollectorRegistry, access: MetricsAccess, tls: Callable[[], ssl.SSLContext],
          host: str = "0.0.0.0") -> BoundedServer:
    class Handler(BaseHTTPRequestHandler):
        timeout = CLIENT_TIMEOUT

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path.split("?")[0] != "/metrics":
                self._answer(404, b"not found\n")
                return
            verdict, why = access.check(self.headers.get("Authorization"), str(self.client_address[0]))
            if verdict is not Verdict.ALLOWED:
                extra = {"WWW-Authenticate": 'Bearer realm="flux-operator"'} \
                    if verdict is Verdict.UNAUTHENTICATED else {}
                self._answer(verdict.value, f"{why}\n".encode(), extra)
                return
            # OpenMetrics when the scraper asks for it: that format carries the exemplars (trace ids).
            encode, content_type = choose_encoder(self.headers.get("Accept") or "")
            self._answer(200, encode(registry), {"Content-Type": content_type})

        def _answer(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for name, value in {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass  # a scrape every few seconds would drown the log

    server = _Server((host, port), Handler, tls)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
