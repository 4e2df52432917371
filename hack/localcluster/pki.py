"""Certificates for the local control plane: one CA, a serving cert, client certs, the SA key pair."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)
SERVING_NAMES = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local"]
SERVING_IPS = ["127.0.0.1", "10.0.0.1"]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + VALIDITY))


def make_pki(directory: Path, node_name: str = "flux-node", extra_ips: tuple[str, ...] = (),
             kubelet_name: str | None = None) -> None:
    """Writes ca, apiserver, admin, controller-manager, scheduler certs, the sa key pair, the process
    node's serving cert and the API server's kubelet client cert; with `kubelet_name` also a
    real kubelet's client and serving certs. `extra_ips` are more SANs on the API server's cert (its
    loopback Service address)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = _name("flux-local-ca")
    ca_cert = (_builder(ca_name, ca_name, ca_key.public_key())
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(directory / "ca.key", ca_key)

    def issue(stem: str, cn: str, org: str | None, usage, sans=None) -> None:
        key = _key()
        builder = _builder(_name(cn, org), ca_name, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(directory / f"{stem}.key", key)

    ips = lambda names: [x509.IPAddress(ipaddress.ip_address(i)) for i in names]  # noqa: E731
    sans = [x509.DNSName(n) for n in SERVING_NAMES] + ips([*SERVING_IPS, *extra_ips])
    issue("apiserver", "kube-apiserver", None, ExtendedKeyUsageOID.SERVER_AUTH, sans)
    issue("admin", "flux-admin", "system:masters", ExtendedKeyUsageOID.CLIENT_AUTH)
    # kubeadm's identities: the bootstrap RBAC policy grants these users exactly what they need.
    issue("controller-manager", "system:kube-controller-manager", None, ExtendedKeyUsageOID.CLIENT_AUTH)
    issue("scheduler", "system:kube-scheduler", None, ExtendedKeyUsageOID.CLIENT_AUTH)
    # The process node's kubelet endpoint (logs), reached as localhost or 127.0.0.1 only, and the
    # API server's client certificate for it (--kubelet-client-certificate), as kubeadm names them.
    loopback = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    issue("kubelet", f"system:node:{node_name}", "system:nodes", ExtendedKeyUsageOID.SERVER_AUTH, loopback)
    issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters",
          ExtendedKeyUsageOID.CLIENT_AUTH)
    if kubelet_name:
        # The Node authorizer knows a kubelet by this name and group.
        issue("kubelet-client", f"system:node:{kubelet_name}", "system:nodes", ExtendedKeyUsageOID.CLIENT_AUTH)
        issue("kubelet-serving", kubelet_name, None, ExtendedKeyUsageOID.SERVER_AUTH,
              [x509.DNSName(kubelet_name), *ips(["127.0.0.1"])])

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(directory / "sa.key", sa_key)
    (directory / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
