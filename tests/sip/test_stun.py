"""STUN Binding on the SIP port (RFC 5389, RFC 5626 §4.4.2)."""

from __future__ import annotations

import ipaddress
import os
import struct
import zlib

import pytest

from sipbox.sip.stun import MAGIC_COOKIE, binding_response, is_stun


def binding_request(transaction_id: bytes, attributes: bytes = b"", kind: int = 0x0001) -> bytes:
    return struct.pack("!HHI", kind, len(attributes), MAGIC_COOKIE) + transaction_id + attributes


def attributes_of(message: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    offset = 20
    while offset < len(message):
        kind, length = struct.unpack_from("!HH", message, offset)
        found[kind] = message[offset + 4 : offset + 4 + length]
        offset += 4 + length + (-length % 4)
    assert offset == len(message)
    return found


def decode_xor_mapped(value: bytes, transaction_id: bytes) -> tuple[str, int]:
    _, family, x_port = struct.unpack_from("!BBH", value)
    port = x_port ^ (MAGIC_COOKIE >> 16)
    mask = MAGIC_COOKIE.to_bytes(4, "big") + transaction_id
    raw = bytes(a ^ b for a, b in zip(value[4:], mask, strict=False))
    assert family in (1, 2)
    assert len(raw) == (4 if family == 1 else 16)
    return str(ipaddress.ip_address(raw)), port


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("192.0.2.1", 5060),
        ("203.0.113.250", 65535),
        ("2001:db8::1", 5062),
        ("fe80::1:2:3:4", 1),
        ("::1", 40000),
    ],
)
def test_binding_response_maps_back_to_the_source(host: str, port: int) -> None:
    transaction_id = os.urandom(12)
    request = binding_request(transaction_id)
    assert is_stun(request)
    response = binding_response(request, host, port)
    assert response is not None
    assert is_stun(response)
    kind, length, cookie = struct.unpack_from("!HHI", response)
    assert (kind, cookie) == (0x0101, MAGIC_COOKIE)
    assert length == len(response) - 20
    assert response[8:20] == transaction_id
    attributes = attributes_of(response)
    assert decode_xor_mapped(attributes[0x0020], transaction_id) == (host, port)
    # FINGERPRINT: CRC-32 of everything before it, XOR 0x5354554E (RFC 5389 §15.5).
    crc = struct.unpack("!I", attributes[0x8028])[0]
    assert crc == (zlib.crc32(response[:-8]) ^ 0x5354554E)


def test_ipv4_mapped_source_is_reported_as_ipv4() -> None:
    transaction_id = bytes(range(12))
    response = binding_response(binding_request(transaction_id), "::ffff:192.0.2.7", 5060)
    assert response is not None
    value = attributes_of(response)[0x0020]
    assert decode_xor_mapped(value, transaction_id) == ("192.0.2.7", 5060)


def test_request_with_attributes_is_answered() -> None:
    software = b"test"  # SOFTWARE attribute, 4 bytes, no padding needed
    request = binding_request(b"x" * 12, struct.pack("!HH", 0x8022, 4) + software)
    assert binding_response(request, "192.0.2.1", 5060) is not None


def test_hand_built_rfc5769_shaped_request() -> None:
    """The request of RFC 5769 §2.1 without its integrity attributes, byte by byte."""
    request = bytes.fromhex("0001 0000 2112a442 b7e7a701bc34d686fa87dfae".replace(" ", ""))
    response = binding_response(request, "192.0.2.1", 32853)
    assert response is not None
    # RFC 5769 §2.2: 192.0.2.1:32853 -> X-Port 0xa147, X-Address 0xe112a643.
    assert attributes_of(response)[0x0020] == bytes.fromhex("0001a147e112a643")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\n\r\n",
        struct.pack("!HHI", 0x0001, 0, 0x2112A443) + bytes(12),  # wrong cookie
        struct.pack("!HHI", 0x0001, 4, MAGIC_COOKIE) + bytes(12),  # length beyond data
        struct.pack("!HHI", 0x0001, 2, MAGIC_COOKIE) + bytes(14),  # length not a multiple of 4
        struct.pack("!HHI", 0x4001, 0, MAGIC_COOKIE) + bytes(12),  # top bits set
        bytes(19),
    ],
)
def test_not_stun(data: bytes) -> None:
    assert not is_stun(data)
    assert binding_response(data, "192.0.2.1", 5060) is None


@pytest.mark.parametrize("kind", [0x0011, 0x0101, 0x0111, 0x0003])
def test_only_binding_requests_are_answered(kind: int) -> None:
    message = binding_request(bytes(12), kind=kind)
    assert is_stun(message)
    assert binding_response(message, "192.0.2.1", 5060) is None


@pytest.mark.parametrize(("host", "port"), [("example.com", 5060), ("192.0.2.1", 70000)])
def test_bad_source_gives_none(host: str, port: int) -> None:
    assert binding_response(binding_request(bytes(12)), host, port) is None
