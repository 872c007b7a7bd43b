"""The real server answers what it can already (issue: foundation), over real sockets.

sipsak and SIPp are the peers; the torture run sends every RFC 4475 message and 10,000 random
mutations of them, then checks the server still answers and logged no exception.
"""

from __future__ import annotations

import random
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.server import RunningServer, start_server
from tests.integration.siptools import final_response, options_request, udp_exchange

SIPP_DIR = Path(__file__).parent / "sipp"
TORTURE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "rfc4475"


def test_sipsak_options(sipbox_server: RunningServer) -> None:
    sipsak = require_tool("sipsak")
    result = subprocess.run(
        [sipsak, "-vv", "-s", f"sip:{sipbox_server.host}:{sipbox_server.port}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "200 OK" in result.stdout


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_sipp_options(sipbox_server: RunningServer, transport: str) -> None:
    sipp = require_tool("sipp")
    result = subprocess.run(
        [
            sipp, "-sf", str(SIPP_DIR / "options_uac.xml"),
            "-t", transport, "-i", "127.0.0.1", "-p", "0",
            "-m", "50", "-r", "50", "-timeout", "20", "-timeout_error", "-nostdin",
            "-trace_err", "-error_file", str(sipbox_server.state_dir / f"sipp-{transport}.err"),
            f"{sipbox_server.host}:{sipbox_server.port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_stateless_answers(sipbox_server: RunningServer) -> None:
    host, port = sipbox_server.host, sipbox_server.port
    ok = final_response(udp_exchange(host, port, options_request(host, port, branch="z9hG4bKa1")))
    assert ok is not None and ok.status == 200
    assert "OPTIONS" in (ok.headers.get("Allow") or "")
    assert ok.headers.get("Accept") == "application/sdp"

    # Broken CSeq: a 400 whose reason names the header.
    bad = options_request(host, port, branch="z9hG4bKa2").replace(
        b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS"
    )
    r = final_response(udp_exchange(host, port, bad))
    assert r is not None and r.status == 400 and "CSeq" in r.reason

    # Unknown method -> 501 with Allow; known but not handled -> 405.
    for method, status in (("FOOBAR", 501), ("PUBLISH", 405)):
        data = options_request(host, port, branch=f"z9hG4bK{method}").replace(
            b"OPTIONS", method.encode()
        )
        r = final_response(udp_exchange(host, port, data))
        assert r is not None and r.status == status and r.headers.get("Allow")

    # Unsupported Require -> 420 listing it in Unsupported.
    data = options_request(host, port, branch="z9hG4bKa4", extra="Require: foo, bar\r\n")
    r = final_response(udp_exchange(host, port, data))
    assert r is not None and r.status == 420 and r.headers.get("Unsupported") == "foo, bar"

    # Max-Forwards 0: OPTIONS to us is still answered, a MESSAGE we would relay is 483.
    data = options_request(host, port, branch="z9hG4bKa5").replace(
        b"Max-Forwards: 70", b"Max-Forwards: 0"
    )
    r = final_response(udp_exchange(host, port, data))
    assert r is not None and r.status == 200
    data = data.replace(b"OPTIONS", b"MESSAGE").replace(b"z9hG4bKa5", b"z9hG4bKa6")
    r = final_response(udp_exchange(host, port, data))
    assert r is not None and r.status == 483

    # Unknown URI scheme -> 416.
    data = options_request(host, port, branch="z9hG4bKa7").replace(
        f"OPTIONS sip:{host}:{port} ".encode(), b"OPTIONS foo:bar "
    )
    r = final_response(udp_exchange(host, port, data))
    assert r is not None and r.status == 416


def test_keepalives_and_stun(sipbox_server: RunningServer) -> None:
    host, port = sipbox_server.host, sipbox_server.port
    assert udp_exchange(host, port, b"\r\n\r\n", timeout=0.3) == []
    assert udp_exchange(host, port, b"\0\0\0\0", timeout=0.3) == []
    stun = bytes.fromhex("000100002112a442") + bytes(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        sock.sendto(stun, (host, port))
        answer, _ = sock.recvfrom(2048)
    assert answer[:2] == b"\x01\x01" and answer[8:20] == bytes(12)


def test_torture_and_mutations_do_not_hurt(tmp_path: Path) -> None:
    if not TORTURE.exists():
        pytest.skip("shared conformance data not found")
    # 10,000 datagrams as fast as possible from one address is a flood the guard blocks (issue
    # 6); like the benchmarks, white-list the generator and keep the guard's cost in the run.
    server = start_server(tmp_path, '\n[guard]\nwhitelist = ["127.0.0.1"]\n')
    try:
        _torture(server)
    finally:
        server.stop()
    assert "Traceback" not in server.log_text()


def _torture(sipbox_server: RunningServer) -> None:
    host, port = sipbox_server.host, sipbox_server.port
    seeds = [p.read_bytes() for p in sorted(TORTURE.glob("*.dat"))]
    expected = {"badvers.dat": 505, "bext01.dat": 420, "unkscm.dat": 416, "insuf.dat": 400,
                "mismatch01.dat": 400, "esc02.dat": 501, "novelsc.dat": 416}  # fmt: skip
    for name, status in expected.items():
        r = final_response(udp_exchange(host, port, (TORTURE / name).read_bytes(), timeout=2))
        assert r is not None and r.status == status, f"{name}: {r!r}"
    rng = random.Random(5060)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        for i in range(10_000 + len(seeds)):
            data = bytearray(seeds[i % len(seeds)])
            if i >= len(seeds):
                for _ in range(rng.randint(1, 4)):
                    at = rng.randrange(len(data))
                    data[at : at + rng.randint(1, 8)] = rng.randbytes(rng.randint(0, 8))
            try:
                sock.sendto(bytes(data), (host, port))
            except BlockingIOError:
                pass
            try:
                while True:
                    sock.recv(65535)  # drain answers so our buffer never fills
            except BlockingIOError:
                pass
    # The server works through its backlog (2 shared cores), then must answer again.
    answered = None
    for attempt in range(15):
        request = options_request(host, port, branch=f"z9hG4bKafter{attempt}")
        answered = final_response(udp_exchange(host, port, request, timeout=2))
        if answered is not None:
            break
    assert answered is not None and answered.status == 200
    assert sipbox_server.alive()


def test_ipv6_loopback(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("IPv6 is off on this machine (cannot bind ::1)")
    server = start_server(tmp_path, host="::1")
    try:
        r = final_response(udp_exchange("::1", server.port, options_request("[::1]", server.port)))
        assert r is not None and r.status == 200
    finally:
        server.stop()


def test_port_in_use_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    """An administrator whose port is taken gets a sentence naming it, not a traceback."""
    from tests.integration.server import make_server

    server = make_server(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((server.host, server.port))
        with pytest.raises(RuntimeError, match="exited at start-up"):
            server.start(repick_taken_ports=False)
        assert server.process is not None and server.process.wait(timeout=10) == 1
    log = server.log_text()
    assert "cannot start: cannot listen on" in log and "change [sip] listen" in log
    assert "Traceback" not in log
