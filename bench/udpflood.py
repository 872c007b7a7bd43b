"""A paced UDP request generator: OPTIONS datagrams from one source at a fixed rate.

Why not SIPp: SIPp paces calls, and a call whose request is never answered stalls its
scenario; against a banned source nothing is ever answered. This sends fixed-rate datagrams
(each with a fresh branch, so none is a retransmission) in 1 ms batches and never reads.

    python bench/udpflood.py --source 127.0.0.9 --target 127.0.0.20:5060 --rate 5000 --seconds 3

Prints one JSON line: {"sent": N, "seconds": S, "rate": N/S}. Importable: `flood(...)`.
"""

from __future__ import annotations

import argparse
import json
import socket
import time


def datagram(target_host: str, target_port: int, source: str, n: int) -> bytes:
    """One OPTIONS request (~300 bytes, a typical scan probe's size)."""
    return (
        f"OPTIONS sip:{target_host}:{target_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source}:9;branch=z9hG4bKflood{n};rport\r\n"
        f"From: <sip:flood@{source}>;tag=f{n}\r\n"
        f"To: <sip:{target_host}:{target_port}>\r\n"
        f"Call-ID: flood-{n}@{source}\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def flood(source: str, target: tuple[str, int], rate: float, seconds: float) -> int:
    """Send ``rate`` datagrams per second for ``seconds``; returns how many were sent."""
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # answers are not read
        sent = 0
        start = time.monotonic()
        end = start + seconds
        while True:
            now = time.monotonic()
            if now >= end:
                break
            due = int((now - start) * rate)
            while sent < due:
                try:
                    sock.sendto(datagram(target[0], target[1], source, sent), target)
                except (BlockingIOError, ConnectionRefusedError):
                    pass
                sent += 1
            time.sleep(0.001)
        return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="local address to send from")
    parser.add_argument("--target", required=True, help="host:port of the server")
    parser.add_argument("--rate", type=float, default=5000.0, help="datagrams per second")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    started = time.monotonic()
    sent = flood(args.source, (host.strip("[]"), int(port)), args.rate, args.seconds)
    elapsed = time.monotonic() - started
    print(json.dumps({"sent": sent, "seconds": round(elapsed, 3), "rate": round(sent / elapsed)}))


if __name__ == "__main__":
    main()
