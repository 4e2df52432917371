"""Where the API server is and who we are to it: in-cluster service account, or a kubeconfig.

One `ClientConfig` is loaded at start-up; the operator's own client (kube.py) and kopf's login
handler are both built from it, so they always reach the same server with the same identity.
Only what this operator needs is supported: CA, client certificates, bearer tokens (inline or
from a file). exec plugins and auth providers are refused with a clear error, not half-handled.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Projected tokens rotate (the kubelet rewrites the file); client-go re-reads the file every minute.
TOKEN_REREAD_SECONDS = 60.0


class ConfigError(Exception):
    """No usable client configuration: the message says what is missing or unsupported."""


class TokenFile:
    """A bearer token read from a file, re-read at most every `period` seconds."""

    def __init__(self, path: Path, period: float = TOKEN_REREAD_SECONDS, clock=time.monotonic) -> None:
        self.path, self.period, self._clock = path, period, clock
        self._token, self._read_at = "", float("-inf")
        self._lock = threading.Lock()

    def get(self, fresh: bool = False) -> str:
        with self._lock:
            if fresh or self._clock() - self._read_at >= self.period:
                try:
                    token = self.path.read_text().strip()
                except OSError as err:
                    # A token we already have is still better than none while the file is being replaced.
                    if not self._token:
                        raise ConfigError(f"cannot read the token file {self.path}: {err.strerror}") from err
                else:
                    self._token, self._read_at = token, self._clock()
            return self._token


@dataclass
class ClientConfig:
    server: str  # e.g. https://127.0.0.1:6443, no trailing slash
    ca_file: str | None = None
    ca_data: str | None = None  # PEM text
    cert_file: str | None = None
    cert_data: str | None = None  # PEM text
    key_file: str | None = None
    key_data: str | None = None  # PEM text
    token: str | None = None
    token_file: TokenFile | None = None
    insecure: bool = False
    namespace: str | None = None  # the service account's namespace in a cluster; kopf's default for events
    source: str = ""  # where it came from, for log lines
    _ssl: ssl.SSLContext | None = field(default=None, repr=False)

    def bearer_token(self, fresh: bool = False) -> str | None:
        # A token file wins over an inline token, as in client-go.
        return self.token_file.get(fresh) if self.token_file else self.token

    def ssl_context(self) -> ssl.SSLContext:
        """Built once: the CA and client certificate do not change while we run."""
        if self._ssl is None:
            self._ssl = _ssl_context(self)
        return self._ssl


def load_client_config(env: Mapping[str, str] = os.environ, sa_dir: Path = SA_DIR) -> ClientConfig:
    """In a pod: its service account. Elsewhere: the kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    if env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT") and (sa_dir / "token").exists():
        return in_cluster(env, sa_dir)
    return from_kubeconfig(kubeconfig_path(env))


def in_cluster(env: Mapping[str, str], sa_dir: Path = SA_DIR) -> ClientConfig:
    host = env["KUBERNETES_SERVICE_HOST"]
    host = f"[{host}]" if ":" in host else host  # an IPv6 service address needs brackets in a URL
    try:
        namespace = (sa_dir / "namespace").read_text().strip() or None
    except OSError:
        namespace = None
    ca = sa_dir / "ca.crt"
    return ClientConfig(server=f"https://{host}:{env['KUBERNETES_SERVICE_PORT']}",
                        ca_file=str(ca) if ca.exists() else None, token_file=TokenFile(sa_dir / "token"),
                        namespace=namespace, source="in-cluster service account")


def kubeconfig_path(env: Mapping[str, str]) -> Path:
    # KUBECONFIG may list several files that kubectl merges; we read only the first one. The
    # operator is run with one kubeconfig (tests, bench, by hand), never a merged set.
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return Path(listed[0]).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".kube" / "config"


def from_kubeconfig(path: Path, context: str | None = None) -> ClientConfig:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"no in-cluster service account and cannot read kubeconfig {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"kubeconfig {path} is not valid YAML: {err}") from err
    return parse_kubeconfig(doc, path.parent, context, source=str(path))


def _named(doc: dict[str, Any], section: str, name: str, what: str) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(what) or {}
    raise ConfigError(f"kubeconfig has no {what} named {name!r}")


def parse_kubeconfig(doc: Any, base: Path, context: str | None = None, source: str = "kubeconfig") -> ClientConfig:
    """The current (or named) context of a parsed kubeconfig; relative file paths are relative to `base`."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: not a kubeconfig (expected a mapping)")
    name = context or doc.get("current-context")
    if not name:
        raise ConfigError(f"{source}: no current-context")
    ctx = _named(doc, "contexts", name, "context")
    cluster = _named(doc, "clusters", ctx.get("cluster", ""), "cluster")
    user = _named(doc, "users", ctx["user"], "user") if ctx.get("user") else {}
    for unsupported in ("exec", "auth-provider", "username"):
        if user.get(unsupported):
            raise ConfigError(f"{source}: user {ctx.get('user')!r} authenticates with {unsupported!r}, which the "
                              "operator does not support; use a client certificate or a token (or tokenFile)")
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise ConfigError(f"{source}: cluster {ctx.get('cluster')!r} has no server")

    def file(key: str) -> str | None:
        value = cluster.get(key) if key == "certificate-authority" else user.get(key)
        return str(base / value) if value else None  # an absolute value stays as it is

    token_file = user.get("tokenFile")
    return ClientConfig(
        server=server,
        ca_file=file("certificate-authority"), ca_data=_pem(cluster.get("certificate-authority-data"), source),
        cert_file=file("client-certificate"), cert_data=_pem(user.get("client-certificate-data"), source),
        key_file=file("client-key"), key_data=_pem(user.get("client-key-data"), source),
        token=user.get("token") or None, token_file=TokenFile(base / token_file) if token_file else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")), namespace=ctx.get("namespace") or None,
        source=f"{source} (context {name})",
    )


def _pem(data: str | None, source: str) -> str | None:
    """kubeconfig's *-data fields are base64 of PEM."""
    if not data:
        return None
    try:
        return base64.b64decode(data, validate=True).decode("ascii")
    except (binascii.Error, ValueError) as err:
        raise ConfigError(f"{source}: a *-data field is not base64 of PEM text: {err}") from err


def _ssl_context(cfg: ClientConfig) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=cfg.ca_file, cadata=cfg.ca_data)
        if cfg.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if (cfg.cert_file or cfg.cert_data) and (cfg.key_file or cfg.key_data):
            _load_client_cert(context, cfg)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"{cfg.source}: cannot set up TLS: {err}") from err
    return context


def _load_client_cert(context: ssl.SSLContext, cfg: ClientConfig) -> None:
    # Python's ssl loads a certificate and key only from files: inline data goes through a private
    # temporary directory that is removed as soon as they are loaded.
    if cfg.cert_file and cfg.key_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
        return
    with tempfile.TemporaryDirectory(prefix="flux-tls-") as tmp:
        cert, key = cfg.cert_file, cfg.key_file
        if cfg.cert_data:
            cert = os.path.join(tmp, "client.crt")
            Path(cert).write_text(cfg.cert_data)
        if cfg.key_data:
            key = os.path.join(tmp, "client.key")
            Path(key).write_text(cfg.key_data)
        context.load_cert_chain(cert, key)
