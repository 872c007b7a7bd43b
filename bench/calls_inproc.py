"""The whole call path without sockets: CPU per call, GC pauses, memory of held calls (issue 4).

A real `sipbox.app.Server` (SQLite store, guard on with loopback white-listed, uvloop, CDR
writer, capture, extensions) is started; a fake UDP transport takes what it sends and the
caller (1001, IP-authorized, or digest with --digest) and callee (1002, static contact) are
simulated here with string templates, as SIPp's uac_call.xml / uas_answer.xml do:
INVITE -> 100, 180, 200 -> ACK, then BYE -> 200 on both legs. Only the server's work is
timed (`time.process_time` around each datagram handed to it); the event loop gets a turn
between batches so the CDR writer runs as in production (its time is not in the figure).

    .venv/bin/python bench/calls_inproc.py [--calls 2000] [--rounds 5] [--digest]
        [--hold 10000]   # first establish N calls and keep them, then measure
        [--profile out.prof] [--count]  # cProfile; --count prints function calls per call

Prints: µs CPU per call (median of rounds), GC collections and pause times (gc.callbacks) by
generation during the measured calls, objects left tracked by the collector per held call,
and the RSS of the process with the held calls.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchconfig
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's sipbox

import uvloop
from benchconfig import write_config

from sipbox.app import Server
from sipbox.config import load_settings
from sipbox.sip.digest import answer_challenge

HOST = "127.0.0.1"
PORT = 15070
UAC = ("127.0.0.2", 5062)
UAC_DIGEST = ("127.0.0.4", 5064)
UAS = ("127.0.0.3", 5063)
SDP = (
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\n"
    "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


class Sink:
    """Stands in for the uvloop UDP transport."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def close(self) -> None:
        pass


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def headers_of(data: bytes) -> tuple[str, list[str]]:
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")
    return lines[0], lines[1:]


def pick(lines: list[str], name: str) -> list[str]:
    prefix = name.lower() + ":"
    return [line for line in lines if line.lower().startswith(prefix)]


def value(lines: list[str], name: str) -> str:
    return pick(lines, name)[0].split(":", 1)[1].strip()


class Caller:
    def __init__(self, n: int, addr: tuple[str, int], auth: bool) -> None:
        self.n = n
        self.addr = addr
        self.auth = auth
        self.tag = f"{n}SIPpTag00{n}"
        self.call_id = f"{n}-call@{addr[0]}"
        self.to = f"<sip:1002@{HOST}>"
        self.ruri = f"sip:1002@{HOST}:{PORT}"

    def request(
        self, method: str, cseq: int, branch: str, extra: str = "", body: str = ""
    ) -> bytes:
        ct = "Content-Type: application/sdp\r\n" if body else ""
        contact = (
            f"Contact: <sip:1001@{self.addr[0]}:{self.addr[1]}>\r\n" if method == "INVITE" else ""
        )
        return (
            f"{method} {self.ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.addr[0]}:{self.addr[1]};branch=z9hG4bK-{branch}\r\n"
            f'From: "Caller" <sip:1001@{HOST}>;tag={self.tag}\r\n'
            f"To: {self.to}\r\nCall-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"{contact}Max-Forwards: 70\r\n{extra}{ct}Content-Length: {len(body)}\r\n\r\n{body}"
        ).encode()


def answer(request: bytes, status: str, tag: str | None, body: str = "") -> bytes:
    _, lines = headers_of(request)
    to = value(lines, "To") + (f";tag={tag}" if tag else "")
    vias = "".join(f"{line}\r\n" for line in pick(lines, "Via"))
    ct = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"SIP/2.0 {status}\r\n{vias}From: {value(lines, 'From')}\r\nTo: {to}\r\n"
        f"Call-ID: {value(lines, 'Call-ID')}\r\nCSeq: {value(lines, 'CSeq')}\r\n"
        f"Contact: <sip:{UAS[0]}:{UAS[1]};transport=UDP>\r\n{ct}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


class Driver:
    def __init__(self, receive, sink: Sink) -> None:
        self.receive = receive
        self.sink = sink
        self.cpu = 0.0

    def send(self, data: bytes, addr: tuple[str, int]) -> list[tuple[bytes, tuple[str, int]]]:
        sink = self.sink
        sink.sent = []
        start = time.process_time()
        self.receive(data, addr)
        self.cpu += time.process_time() - start
        return sink.sent

    def first(self, out, addr, start: str) -> bytes:
        for data, to in out:
            if to == addr and data.startswith(start.encode()):
                return data
        raise SystemExit(f"expected {start!r} to {addr}, got {[d[:40] for d, _ in out]}")

    def setup(self, caller: Caller) -> tuple[bytes, str]:
        """INVITE ... ACK; returns the B leg's INVITE and its To tag."""
        n = caller.n
        invite = caller.request("INVITE", 1, f"{n}-1", body=SDP)
        out = self.send(invite, caller.addr)
        cseq = 1
        if caller.auth:
            challenge = self.first(out, caller.addr, "SIP/2.0 407")
            _, lines = headers_of(challenge)
            to_tag = value(lines, "To").split("tag=")[1]
            ack = caller.request("ACK", 1, f"{n}-1", "")
            ack = ack.replace(f"To: {caller.to}".encode(), f"To: {caller.to};tag={to_tag}".encode())
            self.send(ack, caller.addr)
            cred = answer_challenge(
                value(lines, "Proxy-Authenticate"),
                "INVITE",
                caller.ruri,
                "1001",
                "benchpw",
                f"c{n}",
                1,
            )
            cseq = 2
            out = self.send(
                caller.request("INVITE", 2, f"{n}-2", f"Proxy-Authorization: {cred}\r\n", SDP),
                caller.addr,
            )
        b_invite = self.first(out, UAS, "INVITE ")
        b_tag = f"{n}SIPpTag01{n}"
        self.send(answer(b_invite, "180 Ringing", b_tag), UAS)
        out = self.send(answer(b_invite, "200 OK", b_tag, SDP), UAS)
        ok = self.first(out, caller.addr, "SIP/2.0 200")
        _, lines = headers_of(ok)
        a_tag = value(lines, "To").split("tag=")[1]
        caller.to = f"{caller.to};tag={a_tag}"
        self.send(caller.request("ACK", cseq, f"{n}-ack"), caller.addr)
        return b_invite, b_tag

    def hangup(self, caller: Caller, cseq: int) -> None:
        out = self.send(caller.request("BYE", cseq, f"{caller.n}-bye"), caller.addr)
        bye = self.first(out, UAS, "BYE ")
        self.send(answer(bye, "200 OK", None), UAS)


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="sipbox-inproc-calls-"))
    state = work / "var"
    write_config(work, HOST, PORT, api_offset=2)
    from sipbox.pbx.users import password_fields
    from sipbox.storage import NewUser, open_store

    state.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{state}/sipbox.db")
    await store.migrate()
    await store.create_users(
        [
            NewUser(
                number="1001", ip_auth=(f"{UAC[0]}/32",), **password_fields("1001", HOST, "benchpw")
            ),
            NewUser(number="1002", ip_auth=(f"{UAS[0]}/32",), static_contact=f"{UAS[0]}:{UAS[1]}"),
        ]
    )
    await store.close()
    server = Server(load_settings(work / "sipbox.toml"))
    await server.start()
    try:
        assert server.transport is not None
        udp = server.transport._udp[0]
        sink = Sink()
        udp.transport = sink  # type: ignore[assignment]
        driver = Driver(udp.datagram_received, sink)
        source = UAC_DIGEST if args.digest else UAC
        serial = [0]

        def new_caller() -> Caller:
            serial[0] += 1
            return Caller(serial[0], source, args.digest)

        held = []
        if args.hold:
            rss0 = rss_mb()
            gc.collect()
            tracked0 = len(gc.get_objects()) + gc.get_freeze_count()
            for i in range(args.hold):
                caller = new_caller()
                driver.setup(caller)
                held.append(caller)
                if i % 500 == 499:
                    await asyncio.sleep(0)
            await asyncio.sleep(2.5)  # the GC policy's freeze tick (gcpolicy.py)
            gc.collect()
            tracked = len(gc.get_objects()) + gc.get_freeze_count() - tracked0
            print(
                f"held {args.hold} calls: RSS {rss_mb():.0f} MB (+{rss_mb() - rss0:.0f} MB), "
                f"{tracked / args.hold:.0f} GC-tracked objects per held call, "
                f"live calls {len(server.calls.b2bua.calls)}"
            )

        pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        began = [0.0]

        def on_gc(phase: str, info: dict) -> None:
            if phase == "start":
                began[0] = time.perf_counter()
            else:
                pauses[info["generation"]].append(time.perf_counter() - began[0])

        profiler = cProfile.Profile() if (args.profile or args.count) else None
        per_call: list[float] = []
        gc.callbacks.append(on_gc)
        try:
            for _ in range(args.rounds):
                driver.cpu = 0.0
                callers = [new_caller() for _ in range(args.calls)]
                if profiler is not None:
                    profiler.enable()
                # ~100 calls in progress at a time, as at 100 calls/s with a 1 s hold
                window: list[Caller] = []
                for caller in callers:
                    driver.setup(caller)
                    window.append(caller)
                    if len(window) >= 100:
                        old = window.pop(0)
                        driver.hangup(old, 3 if args.digest else 2)
                    if caller.n % 200 == 0:
                        if profiler is not None:
                            profiler.disable()
                        await asyncio.sleep(0)  # the CDR writer and timers get their turn
                        if profiler is not None:
                            profiler.enable()
                for old in window:
                    driver.hangup(old, 3 if args.digest else 2)
                if profiler is not None:
                    profiler.disable()
                per_call.append(driver.cpu / args.calls * 1e6)
                await asyncio.sleep(0.1)
        finally:
            gc.callbacks.remove(on_gc)
        print(
            f"{'digest' if args.digest else 'ip'} A leg: {statistics.median(per_call):.0f} µs CPU "
            f"per call (median of {args.rounds} rounds of {args.calls}: "
            f"{', '.join(f'{v:.0f}' for v in per_call)})"
        )
        total_calls = args.rounds * args.calls
        for gen, values in pauses.items():
            if values:
                values.sort()
                print(
                    f"  gc gen{gen}: {len(values)} passes ({len(values) / total_calls * 1000:.1f} "
                    f"per 1000 calls), max {values[-1] * 1000:.1f} ms, median "
                    f"{values[len(values) // 2] * 1000:.2f} ms, total {sum(values) * 1000:.0f} ms"
                )
        print(f"  RSS {rss_mb():.0f} MB, live calls {len(server.calls.b2bua.calls)}")
        if args.live:  # what stays tracked by the collector (a full pass scans all of it)
            from collections import Counter

            gc.collect()
            objs = gc.get_objects()
            print(f"  tracked objects now: {len(objs)} (frozen: {gc.get_freeze_count()})")
            for kind, n in Counter(type(o).__qualname__ for o in objs).most_common(args.live):
                print(f"    {n:8d} {kind}")
            lists = [o for o in objs if type(o) is list]
            sizes = Counter(len(o) for o in lists)
            print("    list sizes:", sizes.most_common(6))
            owners = Counter()
            for o in lists[-2000:]:
                for r in gc.get_referrers(o):
                    if r is not lists and r is not objs:
                        owners[type(r).__qualname__] += 1
            print("    list owners:", owners.most_common(8))
            del objs, lists
        if args.cycles:  # what only the collector frees: reference cycles, by type
            from collections import Counter

            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            driver.cpu = 0.0
            for _ in range(200):
                caller = new_caller()
                driver.setup(caller)
                driver.hangup(caller, 3 if args.digest else 2)
            gc.collect()
            gc.set_debug(0)
            kinds = Counter(type(o).__qualname__ for o in gc.garbage)
            print(f"  objects in cycles per call: {len(gc.garbage) / 200:.1f}")
            for kind, n in kinds.most_common(args.cycles):
                print(f"    {n / 200:7.2f} {kind}")
            gc.garbage.clear()
        if profiler is not None:
            stats = pstats.Stats(profiler)
            if args.profile:
                stats.dump_stats(args.profile)
            if args.count:
                calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
                print(f"  function calls per call: {calls / total_calls:.0f}")
                stats.sort_stats("tottime").print_stats(25)
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--digest", action="store_true")
    parser.add_argument("--hold", type=int, default=0)
    parser.add_argument("--profile")
    parser.add_argument("--count", action="store_true")
    parser.add_argument("--live", type=int, default=0, help="show the N commonest tracked types")
    parser.add_argument(
        "--cycles", type=int, default=0, help="show the N commonest types in cycles"
    )
    args = parser.parse_args()
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
