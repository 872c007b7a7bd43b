"""TLS for SIP over TLS (RFC 3261 §26.2.1, RFC 5630): a development certificate and contexts.

`ensure_self_signed` makes a self-signed EC P-256 certificate so `sipbox serve` can listen on
`tls:` out of the box; production deployments point the config at a real certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["client_context", "ensure_self_signed", "server_context"]

_VALIDITY = datetime.timedelta(days=3650)
StrPath = str | os.PathLike[str]


def ensure_self_signed(cert_path: StrPath, key_path: StrPath, common_name: str) -> None:
    """Create a self-signed certificate and its key unless both files already exist.

    The subject alternative names are `common_name` (as an IP address if it is one, else a DNS
    name), 127.0.0.1 and ::1; it is valid for ten years. The key is written with mode 0600.
    """
    cert_file, key_file = Path(cert_path), Path(key_path)
    if cert_file.exists() and key_file.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    alt_names: list[x509.GeneralName] = []
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(common_name)))
    except ValueError:
        alt_names.append(x509.DNSName(common_name))
    for loopback in ("127.0.0.1", "::1"):
        general = x509.IPAddress(ipaddress.ip_address(loopback))
        if general not in alt_names:
            alt_names.append(general)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        # Its own trust anchor (clients load it as `cafile`), so it is a CA too; the key
        # identifiers and key usage keep OpenSSL's strict mode (Python 3.13's default) happy.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_file.parent.mkdir(parents=True, exist_ok=True)
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    _write(key_file, key_bytes, 0o600)
    _write(cert_file, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write `data` atomically-enough with `mode` set before any byte lands (for the key)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def server_context(cert_path: StrPath, key_path: StrPath) -> ssl.SSLContext:
    """A server-side context (TLS 1.2+) presenting the given certificate chain and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(os.fspath(cert_path), os.fspath(key_path))
    return context


def client_context(verify: bool = True, cafile: StrPath | None = None) -> ssl.SSLContext:
    """A client-side context (TLS 1.2+) for outgoing connections.

    With `verify` the server certificate is checked against `cafile` (or the system store) and
    the host name or IP; without it anything is accepted (development and tests only).
    """
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=None if cafile is None else os.fspath(cafile)
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
