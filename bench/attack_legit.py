"""Legitimate registrations at a fixed pace, for bench/attack.sh: REGISTER -> 401 -> REGISTER
with digest -> 200, from one address; prints one JSON line with the success rate and latency.

    python bench/attack_legit.py --source 127.0.0.8 --target 127.0.0.20:5099 --user 1001 \
        --password pw --rate 20 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import socket
import time

from sipbox.sip.digest import answer_challenge
from sipbox.sip.message import Response
from sipbox.sip.parser import parse_message


def _request(target: str, src: tuple[str, int], user: str, n: int, auth: str | None) -> bytes:
    lines = [
        f"REGISTER sip:{target} SIP/2.0",
        f"Via: SIP/2.0/UDP {src[0]}:{src[1]};branch=z9hG4bKleg{n}{'a' if auth else ''};rport",
        f"From: <sip:{user}@{target}>;tag=l{n}",
        f"To: <sip:{user}@{target}>",
        f"Call-ID: legit-{src[0]}-{src[1]}",
        f"CSeq: {2 * n + (2 if auth else 1)} REGISTER",
        "Max-Forwards: 70",
        f"Contact: <sip:{user}@{src[0]}:{src[1]}>",
        "Expires: 300",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def _final(sock: socket.socket, deadline: float) -> Response | None:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            message = parse_message(sock.recv(65535))
        except TimeoutError:
            return None
        if isinstance(message, Response) and message.status >= 200:
            return message


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--target", required=True, help="host:port")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--rate", type=float, default=20.0, help="registrations per second")
    p.add_argument("--seconds", type=float, default=5.0)
    a = p.parse_args()
    host, _, port = a.target.rpartition(":")
    dest = (host, int(port))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((a.source, 0))
    src = sock.getsockname()
    latencies: list[float] = []
    failed = 0
    n = 0
    start = time.monotonic()
    while time.monotonic() - start < a.seconds:
        due = start + n / a.rate
        time.sleep(max(0.0, due - time.monotonic()))
        t0 = time.monotonic()
        sock.sendto(_request(a.target, src, a.user, n, None), dest)
        first = _final(sock, t0 + 2.0)
        ok = False
        if first is not None and first.status == 401:
            auth = answer_challenge(
                first.headers.get("WWW-Authenticate") or "", "REGISTER", f"sip:{a.target}",
                a.user, a.password, f"c{n}", 1,
            )  # fmt: skip
            sock.sendto(_request(a.target, src, a.user, n, auth), dest)
            second = _final(sock, t0 + 2.0)
            ok = second is not None and second.status == 200
        if ok:
            latencies.append(time.monotonic() - t0)
        else:
            failed += 1
        n += 1
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000, 2)

    total = len(latencies) + failed
    print(json.dumps({
        "registrations": total,
        "ok_pct": round(100 * len(latencies) / total, 2) if total else 0,
        "p50_ms": pct(0.5) if latencies else None,
        "p99_ms": pct(0.99) if latencies else None,
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
