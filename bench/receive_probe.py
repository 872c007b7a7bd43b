"""Drive `Endpoint.receive` with N SIPp-like OPTIONS (unique branch, From tag and Call-ID each),
answered statelessly by a trivial callback: the SIP core's per-message path and nothing else.

bench/instructions.sh runs it under valgrind's callgrind twice (1,200 and 2,200 messages) and
reports the difference per message: an instruction count that does not depend on what else
the machine is doing, for before/after comparisons of the core (compiled or pure Python).

Run: .venv/bin/python bench/receive_probe.py N
"""

from __future__ import annotations

import secrets
import sys

from sipbox.sip.address import Address, Peer
from sipbox.sip.endpoint import Endpoint

HOST = "127.0.0.9"
CLIENT = ("127.0.0.1", 5999)


def options(n: int, port: int = 5060, host: str = HOST, client: tuple[str, int] = CLIENT) -> bytes:
    """What SIPp's bench/options_uac.xml sends (plus a Contact), unique per `n`."""
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {client[0]}:{client[1]};branch=z9hG4bK-opt-{n}\r\n"
        f"From: <sip:sipp@{client[0]}:{client[1]}>;tag={n}SIPpTag01\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {n}-opt@{client[0]}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"Contact: <sip:sipp@{client[0]}:{client[1]}>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def main(count: int) -> None:
    endpoint = Endpoint(
        id_source=lambda: secrets.token_hex(8),
        local_address=lambda destination: Address("udp", HOST, 5060),
    )
    endpoint.answer_statelessly(["OPTIONS"], lambda request, peer: b"SIP/2.0 200 OK\r\n\r\n")
    peer = Peer(Address("udp", CLIENT[0], CLIENT[1]), Address("udp", HOST, 5060), None)
    for data in [options(i) for i in range(count)]:
        endpoint.receive(data, peer, 1.0)
        endpoint.datagrams_to_send()
    assert endpoint.stats.stateless_answers == count


if __name__ == "__main__":
    main(int(sys.argv[1]))
