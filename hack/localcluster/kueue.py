"""Kueue on the local cluster, for the queueing tests: its CRDs, its controller as a process, and its webhooks.

Kueue admits plain pods through a mutating webhook (it adds its scheduling gate) and a validating one. The
API server calls webhooks by Service or by URL; the local cluster has no Service network, so the
webhook configurations here name Kueue's loopback port by URL, with a certificate made for 127.0.0.1 and its
CA in the configuration. Only namespaces labelled NAMESPACE_LABEL=true are managed (the webhooks' own
namespaceSelector and Kueue's managedJobsNamespaceSelector), so nothing else on the cluster meets them.
Everything listens on loopback: the webhook, the health probe; metrics and the visibility server are off.

Without its internal certificate management Kueue reads a metrics certificate from a fixed path,
/etc/kueue/metrics/certs, even with metrics off. The host's /etc is not the tests' to write: Kueue runs in a
mount namespace of its own where /etc is an overlay (its writes land in a tmpfs) holding that certificate.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import subprocess
from collections.abc import Iterator
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from localcluster.layout import Layout, binaries_dir, kueue_crds
from localcluster.probes import wait_for
from localcluster.procs import die_with_parent, free_port, stop

NAMESPACE_LABEL = "flux-test.dev/kueue"
WEBHOOKS = "flux-test-kueue"
# Kueue's own webhooks this test set-up routes: plain pods, and its queueing objects' defaults and checks.
ROUTED = ("-v1-pod", "-kueue-x-k8s-io-")


def certificate(directory: Path) -> bytes:
    """A key and a self-signed certificate for 127.0.0.1 as Kueue's webhook server reads them (tls.crt, tls.key);
    the certificate, which is its own CA, for the webhook configurations."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kueue-webhook.flux-test")])
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tls.crt").write_bytes(pem)
    (directory / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    (directory / "tls.key").chmod(0o600)
    return pem


def configuration(webhook_port: int, health_port: int, cert_dir: Path) -> dict:
    selector = {"matchLabels": {NAMESPACE_LABEL: "true"}}
    return {"apiVersion": "config.kueue.x-k8s.io/v1beta2", "kind": "Configuration",
            "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
            "metrics": {"bindAddress": "0"},
            "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": False},
            "manageJobsWithoutQueueName": False,
            "managedJobsNamespaceSelector": selector,
            "integrations": {"frameworks": ["pod"]}}


def webhook_configurations(manifests: Path, port: int, ca: bytes) -> list[dict]:
    """Kueue's own webhook configurations, cut to the webhooks ROUTED, each called at its path on loopback;
    the pod webhooks only in labelled namespaces."""
    import base64

    bundle = base64.b64encode(ca).decode()
    out = []
    for doc in yaml.safe_load_all(manifests.read_text()):
        if not doc:
            continue
        hooks = []
        for hook in doc.get("webhooks") or []:
            path = hook["clientConfig"]["service"]["path"]
            if not any(part in path for part in ROUTED):
                continue
            hook = {**hook, "clientConfig": {"url": f"https://127.0.0.1:{port}{path}", "caBundle": bundle}}
            if path.endswith("-v1-pod"):
                hook["namespaceSelector"] = {"matchLabels": {NAMESPACE_LABEL: "true"}}
            hooks.append(hook)
        out.append({"apiVersion": doc["apiVersion"], "kind": doc["kind"],
                    "metadata": {"name": f"{WEBHOOKS}-{doc['kind'].lower()}"}, "webhooks": hooks})
    return out


# In Kueue's own mount namespace: /etc as an overlay whose writes go to a tmpfs, with the metrics certificate
# where Kueue looks for it; then Kueue itself, as the same process.
_OWN_ETC = """set -e
overlay=$1 certs=$2
shift 2
mount -t tmpfs flux-test-kueue "$overlay"
mkdir "$overlay/upper" "$overlay/work"
mount -t overlay flux-test-kueue -o "lowerdir=/etc,upperdir=$overlay/upper,workdir=$overlay/work" /etc
mkdir -p /etc/kueue/metrics/certs
cp "$certs/tls.crt" "$certs/tls.key" /etc/kueue/metrics/certs/
exec "$@"
"""


def _kubectl(layout: Layout, *args: str, stdin: str | None = None) -> None:
    subprocess.run([str(layout.bin / "kubectl"), "--kubeconfig", str(layout.kubeconfig), *args], input=stdin,
                   check=True, capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def running(layout: Layout, work: Path) -> Iterator[subprocess.Popen]:
    """Kueue's CRDs applied, its controller running as the cluster admin, its webhooks routed to it; the
    webhook configurations and the process go at the end (the CRDs stay, like ours)."""
    crds = kueue_crds()
    for crd in crds:
        _kubectl(layout, "apply", "--server-side", "--force-conflicts", "-f", str(crd))
    _kubectl(layout, "wait", "--for=condition=Established", "--timeout=60s",
             *(f"crd/{yaml.safe_load(c.read_text())['metadata']['name']}" for c in crds))
    webhook_port, health_port = free_port(), free_port()
    ca = certificate(work / "certs")
    (work / "config.yaml").write_text(yaml.safe_dump(configuration(webhook_port, health_port, work / "certs")))
    log = open(layout.logs / "kueue.log", "ab")
    binary = binaries_dir(with_kueue=True) / "kueue"
    (work / "overlay").mkdir(exist_ok=True)
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _OWN_ETC,
                             "kueue", str(work / "overlay"), str(work / "certs"),
                             str(binary), f"--config={work / 'config.yaml'}", f"--kubeconfig={layout.kubeconfig}",
                             "--feature-gates=VisibilityOnDemand=false"], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    manifests = crds[0].parents[2] / "webhook" / "manifests.yaml"
    configs = webhook_configurations(manifests, webhook_port, ca)
    try:
        wait_for(lambda: _healthy(health_port, proc), timeout=120, what="Kueue's readiness probe")
        _kubectl(layout, "apply", "--server-side", "--force-conflicts", "-f", "-",
                 stdin=yaml.safe_dump_all(configs))
        yield proc
    finally:
        for config in configs:
            subprocess.run([str(layout.bin / "kubectl"), "--kubeconfig", str(layout.kubeconfig), "delete",
                            config["kind"].lower(), config["metadata"]["name"], "--ignore-not-found"],
                           capture_output=True, timeout=60)
        stop(proc, 30)
        log.close()


def _healthy(port: int, proc: subprocess.Popen) -> bool:
    import urllib.request

    if proc.poll() is not None:
        raise RuntimeError(f"kueue exited with {proc.returncode}: see its log in the cluster's logs/kueue.log")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
