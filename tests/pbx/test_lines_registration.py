"""The registration client of an external line (`pbx/lines/registration.py`) on a fake clock:
exact refresh and retry deadlines, digest answers, 423/503 handling, sticky targets, the
un-REGISTER. Pure: requests come out, responses built here go in; no sockets, no asyncio."""

from __future__ import annotations

import itertools

import pytest

from sipbox.pbx.lines.line import LineConfig
from sipbox.pbx.lines.registration import LineRegistration
from sipbox.sip.address import Address
from sipbox.sip.message import Request, Response
from sipbox.sip.parser import parse_message

T0 = 1000.0
A = Address("udp", "192.0.2.1", 5060)
B = Address("udp", "192.0.2.2", 5060)
LOCAL = Address("udp", "198.51.100.7", 5060)


def make(
    targets: list[Address] | None = None, *, base: float = 60.0, cap: float = 1800.0, **fields
) -> LineRegistration:  # type: ignore[no-untyped-def]
    counter = itertools.count(1)
    values = {"contact_user": "sbxfeedface", "password": "pw", **fields}
    line = LineConfig(name="ct", domain="carrier.example", account="5550100", **values)
    found = [A] if targets is None else targets
    return LineRegistration(
        line,
        targets=lambda: found,
        local_address=lambda _dest: LOCAL,
        ids=lambda: f"id{next(counter)}",
        random_bytes=lambda n: b"\x01" * n,
        backoff_base=base,
        backoff_cap=cap,
    )


def respond(request: Request, status: int, *extra: str) -> Response:
    """The carrier's answer to `request` (the headers a registrar would echo)."""
    h = request.headers
    lines = [
        f"SIP/2.0 {status} Whatever",
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKx",
        f"From: {h.get('from')}",
        f"To: {h.get('to')};tag=reg",
        f"Call-ID: {request.call_id}",
        f"CSeq: {h.get('cseq')}",
        *extra,
        "Content-Length: 0",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Response)
    return message


CHALLENGE = 'WWW-Authenticate: Digest realm="carrier.example", nonce="n1", qop="auth"'


def first(reg: LineRegistration, now: float = T0) -> Request:
    reg.start(now)
    assert reg.next_deadline() == now
    out = reg.poll(now)
    assert out is not None
    request, destination = out
    assert destination == A
    return request


def test_register_request_shape_and_digest_answer() -> None:
    reg = make()
    request = first(reg)
    assert request.method == "REGISTER" and request.uri_text == "sip:carrier.example"
    h = request.headers
    assert h.get("to") == "<sip:5550100@carrier.example>"
    assert h.get("contact") == "<sip:sbxfeedface@198.51.100.7:5060>"
    assert h.get("expires") == "3600" and h.get("cseq") == "1 REGISTER"
    out = reg.on_response(respond(request, 401, CHALLENGE), T0 + 0.1)
    assert out is not None
    again, _ = out
    assert again.call_id == request.call_id and again.headers.get("cseq") == "2 REGISTER"
    auth = again.headers.get("authorization") or ""
    assert 'username="5550100"' in auth and 'realm="carrier.example"' in auth
    assert "nc=00000001" in auth


@pytest.mark.parametrize(("granted", "refresh"), [(10, 5.0), (3600, 3540.0), (100, 50.0)])
def test_refresh_deadline(granted: int, refresh: float) -> None:
    """Refresh at max(granted/2, granted-60): half-time for short grants, a minute early else."""
    reg = make()
    request = first(reg)
    now = T0 + 0.2
    assert reg.on_response(respond(request, 200, f"Contact: <sip:sbxfeedface@x>;expires={granted}"),
                           now) is None  # fmt: skip
    st = reg.status
    assert st.state == "registered" and st.expires_at == now + granted
    assert st.refresh_at == now + refresh and reg.next_deadline() == now + refresh
    assert reg.poll(now + refresh - 0.001) is None
    out = reg.poll(now + refresh)
    assert out is not None and out[0].headers.get("cseq") == "2 REGISTER"
    assert st.state == "registered"  # still registered while refreshing


def test_granted_from_expires_header_when_contact_has_none() -> None:
    reg = make()
    request = first(reg)
    reg.on_response(respond(request, 200, "Expires: 120"), T0)
    assert reg.status.expires_at == T0 + 120


def test_wrong_password_backs_off_doubling_to_the_cap() -> None:
    """A second challenge for an answered nonce = wrong credentials: no hammering. The retry
    comes at base, 2*base, 4*base ... capped, and never stops."""
    reg = make(base=60.0, cap=300.0)
    now = T0
    expected = [60.0, 120.0, 240.0, 300.0, 300.0]
    for delay in expected:
        request = first(reg, now) if now == T0 else reg.poll(now)[0]  # type: ignore[index]
        out = reg.on_response(respond(request, 401, CHALLENGE), now)
        assert out is not None  # answered once
        assert reg.on_response(respond(out[0], 401, CHALLENGE), now) is None
        st = reg.status
        assert st.state == "failed" and st.last_status == 403
        assert st.retry_at == now + delay and reg.next_deadline() == now + delay
        assert reg.poll(now + delay - 0.01) is None
        now += delay
    assert reg.status.failures == len(expected)


def test_403_backs_off_and_success_resets() -> None:
    reg = make(base=1.0, cap=8.0)
    request = first(reg)
    reg.on_response(respond(request, 403), T0)
    assert reg.status.retry_at == T0 + 1.0
    request = reg.poll(T0 + 1.0)[0]  # type: ignore[index]
    reg.on_response(respond(request, 403), T0 + 1.0)
    assert reg.status.retry_at == T0 + 3.0 and reg.status.failures == 2
    request = reg.poll(T0 + 3.0)[0]  # type: ignore[index]
    reg.on_response(respond(request, 200, "Expires: 60"), T0 + 3.0)
    assert reg.status.failures == 0 and reg.status.state == "registered"


def test_tries_within_a_window_follow_the_schedule() -> None:
    """What the carrier sees after a 403: in 60 s with base 2 s (cap 16 s) the tries are at
    0, 2, 6, 14, 30, 46 - six REGISTERs, not one per second."""
    reg = make(base=2.0, cap=16.0)
    sent = []
    now = T0
    reg.start(now)
    while now <= T0 + 60:
        out = reg.poll(now)
        if out is not None:
            sent.append(now - T0)
            reg.on_response(respond(out[0], 403), now)
        deadline = reg.next_deadline()
        assert deadline is not None
        now = deadline
    assert sent == [0.0, 2.0, 6.0, 14.0, 30.0, 46.0]


def test_423_retries_at_once_with_min_expires() -> None:
    reg = make()
    request = first(reg)
    out = reg.on_response(respond(request, 423, "Min-Expires: 7200"), T0)
    assert out is not None and out[0].headers.get("expires") == "7200"
    assert reg.expires == 7200


def test_503_fails_over_to_next_target_and_sticks() -> None:
    reg = make([A, B])
    request = first(reg)
    out = reg.on_response(respond(request, 503), T0)
    assert out is not None and out[1] == B  # RFC 3263 §4.3: the next target at once
    reg.on_response(respond(out[0], 200, "Expires: 100"), T0)
    assert reg.status.state == "registered" and reg.destination == B
    refresh = reg.poll(T0 + 50)
    assert refresh is not None and refresh[1] == B  # sticky


def test_503_on_last_target_honours_retry_after() -> None:
    reg = make([A])
    request = first(reg)
    assert reg.on_response(respond(request, 503, "Retry-After: 90"), T0) is None
    assert reg.status.retry_at == T0 + 90


def test_timeout_fails_over_then_backs_off() -> None:
    reg = make([A, B], base=10.0)
    first(reg)
    out = reg.on_failure(408, T0 + 32)
    assert out is not None and out[1] == B
    assert reg.on_failure(408, T0 + 64) is None
    assert reg.status.state == "failed" and reg.status.retry_at == T0 + 74
    assert reg.poll(T0 + 74)[1] == A  # type: ignore[index]  # back to the first target


def test_stop_unregisters_when_registered_only() -> None:
    reg = make()
    request = first(reg)
    reg.on_response(respond(request, 200, "Expires: 600"), T0)
    out = reg.stop(T0 + 1)
    assert out is not None and out[0].headers.get("expires") == "0"
    assert reg.status.state == "unregistering" and reg.next_deadline() is None
    reg.on_response(respond(out[0], 200), T0 + 1.1)
    assert reg.status.state == "disabled" and reg.status.expires_at is None
    idle = make()
    assert idle.stop(T0) is None and idle.status.state == "disabled"


def test_no_target_is_a_failure_with_backoff() -> None:
    reg = make([], base=5.0)
    reg.start(T0)
    assert reg.poll(T0) is None
    assert reg.status.state == "failed" and reg.status.retry_at == T0 + 5


def test_new_call_id_per_refresh_and_ims_empty_auth() -> None:
    reg = make(new_call_id=True, ims_empty_auth=True, auth_id_with_domain=True)
    request = first(reg)
    auth = request.headers.get("authorization") or ""
    assert 'username="5550100@carrier.example"' in auth and 'response=""' in auth
    reg.on_response(respond(request, 200, "Expires: 100"), T0)
    refresh = reg.poll(T0 + 50)
    assert refresh is not None and refresh[0].call_id != request.call_id
    assert refresh[0].headers.get("authorization") is None


def test_keepalive_loss_reregisters_to_the_next_target_keeping_the_binding() -> None:
    """A lost OPTIONS target: the binding stays `registered` while a REGISTER goes to the next
    target at once; a line in backoff or with a REGISTER in flight is left alone."""
    reg = make([A, B])
    reg.on_response(respond(first(reg), 200, "Expires: 600"), T0)
    out = reg.unreachable(T0 + 30)
    assert out is not None and out[1] == B
    assert reg.status.state == "registered" and reg.status.expires_at == T0 + 600
    assert reg.unreachable(T0 + 31) is None  # one in flight already
    reg.on_response(respond(out[0], 200, "Expires: 600"), T0 + 31)
    assert reg.destination == B and reg.current_target() == B

    failed = make([A], base=60.0)
    failed.on_response(respond(first(failed), 403), T0)
    assert failed.unreachable(T0 + 1) is None and failed.status.retry_at == T0 + 60


def test_register_now_clears_the_backoff() -> None:
    reg = make([A], base=60.0)
    reg.on_response(respond(first(reg), 403), T0)
    assert reg.status.failures == 1 and reg.status.retry_at == T0 + 60
    out = reg.register_now(T0 + 5)
    assert out is not None and out[1] == A and reg.status.failures == 0
    assert reg.status.state == "registering"
    assert reg.register_now(T0 + 6) is None  # already in flight


def test_line_keepalive_jitter_and_reachability() -> None:
    """OPTIONS at the jittered interval (+-10 %) to the given target, one in flight at a
    time; lost/resumed reported once per change."""
    import random

    from sipbox.pbx.lines.keepalive import LineKeepalive

    line = LineConfig(name="ct", domain="carrier.example", account="5550100", keepalive=30)
    ka = LineKeepalive(line, lambda: "id", random.Random(7))
    ka.start(T0)
    due = ka.next_deadline()
    assert due is not None and T0 + 27 <= due <= T0 + 33
    assert ka.poll(due - 0.1, A) is None
    options = ka.poll(due, A)
    assert options is not None and options.method == "OPTIONS"
    assert options.uri_text == "sip:carrier.example"
    assert ka.poll(due + 40, A) is None  # the first is still in flight
    assert ka.on_result(False, due + 3) == "lost" and ka.reachable is False
    assert ka.on_result(False, due + 40) is None
    assert ka.on_result(True, due + 70) == "resumed" and ka.reachable is True
