"""The four transaction machines (RFC 3261 §17, RFC 6026) driven through the Endpoint with a
fake link and an explicit clock: retransmission and timeout instants are asserted exactly."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sipbox.sip.address import Address, Peer
from sipbox.sip.endpoint import Endpoint
from sipbox.sip.events import (
    AckReceived,
    Event,
    MessageDiscarded,
    Outgoing,
    RequestReceived,
    ResponseReceived,
    ServerTransactionTimedOut,
    TransactionTimedOut,
)
from sipbox.sip.headers import Headers
from sipbox.sip.ids import counter_id_source
from sipbox.sip.message import Request, Response
from sipbox.sip.parser import parse_message
from sipbox.sip.transaction import (
    INVITE_CLIENT,
    INVITE_SERVER,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    Input,
    State,
    TimerConfig,
)

T1, T2, T4 = 0.5, 4.0, 5.0
ME = "203.0.113.1"
THEM = Address("udp", "192.0.2.20", 5060)
THEM_TCP = Address("tcp", "192.0.2.20", 5060)
UDP_PEER = Peer(THEM, Address("udp", ME, 5060))
TCP_PEER = Peer(THEM_TCP, Address("tcp", ME, 5060), connection_id=7)


def local_address(destination: Address) -> Address:
    return Address(destination.transport, ME, 5060)


class Link:
    """A fake network: collects what the endpoint sends, with the time it was sent."""

    def __init__(self, **options: object) -> None:
        self.ep = Endpoint(
            id_source=counter_id_source("x"),
            local_address=local_address,
            **options,  # type: ignore[arg-type]
        )
        self.sent: list[tuple[float, Outgoing]] = []
        self.events: list[Event] = []
        self.now = 0.0

    def pump(self) -> None:
        self.sent.extend((self.now, o) for o in self.ep.datagrams_to_send())
        while (event := self.ep.next_event()) is not None:
            self.events.append(event)

    def at(self, now: float) -> Link:
        """Advance to `now`, firing every timer due on the way at its exact deadline."""
        self.run_until(now)
        self.now = now
        return self

    def run_until(self, end: float) -> None:
        while (deadline := self.ep.get_timer()) is not None and deadline <= end:
            self.now = max(self.now, deadline)
            self.ep.handle_timer(deadline)
            self.pump()
        self.now = max(self.now, end)

    def receive(self, data: bytes, peer: Peer = UDP_PEER) -> None:
        self.ep.receive(data, peer, self.now)
        self.pump()

    def send_request(self, request: Request, destination: Address = THEM) -> str:
        tx = self.ep.send_request(request, destination, self.now)
        self.pump()
        return tx

    def send_response(self, response: Response, transaction: str | None = None) -> None:
        self.ep.send_response(response, self.now, transaction)  # type: ignore[arg-type]
        self.pump()

    def take_sent(self) -> list[tuple[float, Outgoing]]:
        out, self.sent = self.sent, []
        return out

    def take_events(self) -> list[Event]:
        out, self.events = self.events, []
        return out


def make_request(method: str = "INVITE", *, routes: tuple[str, ...] = ()) -> Request:
    headers = Headers()
    for route in routes:
        headers.add("Route", route)
    headers.add("From", "<sip:alice@example.com>;tag=ftag")
    headers.add("To", "<sip:bob@example.com>")
    headers.add("Call-ID", "call-1@example.com")
    headers.add("CSeq", f"1 {method}")
    headers.add("Contact", f"<sip:alice@{ME}>")
    return Request(method, "sip:bob@192.0.2.20", headers)


def response_to(data: bytes, status: int, to_tag: str | None = "ttag") -> bytes:
    """What the far end answers to the request in `data` (§8.2.6)."""
    request = parse_message(data)
    assert isinstance(request, Request)
    headers = Headers()
    for via in request.headers.get_all("via"):
        headers.add("Via", via)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        assert value is not None
        if name == "To" and to_tag and status > 100:
            value += f";tag={to_tag}"
        headers.add(name, value)
    return Response(status, None, headers).to_bytes()


def request_bytes(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bKabc",
    via_host: str = "192.0.2.20:5060",
    cseq: str | None = None,
    to: str = "<sip:bob@example.com>",
    call_id: str = "in-1@192.0.2.20",
    rport: bool = True,
    extra: str = "",
) -> bytes:
    via_params = f";branch={branch}" if branch else ""
    if rport:
        via_params += ";rport"
    text = (
        f"{method} sip:bob@{ME} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host}{via_params}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:carol@example.org>;tag=c1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq or '1 ' + method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    )
    return text.encode()


def parsed(out: Outgoing) -> Request | Response:
    message = parse_message(out.data)
    assert isinstance(message, Request | Response)
    return message


def times_of(sent: list[tuple[float, Outgoing]], pred: Callable[[Outgoing], bool]) -> list[float]:
    return [t for t, o in sent if pred(o)]


def is_method(method: str) -> Callable[[Outgoing], bool]:
    return lambda o: o.data.startswith(method.encode() + b" ")


def is_status(status: int) -> Callable[[Outgoing], bool]:
    return lambda o: o.data.startswith(f"SIP/2.0 {status} ".encode())


# == the tables themselves ========================================================================
@pytest.mark.parametrize(
    "table", [INVITE_CLIENT, NON_INVITE_CLIENT, INVITE_SERVER, NON_INVITE_SERVER]
)
def test_tables_terminated_is_final_and_every_timeout_has_a_row(table: dict) -> None:  # type: ignore[type-arg]
    states = {s for s, _ in table} | {t.state for t in table.values()}
    assert not any(s is State.TERMINATED for s, _ in table)  # nothing leaves Terminated
    for state in states - {State.TERMINATED}:
        # every state but the ones entered by creation ends through a timer or a message
        reachable = [i for s, i in table if s is state]
        assert reachable, state


def test_timer_config_durations() -> None:
    config = TimerConfig(T1, T2, T4)
    assert config.timeout == 32.0
    assert config.linger("D", False) == 32.0 and config.linger("D", True) == 0.0
    assert config.linger("K", False) == T4 and config.linger("K", True) == 0.0
    assert config.linger("I", False) == T4 and config.linger("J", False) == 32.0
    assert config.linger("J", True) == 0.0
    assert config.linger("M", True) == 32.0 and config.linger("L", True) == 32.0
    with pytest.raises(ValueError):
        TimerConfig(5.0, 4.0)


# == INVITE client ================================================================================
def test_invite_client_udp_timer_a_doubles_and_timer_b_times_out() -> None:
    link = Link()
    tx = link.send_request(make_request())
    link.run_until(100)
    sent = link.take_sent()
    assert times_of(sent, is_method("INVITE")) == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(o.destination == THEM for _, o in sent)
    (event,) = link.take_events()
    assert isinstance(event, TransactionTimedOut) and event.transaction == tx
    assert event.request.method == "INVITE"
    assert link.ep.stats.retransmissions == 6
    assert link.ep.transactions_live == 0
    assert link.ep.get_timer() is None


def test_invite_client_timer_b_fires_exactly_at_64_t1() -> None:
    link = Link()
    link.send_request(make_request())
    link.run_until(31.999)
    assert link.take_events() == []
    link.run_until(32.0)
    assert [type(e) for e in link.take_events()] == [TransactionTimedOut]


def test_invite_client_custom_t1() -> None:
    link = Link(t1=0.25)
    link.send_request(make_request())
    link.run_until(100)
    assert times_of(link.take_sent(), is_method("INVITE")) == [
        0.0, 0.25, 0.75, 1.75, 3.75, 7.75, 15.75,
    ]  # fmt: skip
    assert isinstance(link.take_events()[0], TransactionTimedOut)
    assert link.now == 100


def test_invite_client_tcp_never_retransmits() -> None:
    link = Link()
    link.send_request(make_request(), THEM_TCP)
    link.run_until(100)
    sent = link.take_sent()
    assert times_of(sent, is_method("INVITE")) == [0.0]
    assert b"Via: SIP/2.0/TCP 203.0.113.1:5060;branch=z9hG4bKx1;rport\r\n" in sent[0][1].data
    assert [type(e) for e in link.take_events()] == [TransactionTimedOut]


def test_invite_client_request_gets_via_max_forwards_and_content_length() -> None:
    link = Link(user_agent="sipbox/test")
    link.send_request(make_request())
    ((_, out),) = link.take_sent()
    request = parsed(out)
    assert isinstance(request, Request)
    assert request.top_via.branch == "z9hG4bKx1"
    assert request.top_via.params.get("rport", "missing") is None
    assert request.max_forwards == 70
    assert request.headers.get("content-length") == "0"
    assert request.headers.get("user-agent") == "sipbox/test"


def test_invite_client_provisional_stops_timer_a() -> None:
    link = Link()
    tx = link.send_request(make_request())
    invite = link.sent[0][1].data
    link.at(0.7).receive(response_to(invite, 180))
    (event,) = link.take_events()
    assert isinstance(event, ResponseReceived) and event.transaction == tx
    assert event.response.status == 180 and event.peer == UDP_PEER
    link.run_until(60)
    assert times_of(link.take_sent(), is_method("INVITE")) == [0.0, 0.5]
    assert link.take_events() == []  # no Timer B in Proceeding
    assert link.ep.transactions_live == 1


def test_invite_client_guard_timer_c_ends_proceeding() -> None:
    link = Link(timer_c=100.0)
    tx = link.send_request(make_request())
    invite = link.sent[0][1].data
    link.at(1).receive(response_to(invite, 180))
    link.at(50).receive(response_to(invite, 183))  # restarts the guard
    link.take_events()
    link.run_until(149.9)
    assert link.take_events() == []
    link.run_until(150)
    (event,) = link.take_events()
    assert isinstance(event, TransactionTimedOut) and event.transaction == tx
    assert link.ep.transactions_live == 0


def test_invite_client_non_2xx_final_generates_ack_and_absorbs_retransmissions() -> None:
    link = Link()
    request = make_request(routes=("<sip:proxy1.example.com;lr>", "<sip:proxy2.example.com;lr>"))
    tx = link.send_request(request)
    invite = link.take_sent()[0][1].data
    busy = response_to(invite, 486)
    link.at(0.2).receive(busy)
    (event,) = link.take_events()
    assert isinstance(event, ResponseReceived) and event.transaction == tx
    assert event.response.status == 486
    ((when, out),) = link.take_sent()
    assert when == 0.2 and out.destination == THEM
    ack = parsed(out)
    original = parse_message(invite)
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert isinstance(original, Request) and ack.uri_text == original.uri_text
    assert ack.headers.get_all("via") == [original.headers.get("via")]
    assert ack.top_via.branch == "z9hG4bKx1"
    assert ack.call_id == "call-1@example.com"
    assert ack.from_.tag == "ftag"
    assert ack.to.tag == "ttag"
    assert str(ack.cseq) == "1 ACK"
    assert ack.headers.get_all("route") == [
        "<sip:proxy1.example.com;lr>",
        "<sip:proxy2.example.com;lr>",
    ]
    assert ack.max_forwards == 70
    # Completed: the retransmitted 486 is absorbed and the ACK sent again; no event.
    assert link.ep.transactions_compact == 1
    link.at(1.0).receive(busy)
    assert link.take_events() == []
    ((_, again),) = link.take_sent()
    assert again.data == out.data
    # Timer D (32 s over UDP): gone afterwards, no retransmission of the INVITE meanwhile.
    link.run_until(0.2 + 32 - 0.01)
    assert link.ep.transactions_live == 1
    link.run_until(0.2 + 32 + 0.125)
    assert link.ep.transactions_live == 0
    assert link.take_sent() == []
    # After D the 486 is a stray.
    link.receive(busy)
    assert isinstance(link.take_events()[0], MessageDiscarded)


def test_invite_client_timer_d_is_zero_over_tcp() -> None:
    link = Link()
    link.send_request(make_request(), THEM_TCP)
    invite = link.take_sent()[0][1].data
    link.at(0.2).receive(response_to(invite, 603), TCP_PEER)
    assert [type(e) for e in link.take_events()] == [ResponseReceived]
    assert [o.data[:4] for _, o in link.take_sent()] == [b"ACK "]
    assert link.ep.transactions_live == 0


def test_invite_client_2xx_accepted_delivers_retransmissions_then_timer_m() -> None:
    link = Link()
    tx = link.send_request(make_request())
    invite = link.take_sent()[0][1].data
    ok = response_to(invite, 200)
    link.at(0.3).receive(ok)
    link.at(0.8).receive(ok)
    link.at(2.0).receive(response_to(invite, 180))  # absorbed in Accepted
    events = link.take_events()
    assert [(type(e), e.transaction) for e in events] == [  # type: ignore[union-attr]
        (ResponseReceived, tx),
        (ResponseReceived, tx),
    ]
    assert link.take_sent() == []  # no ACK for 2xx from the transaction, no retransmission
    link.run_until(0.3 + 32 - 0.001)
    assert link.ep.transactions_live == 1
    link.run_until(0.3 + 32)
    assert link.ep.transactions_live == 0
    assert link.take_events() == []
    link.receive(ok)  # after Timer M: passed up with no transaction, for the TU to re-ACK
    (event,) = link.take_events()
    assert isinstance(event, ResponseReceived) and event.transaction is None


# == non-INVITE client ============================================================================
def test_non_invite_client_timer_e_capped_at_t2_and_timer_f() -> None:
    link = Link()
    tx = link.send_request(make_request("OPTIONS"))
    link.run_until(100)
    times = times_of(link.take_sent(), is_method("OPTIONS"))
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    (event,) = link.take_events()
    assert isinstance(event, TransactionTimedOut) and event.transaction == tx
    assert link.ep.transactions_live == 0


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    link = Link()
    link.send_request(make_request("REGISTER"))
    register = link.sent[0][1].data
    link.at(0.7).receive(response_to(register, 100))
    assert [type(e) for e in link.take_events()] == [ResponseReceived]
    link.run_until(40)
    times = times_of(link.take_sent(), is_method("REGISTER"))
    # E was pending at 1.5 (interval 2*T1) when the 100 arrived; then every T2.
    assert times == [0.0, 0.5, 1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert [type(e) for e in link.take_events()] == [TransactionTimedOut]  # F at 32


def test_non_invite_client_final_then_timer_k() -> None:
    link = Link()
    tx = link.send_request(make_request("OPTIONS"))
    options = link.sent[0][1].data
    ok = response_to(options, 200)
    link.at(0.6).receive(ok)
    (event,) = link.take_events()
    assert isinstance(event, ResponseReceived) and event.transaction == tx
    link.at(1.0).receive(ok)  # absorbed (Completed)
    link.at(1.1).receive(response_to(options, 404))
    assert link.take_events() == []
    assert link.ep.transactions_compact == 1
    link.run_until(0.6 + T4 - 0.01)
    assert link.ep.transactions_live == 1
    link.run_until(0.6 + T4 + 0.125)
    assert link.ep.transactions_live == 0
    assert times_of(link.take_sent(), is_method("OPTIONS")) == [0.0, 0.5]


def test_non_invite_client_timer_k_zero_over_tcp() -> None:
    link = Link()
    link.send_request(make_request("OPTIONS"), THEM_TCP)
    options = link.sent[0][1].data
    link.at(0.1).receive(response_to(options, 200), TCP_PEER)
    assert link.ep.transactions_live == 0


# == INVITE server ================================================================================
def test_invite_server_sends_100_trying_at_once() -> None:
    link = Link()
    link.receive(request_bytes())
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived) and event.request.method == "INVITE"
    ((when, out),) = link.take_sent()
    assert when == 0.0 and out.destination == THEM
    trying = parsed(out)
    assert isinstance(trying, Response) and trying.status == 100
    assert trying.to.tag is None
    assert trying.top_via.params.get("rport") == "5060"
    assert trying.call_id == "in-1@192.0.2.20" and str(trying.cseq) == "1 INVITE"
    assert trying.from_.tag == "c1"


def test_invite_server_without_100_trying() -> None:
    link = Link(send_100_trying=False)
    link.receive(request_bytes())
    assert link.take_sent() == []
    link.receive(request_bytes())  # retransmission: nothing to resend yet
    assert link.take_sent() == [] and len(link.take_events()) == 1


def answer(request: Request, status: int, to_tag: str = "srv") -> Response:
    headers = Headers()
    for via in request.headers.get_all("via"):
        headers.add("Via", via)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        assert value is not None
        if name == "To" and status > 100 and to_tag:
            value += f";tag={to_tag}"
        headers.add(name, value)
    return Response(status, None, headers)


def test_invite_server_retransmission_resends_last_response() -> None:
    link = Link()
    link.receive(request_bytes())
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    link.at(0.2).send_response(answer(event.request, 180), event.transaction)
    ringing = link.take_sent()[-1][1].data
    link.at(0.4).receive(request_bytes())
    assert link.take_events() == []
    ((_, again),) = link.take_sent()
    assert again.data == ringing


def test_invite_server_non_2xx_timer_g_until_ack_then_timer_i() -> None:
    link = Link()
    link.receive(request_bytes())
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    link.take_sent()
    link.at(1.0).send_response(answer(event.request, 486))  # matched by Via, no id given
    link.run_until(1.0 + 20)
    times = times_of(link.take_sent(), is_status(486))
    assert times == [1.0, 1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5]
    ack = request_bytes("ACK", cseq="1 ACK", to="<sip:bob@example.com>;tag=srv")
    link.at(21.0).receive(ack)
    assert link.take_events() == []  # absorbed: Completed -> Confirmed
    assert link.ep.transactions_compact == 1
    link.run_until(40)
    assert times_of(link.take_sent(), is_status(486)) == []  # G stopped
    link.receive(ack)  # a late ACK after Timer I: no transaction -> passed up
    assert [type(e) for e in link.take_events()] == [AckReceived]
    assert link.ep.transactions_live == 0


def test_invite_server_ack_in_confirmed_is_absorbed_until_timer_i() -> None:
    link = Link()
    link.receive(request_bytes())
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    link.at(0.1).send_response(answer(event.request, 404), event.transaction)
    ack = request_bytes("ACK", cseq="1 ACK", to="<sip:bob@example.com>;tag=srv")
    link.at(0.2).receive(ack)
    link.at(0.3).receive(ack)
    link.at(0.4).receive(request_bytes())  # late INVITE copy: absorbed in Confirmed
    assert link.take_events() == []
    link.run_until(0.2 + T4 - 0.01)
    assert link.ep.transactions_live == 1
    link.run_until(0.2 + T4 + 0.125)
    assert link.ep.transactions_live == 0


def test_invite_server_timer_h_reports_missing_ack() -> None:
    link = Link()
    link.receive(request_bytes())
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    link.at(2.0).send_response(answer(event.request, 480), event.transaction)
    link.run_until(2.0 + 32 - 0.001)
    assert link.take_events() == []
    link.run_until(2.0 + 32)
    (timeout,) = link.take_events()
    assert isinstance(timeout, ServerTransactionTimedOut)
    assert timeout.transaction == event.transaction and timeout.timer == "H"
    assert link.ep.transactions_live == 0


def test_invite_server_tcp_no_timer_g() -> None:
    link = Link()
    link.receive(request_bytes(), TCP_PEER)
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    link.at(1.0).send_response(answer(event.request, 486), event.transaction)
    link.run_until(31)
    sent = link.take_sent()
    assert times_of(sent, is_status(486)) == [1.0]
    assert all(o.destination == THEM_TCP and o.connection_id == 7 for _, o in sent)
    ack = request_bytes("ACK", cseq="1 ACK", to="<sip:bob@example.com>;tag=srv")
    link.at(31).receive(ack, TCP_PEER)
    assert link.ep.transactions_live == 0  # Timer I is zero on a stream


def test_invite_server_2xx_accepted_timer_l() -> None:
    link = Link()
    link.receive(request_bytes())
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    link.take_sent()
    ok = answer(event.request, 200)
    link.at(0.5).send_response(ok, event.transaction)
    link.at(0.7).receive(request_bytes())  # INVITE retransmission: absorbed in Accepted
    assert link.take_events() == []
    assert times_of(link.take_sent(), is_status(200)) == [0.5]
    link.at(1.5).send_response(ok, event.transaction)  # the UAS core's 2xx retransmission
    assert times_of(link.take_sent(), is_status(200)) == [1.5]
    link.run_until(40)
    assert link.take_sent() == []  # the transaction never retransmits 2xx itself
    ack = request_bytes("ACK", branch="z9hG4bKnewack", cseq="1 ACK", to="<sip:b@x>;tag=srv")
    link.receive(ack)
    assert [type(e) for e in link.take_events()] == [AckReceived]
    assert link.ep.transactions_live == 0
    link.send_response(ok, event.transaction)  # after Timer L: sent statelessly via Via
    ((_, out),) = link.take_sent()
    assert out.destination == THEM


def test_invite_server_rejects_a_second_final_response() -> None:
    from sipbox.sip.errors import LocalProtocolError

    link = Link()
    link.receive(request_bytes())
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    link.send_response(answer(event.request, 486), event.transaction)
    with pytest.raises(LocalProtocolError):
        link.send_response(answer(event.request, 200), event.transaction)


# == non-INVITE server ============================================================================
def test_non_invite_server_retransmission_from_compact_store_and_timer_j() -> None:
    link = Link()
    link.receive(request_bytes("OPTIONS"))
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    assert link.take_sent() == []  # no 100 Trying for non-INVITE
    link.at(0.1).send_response(answer(event.request, 200), event.transaction)
    ((_, first),) = link.take_sent()
    assert link.ep.transactions_compact == 1 and link.ep.transactions_live == 1
    link.at(3.0).receive(request_bytes("OPTIONS"))
    assert link.take_events() == []
    ((_, again),) = link.take_sent()
    assert again == first
    link.run_until(0.1 + 32 - 0.01)
    assert link.ep.transactions_live == 1
    link.run_until(0.1 + 32 + 0.125)
    assert link.ep.transactions_live == 0
    link.receive(request_bytes("OPTIONS"))  # after J: a new transaction
    assert [type(e) for e in link.take_events()] == [RequestReceived]


def test_non_invite_server_provisional_then_final() -> None:
    link = Link()
    link.receive(request_bytes("REGISTER"))
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    link.receive(request_bytes("REGISTER"))  # Trying: nothing to resend, absorbed
    assert link.take_sent() == []
    link.send_response(answer(event.request, 100), event.transaction)
    link.receive(request_bytes("REGISTER"))
    assert times_of(link.take_sent(), is_status(100)) == [0.0, 0.0]
    link.send_response(answer(event.request, 401), event.transaction)
    assert times_of(link.take_sent(), is_status(401)) == [0.0]


def test_non_invite_server_timer_j_zero_over_tcp() -> None:
    link = Link()
    link.receive(request_bytes("OPTIONS"), TCP_PEER)
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    link.send_response(answer(event.request, 200), event.transaction)
    assert link.ep.transactions_live == 0


def test_non_invite_server_guard_when_the_tu_never_answers() -> None:
    link = Link()
    link.receive(request_bytes("OPTIONS"))
    (event,) = link.take_events()
    link.run_until(40)
    (timeout,) = link.take_events()
    assert isinstance(timeout, ServerTransactionTimedOut) and timeout.timer == "guard"
    assert isinstance(event, RequestReceived) and timeout.transaction == event.transaction
    assert link.ep.transactions_live == 0


def test_many_completed_non_invite_transactions_expire_in_batches() -> None:
    link = Link()
    for i in range(2000):
        link.now = i * 0.001
        link.ep.receive(request_bytes("OPTIONS", branch=f"z9hG4bK{i}"), UDP_PEER, link.now)
        event = link.ep.next_event()
        assert isinstance(event, RequestReceived)
        link.ep.send_response(answer(event.request, 200), link.now, event.transaction)
    assert link.ep.transactions_compact == 2000
    link.ep.datagrams_to_send()
    deadline = link.ep.get_timer()
    assert deadline is not None and 32.0 <= deadline <= 32.125
    link.run_until(2.0 + 32.125)
    assert link.ep.transactions_live == 0
    assert link.ep.get_timer() is None


def test_unknown_table_pair_is_absorbed() -> None:
    assert (State.COMPLETED, Input.RESPONSE_1XX) not in INVITE_CLIENT
    assert (State.ACCEPTED, Input.REQUEST) not in INVITE_SERVER
