"""The development certificate and the SSL context helpers."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import stat
from pathlib import Path

from cryptography import x509

from sipbox.transport.tlscert import client_context, ensure_self_signed, server_context


def test_ensure_self_signed_creates_a_usable_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "certs" / "cert.pem", tmp_path / "private" / "key.pem"
    ensure_self_signed(cert, key, "pbx.example.test")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["pbx.example.test"]
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime >= datetime.timedelta(days=3649)
    context = server_context(cert, key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_ip_common_name_goes_in_as_an_ip_san(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    ensure_self_signed(cert, key, "192.0.2.10")
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("192.0.2.10") in names.get_values_for_type(x509.IPAddress)
    assert names.get_values_for_type(x509.DNSName) == []


def test_existing_files_are_kept(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    ensure_self_signed(cert, key, "a.test")
    before = cert.read_bytes(), key.read_bytes()
    ensure_self_signed(cert, key, "b.test")
    assert (cert.read_bytes(), key.read_bytes()) == before


def test_client_contexts(tmp_path: Path) -> None:
    lax = client_context(verify=False)
    assert lax.verify_mode == ssl.CERT_NONE and not lax.check_hostname
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    ensure_self_signed(cert, key, "a.test")
    strict = client_context(verify=True, cafile=cert)
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    assert strict.get_ca_certs()[0]["subject"] == ((("commonName", "a.test"),),)


def test_strict_verification_accepts_the_certificate(tmp_path: Path) -> None:
    """OpenSSL's X509_STRICT (on by default from Python 3.13) accepts it as its own anchor."""
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    ensure_self_signed(cert, key, "a.test")
    server = server_context(cert, key)
    client = client_context(verify=True, cafile=cert)
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(client_in, client_out, server_hostname="a.test")
    server_side = server.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):
        for side in (client_side, server_side):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
    assert client_side.version() is not None
    peer_certificate = client_side.getpeercert()
    assert peer_certificate is not None
    assert peer_certificate["subject"] == ((("commonName", "a.test"),),)
