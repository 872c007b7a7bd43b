"""The whole server path without sockets: CPU per OPTIONS and per digest registration.

A real `sipbox.app.Server` (SQLite store, guard on with the source white-listed, uvloop) is
started on loopback; then datagrams are handed straight to its UDP listener's
`datagram_received` and the answers are taken from a fake socket transport. Everything the
server does per message is in the figure (guard hook, parse, transaction, dispatcher, auth,
registrar, building and "sending" the answer) except the recvfrom/sendto syscalls and the
event loop wake-ups; the client's own work (building requests, answering the 401) is not
timed. Because it runs on one core without a load generator beside it, it is far less noisy
than the SIPp benches: use it for before/after comparisons of the in-process path.

Run: .venv/bin/python bench/inproc.py [--users 5000] [--options 20000] [--profile out.prof]
     [--calls]    (print cProfile call counts per registration: a deterministic measure)
     [--max-transactions N]  (bench only: the memory run needs --users 100000
                              --options 0 --max-transactions 1000000)
     [--steady N]  (expire completed transactions every N registrations: steady state)

It also prints the process's RSS once every user is registered: with --users 100000 that is
the "100,000 live bindings" memory figure (the whole server process: users, bindings, nonce
table, completed-transaction store, the API).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's sipbox

import uvloop
from benchconfig import write_config
from receive_probe import options as probe_options

from sipbox.app import Server
from sipbox.config import load_settings
from sipbox.sip.digest import answer_challenge

HOST = "127.0.0.1"
CLIENT = ("127.0.0.2", 5062)


class Sink:
    """Stands in for the uvloop UDP transport: keeps the last datagram sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: object) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass


def options(n: int, port: int) -> bytes:
    return probe_options(n, port, HOST, CLIENT)


def register(number: str, n: int, cseq: int, port: int, auth: str | None) -> bytes:
    """What SIPp's register_auth.xml sends."""
    lines = [
        f"REGISTER sip:{HOST}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {CLIENT[0]}:{CLIENT[1]};branch=z9hG4bK-{n}-{cseq}",
        f"From: <sip:{number}@{HOST}>;tag={n}SIPpTag0{n}",
        f"To: <sip:{number}@{HOST}>",
        f"Call-ID: {n}-reg@{CLIENT[0]}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{number}@{CLIENT[0]}:{CLIENT[1]}>",
        "Expires: 3600",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    lines += ["Max-Forwards: 70", "User-Agent: sipp-register", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def rss_mb() -> float:
    """Resident set size of this process (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def challenge_of(data: bytes) -> str:
    for line in data.decode().split("\r\n"):
        if line.lower().startswith("www-authenticate:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit(f"no challenge in {data[:200]!r}")


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="sipbox-inproc-"))
    state = work / "var"
    port = args.port
    write_config(work, HOST, port)
    from provision_users import main as provision

    await provision(state, HOST, args.users, work / "users.csv")
    settings = load_settings(work / "sipbox.toml")
    server = Server(settings)
    await server.start()
    try:
        assert server.transport is not None
        udp = server.transport._udp[0]
        if args.max_transactions:
            # Bench only: the driver runs far faster than real time from one source, so the
            # product's cap (live + completed transactions kept 32 s for Timer J) is reached.
            server.endpoint._max_transactions = args.max_transactions
        real = udp.transport
        sink = Sink()
        udp.transport = sink  # type: ignore[assignment]
        receive = udp.datagram_received
        gc.collect()
        gc.freeze()

        # OPTIONS
        batch = [options(i, port) for i in range(args.options)]
        rounds: list[float] = []
        step = max(1, len(batch) // 10)
        for first in range(0, len(batch), step):
            part = batch[first : first + step]
            start = time.process_time()
            for data in part:
                receive(data, CLIENT)
            rounds.append((time.process_time() - start) / len(part) * 1e6)
        opt_us = statistics.median(rounds) if rounds else float("nan")
        opt_min = min(rounds, default=float("nan"))
        assert len(sink.sent) == len(batch), len(sink.sent)
        if args.calls:
            batch = [options(i + len(batch), port) for i in range(2000)]
            opt_profiler = cProfile.Profile()
            opt_profiler.enable()
            for data in batch:
                receive(data, CLIENT)
            opt_profiler.disable()
            stats = pstats.Stats(opt_profiler)
            calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
            print(f"function calls per OPTIONS: {calls / 2000:.1f}")
            stats.sort_stats(args.sort).print_stats(args.lines)
        assert not batch or sink.sent[-1].startswith(b"SIP/2.0 200"), sink.sent[-1][:100]
        sink.sent.clear()

        if args.tracemalloc:
            import tracemalloc

            tracemalloc.start(1)
        # Registrations: REGISTER -> 401 -> REGISTER -> 200, timed server side only.
        profiler = cProfile.Profile() if (args.profile or args.calls) else None
        spent = 0.0
        reg_rounds: list[float] = []
        round_start, round_spent = 0, 0.0
        for i in range(args.users):
            number = str(100000 + i)
            first = register(number, i, 1, port, None)
            t0 = time.process_time()
            if profiler:
                profiler.enable()
            receive(first, CLIENT)
            if profiler:
                profiler.disable()
            spent += time.process_time() - t0
            challenge = challenge_of(sink.sent[-1])
            answer = answer_challenge(
                challenge,
                "REGISTER",
                f"sip:{HOST}:{port}",
                number,
                f"pw{number}",
                hashlib.md5(number.encode()).hexdigest()[:8],
                1,
            )
            second = register(number, i, 2, port, answer)
            t0 = time.process_time()
            if profiler:
                profiler.enable()
            receive(second, CLIENT)
            if profiler:
                profiler.disable()
            spent += time.process_time() - t0
            if not sink.sent[-1].startswith(b"SIP/2.0 200"):
                raise SystemExit(f"registration {i} failed: {sink.sent[-1][:300]!r}")
            sink.sent.clear()
            if i % 256 == 255:
                await asyncio.sleep(0)  # let the write-behind writer run as it would
            if args.steady and i % args.steady == args.steady - 1:
                # As if the registrations were spread out (phones re-register every hour or
                # so): completed transactions have expired before the next batch arrives.
                server.endpoint.handle_timer(asyncio.get_running_loop().time() + 64.0)
            if i - round_start + 1 == max(1, args.users // 10):
                reg_rounds.append((spent - round_spent) / (i - round_start + 1) * 1e6)
                round_start, round_spent = i + 1, spent
        reg_us = statistics.median(reg_rounds)
        print(
            f"OPTIONS      {opt_us:8.1f} us CPU per request, median of 10 rounds "
            f"(min {opt_min:.1f}; {args.options} requests)"
        )
        print(
            f"registration {reg_us:8.1f} us CPU per REGISTER->401->REGISTER->200, median of "
            f"10 rounds (min {min(reg_rounds):.1f}; {args.users} users; store writes not "
            "included)"
        )
        gc.collect()
        bindings = server.registrar.count() if server.registrar is not None else -1
        queued = (
            len(server.registrar._pending_upserts) + len(server.registrar._pending_deletes)
            if server.registrar is not None
            else -1
        )
        endpoint = server.endpoint
        print(
            f"memory: {rss_mb():.1f} MB RSS for the whole process with {bindings} live "
            f"bindings and {args.users} users ({endpoint.transactions_compact} completed "
            f"transactions still kept for retransmissions; {queued} binding changes not yet "
            "written by the write-behind)"
        )
        # Timer J/I: 32 s later the completed transactions are gone; what stays is the steady
        # state of that many registered phones.
        endpoint.handle_timer(asyncio.get_running_loop().time() + 64.0)
        await asyncio.sleep(0.5)  # the write-behind flushes what is queued
        gc.collect()
        print(
            f"memory: {rss_mb():.1f} MB RSS with {bindings} live bindings after the completed "
            f"transactions expired ({endpoint.transactions_compact} left)"
        )
        if args.tracemalloc:
            snapshot = tracemalloc.take_snapshot()
            top = snapshot.statistics("lineno")
            print(f"traced: {sum(s.size for s in top) / 1e6:.1f} MB allocated since the start")
            for stat in top[: args.lines]:
                print(f"  {stat.size / 1e6:7.2f} MB {stat.count:8d} {stat.traceback}")
        if profiler:
            stats = pstats.Stats(profiler)
            calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
            print(f"function calls per registration: {calls / args.users:.1f}")
            if args.profile:
                stats.dump_stats(args.profile)
            if args.calls:
                stats.sort_stats(args.sort).print_stats(args.lines)
        udp.transport = real
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--options", type=int, default=20000)
    parser.add_argument("--profile", default=None)
    parser.add_argument(
        "--port", type=int, default=15060, help="SIP port (API on the next one) on 127.0.0.1"
    )
    parser.add_argument("--calls", action="store_true")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--lines", type=int, default=30)
    parser.add_argument(
        "--steady",
        type=int,
        default=0,
        metavar="N",
        help="expire completed transactions every N registrations (the memory of a steady "
        "re-registration rate instead of one burst of 100,000 in a few seconds)",
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help="where the registrations' memory went"
    )
    parser.add_argument(
        "--max-transactions",
        type=int,
        default=0,
        help="raise the endpoint's transaction cap (bench only; e.g. 1000000 for --users 100000)",
    )
    args = parser.parse_args()
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
