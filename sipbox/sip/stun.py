"""STUN keep-alives on the SIP port: recognise a Binding request, answer it (RFC 5389, RFC 5626 §8).

SIP outbound (RFC 5626 §4.4.2) lets a UA behind NAT send STUN Binding requests to the SIP UDP
port; the answer's XOR-MAPPED-ADDRESS tells it its public address, and a change means the NAT
binding was lost. SIP and STUN are told apart by the first byte (RFC 5389 §6, RFC 7983): STUN
starts with two zero bits, a SIP message with a letter.

Message layout (RFC 5389 §6): type (2 bytes, top two bits zero), length of the attributes
(2 bytes, a multiple of 4), magic cookie 0x2112A442, 96-bit transaction id, then attributes
(type, length, value padded to 4 bytes). We answer with XOR-MAPPED-ADDRESS (§15.2) and a
FINGERPRINT (§15.5, a CRC-32 that lets the client demultiplex, cheap with `zlib`).
"""

from __future__ import annotations

import ipaddress
import struct
import zlib
from typing import Final

__all__ = ["MAGIC_COOKIE", "binding_response", "is_stun"]

MAGIC_COOKIE: Final = 0x2112A442
_COOKIE_BYTES: Final = MAGIC_COOKIE.to_bytes(4, "big")
_HEADER_SIZE: Final = 20
_BINDING_REQUEST: Final = 0x0001
_BINDING_SUCCESS: Final = 0x0101
_XOR_MAPPED_ADDRESS: Final = 0x0020
_FINGERPRINT: Final = 0x8028
_FINGERPRINT_XOR: Final = 0x5354554E
_FAMILY_IPV4: Final = 0x01
_FAMILY_IPV6: Final = 0x02


def is_stun(data: bytes) -> bool:
    """True if `data` is shaped like a STUN message (RFC 5389 §6): top two bits zero, the magic
    cookie at offset 4, and a length field that matches the datagram and is a multiple of 4."""
    if len(data) < _HEADER_SIZE or data[0] & 0xC0 or data[4:8] != _COOKIE_BYTES:
        return False
    length = (data[2] << 8) | data[3]
    return length % 4 == 0 and length == len(data) - _HEADER_SIZE


def binding_response(request: bytes, host: str, port: int) -> bytes | None:
    """The Binding success response to `request` as seen from source `host`:`port`, or None if
    `request` is not a STUN Binding request (indications and responses get no answer).

    `host` is an IPv4 or IPv6 literal (an IPv4-mapped IPv6 address is reported as IPv4);
    anything else, or a port out of range, also gives None.
    """
    if not is_stun(request) or (request[0] << 8 | request[1]) != _BINDING_REQUEST:
        return None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if not 0 <= port <= 0xFFFF:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    transaction_id = request[8:20]
    if isinstance(address, ipaddress.IPv4Address):
        family = _FAMILY_IPV4
        mask = _COOKIE_BYTES
    else:
        family = _FAMILY_IPV6
        mask = _COOKIE_BYTES + transaction_id
    x_address = bytes(a ^ b for a, b in zip(address.packed, mask, strict=True))
    value = struct.pack("!BBH", 0, family, port ^ (MAGIC_COOKIE >> 16)) + x_address
    attributes = struct.pack("!HH", _XOR_MAPPED_ADDRESS, len(value)) + value
    # The FINGERPRINT CRC covers the message up to the attribute, with the length field
    # already counting it (RFC 5389 §15.5).
    header = struct.pack("!HHI", _BINDING_SUCCESS, len(attributes) + 8, MAGIC_COOKIE)
    message = header + transaction_id + attributes
    crc = (zlib.crc32(message) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF
    return message + struct.pack("!HHI", _FINGERPRINT, 4, crc)
