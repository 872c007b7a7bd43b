"""Endpoint: matching (§17.1.3, §17.2.3, RFC 2543), CANCEL (§9), bad input, §18.2 addressing,
transport failures, the transaction cap, a Hypothesis interleaving run and the purity check."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipbox.sip.address import Address, Peer
from sipbox.sip.events import (
    AckReceived,
    MessageDiscarded,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportError,
)
from sipbox.sip.message import Request, Response

from .test_transaction import (
    THEM,
    THEM_TCP,
    UDP_PEER,
    Link,
    answer,
    is_method,
    is_status,
    make_request,
    parsed,
    request_bytes,
    response_to,
    times_of,
)

NAT_PEER = Peer(Address("udp", "198.51.100.7", 40000), Address("udp", "203.0.113.1", 5060))


# == matching =====================================================================================
def test_cancel_is_matched_to_its_invite() -> None:
    link = Link()
    link.receive(request_bytes())
    (invite,) = link.take_events()
    assert isinstance(invite, RequestReceived)
    link.receive(request_bytes("CANCEL", cseq="1 CANCEL"))
    (cancel,) = link.take_events()
    assert isinstance(cancel, RequestReceived) and cancel.request.method == "CANCEL"
    assert cancel.cancelled == invite.transaction
    assert cancel.transaction != invite.transaction  # CANCEL is its own transaction
    # The TU answers the CANCEL and 487s the INVITE through their own transactions.
    link.send_response(answer(cancel.request, 200), cancel.transaction)
    link.send_response(answer(invite.request, 487), invite.transaction)
    sent = link.take_sent()
    assert times_of(sent, is_status(200)) and times_of(sent, is_status(487))
    # A retransmitted CANCEL gets the 200 again from the compact store.
    link.receive(request_bytes("CANCEL", cseq="1 CANCEL"))
    assert link.take_events() == []
    assert [parsed(o).status for _, o in link.take_sent()] == [200]  # type: ignore[union-attr]


def test_cancel_without_invite_has_no_target() -> None:
    link = Link()
    link.receive(request_bytes("CANCEL", cseq="1 CANCEL", branch="z9hG4bKnone"))
    (cancel,) = link.take_events()
    assert isinstance(cancel, RequestReceived) and cancel.cancelled is None


def test_cancel_with_other_sent_by_does_not_match() -> None:
    link = Link()
    link.receive(request_bytes())
    link.receive(request_bytes("CANCEL", cseq="1 CANCEL", via_host="192.0.2.99:5060"))
    events = link.take_events()
    assert isinstance(events[1], RequestReceived) and events[1].cancelled is None


def test_ack_for_2xx_goes_to_the_tu() -> None:
    link = Link()
    link.receive(request_bytes())
    (invite,) = link.take_events()
    assert isinstance(invite, RequestReceived)
    link.send_response(answer(invite.request, 200), invite.transaction)
    ack = request_bytes("ACK", branch="z9hG4bKack2", cseq="1 ACK", to="<sip:b@x>;tag=srv")
    link.receive(ack)
    (event,) = link.take_events()
    assert isinstance(event, AckReceived) and event.peer == UDP_PEER
    assert event.request.method == "ACK"


def test_rfc2543_request_without_cookie_is_matched() -> None:
    link = Link()
    old = request_bytes(branch="", rport=False)
    link.receive(old)
    (invite,) = link.take_events()
    assert isinstance(invite, RequestReceived)
    link.take_sent()
    link.receive(old)  # retransmission: the 100 again, no new event
    assert link.take_events() == []
    assert times_of(link.take_sent(), is_status(100)) == [0.0]
    link.send_response(answer(invite.request, 486), invite.transaction)
    ack = request_bytes("ACK", branch="", rport=False, cseq="1 ACK", to="<sip:b@x>;tag=srv")
    link.receive(ack)  # matches the INVITE transaction (Completed -> Confirmed)
    assert link.take_events() == []
    link.run_until(10)
    assert times_of(link.take_sent(), is_status(486)) == [0.0]  # ACK stopped Timer G
    # A different CSeq is a different transaction.
    link.receive(request_bytes(branch="", rport=False, cseq="2 INVITE"))
    assert [type(e) for e in link.take_events()] == [RequestReceived]


def test_rfc2543_branch_without_cookie_and_cancel() -> None:
    link = Link()
    link.receive(request_bytes(branch="oldbranch1"))
    (invite,) = link.take_events()
    link.receive(request_bytes("CANCEL", branch="oldbranch1", cseq="1 CANCEL"))
    (cancel,) = link.take_events()
    assert isinstance(invite, RequestReceived) and isinstance(cancel, RequestReceived)
    assert cancel.cancelled == invite.transaction


def test_responses_matched_by_branch_and_method() -> None:
    link = Link()
    invite_tx = link.send_request(make_request())
    invite = link.take_sent()[0][1].data
    link.at(0.1).receive(response_to(invite, 180))
    cancel_tx = link.ep.send_cancel(invite_tx, link.now)  # type: ignore[arg-type]
    link.pump()
    assert cancel_tx is not None and cancel_tx != invite_tx
    (cancel_out,) = [o for _, o in link.take_sent()]
    cancel = parsed(cancel_out)
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    original = parsed_request(invite)
    assert cancel.uri_text == original.uri_text
    assert cancel.headers.get_all("via") == original.headers.get_all("via")
    assert str(cancel.cseq) == "1 CANCEL"
    assert cancel.headers.get("to") == original.headers.get("to")
    # 200 for the CANCEL (same branch, CSeq method CANCEL) goes to the CANCEL transaction.
    link.at(0.2).receive(response_to(cancel_out.data, 200))
    link.at(0.3).receive(response_to(invite, 487))
    events = link.take_events()
    assert all(isinstance(e, ResponseReceived) for e in events)
    assert [(e.transaction, e.response.status) for e in events] == [  # type: ignore[union-attr]
        (invite_tx, 180),
        (cancel_tx, 200),
        (invite_tx, 487),
    ]


def parsed_request(data: bytes) -> Request:
    from sipbox.sip.parser import parse_message

    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def test_cancel_is_held_until_a_provisional_response() -> None:
    link = Link()
    invite_tx = link.send_request(make_request())
    invite = link.take_sent()[0][1].data
    cancel_tx = link.ep.send_cancel(invite_tx, 0.05, "SIP;cause=487")  # type: ignore[arg-type]
    link.pump()
    assert times_of(link.take_sent(), is_method("CANCEL")) == []
    link.at(0.2).receive(response_to(invite, 100))
    sent = link.take_sent()
    assert times_of(sent, is_method("CANCEL")) == [0.2]
    cancel = parsed(sent[0][1])
    assert cancel.headers.get("reason") == "SIP;cause=487"
    assert cancel_tx is not None
    # §9.1: no final response 64*T1 after the CANCEL -> the INVITE transaction gives up.
    link.run_until(0.2 + 32 - 0.01)
    assert not [e for e in link.take_events() if isinstance(e, TransactionTimedOut)]
    link.run_until(0.2 + 32)
    timeouts = [e for e in link.take_events() if isinstance(e, TransactionTimedOut)]
    assert {e.transaction for e in timeouts} == {cancel_tx, invite_tx}


def test_held_cancel_is_dropped_when_a_final_response_comes_first() -> None:
    link = Link()
    invite_tx = link.send_request(make_request())
    invite = link.take_sent()[0][1].data
    link.ep.send_cancel(invite_tx, 0.05)  # type: ignore[arg-type]
    link.at(0.3).receive(response_to(invite, 200))
    link.run_until(1)
    assert times_of(link.take_sent(), is_method("CANCEL")) == []
    assert link.ep.send_cancel(invite_tx, 1.0) is None  # type: ignore[arg-type]


def test_stray_responses() -> None:
    link = Link()
    stray = response_to(request_bytes("OPTIONS", branch="z9hG4bKstray"), 200)
    link.receive(stray)
    (event,) = link.take_events()
    assert isinstance(event, MessageDiscarded)
    late_ok = response_to(request_bytes(branch="z9hG4bKstray"), 200)
    link.receive(late_ok)
    (event,) = link.take_events()
    assert isinstance(event, ResponseReceived) and event.transaction is None
    link.receive(response_to(request_bytes(branch="z9hG4bKstray"), 180))
    assert isinstance(link.take_events()[0], MessageDiscarded)


def test_ack_for_2xx_is_sent_outside_transactions() -> None:
    link = Link()
    ack = make_request("ACK")
    link.ep.send_ack_2xx(ack, THEM)
    link.ep.send_ack_2xx(ack, THEM)  # same ACK again for a retransmitted 2xx
    sent = link.ep.datagrams_to_send()
    assert len(sent) == 2 and sent[0].data == sent[1].data
    assert b";branch=z9hG4bKx1;rport" in sent[0].data
    assert link.ep.transactions_live == 0


# == bad input ====================================================================================
def test_broken_cseq_gets_a_stateless_400_naming_cseq() -> None:
    link = Link()
    link.receive(request_bytes("OPTIONS", cseq="one OPTIONS"), NAT_PEER)
    ((_, out),) = link.take_sent()
    response = parsed(out)
    assert isinstance(response, Response)
    assert response.status == 400
    assert "CSeq" in response.reason
    assert response.headers.get("cseq") == "one OPTIONS"  # copied raw
    assert response.to.tag == "x1"
    assert out.destination == Address("udp", "198.51.100.7", 40000)  # received + rport
    (event,) = link.take_events()
    assert isinstance(event, MessageDiscarded) and event.status_hint == 400
    assert "CSeq" in event.reason
    assert link.ep.transactions_live == 0
    assert link.ep.stats.stateless_responses == 1


def test_bad_request_without_via_is_dropped() -> None:
    link = Link()
    link.receive(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n")
    assert link.take_sent() == []
    assert [type(e) for e in link.take_events()] == [MessageDiscarded]


def test_request_missing_from_to_call_id_still_gets_a_400() -> None:
    link = Link()
    link.receive(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n")
    ((_, out),) = link.take_sent()
    response = parsed(out)
    assert isinstance(response, Response) and response.status == 400
    assert "From" in response.reason
    assert [type(e) for e in link.take_events()] == [MessageDiscarded]


def test_bad_ack_is_never_answered() -> None:
    link = Link()
    link.receive(request_bytes("ACK", cseq="x ACK"))
    assert link.take_sent() == []
    assert [type(e) for e in link.take_events()] == [MessageDiscarded]


def test_unparseable_datagram_is_discarded() -> None:
    link = Link()
    link.receive(b"\x16\x03\x01 definitely not SIP")
    link.receive(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n")  # bad response: dropped
    events = link.take_events()
    assert [type(e) for e in events] == [MessageDiscarded, MessageDiscarded]
    assert link.take_sent() == []
    assert link.ep.stats.discarded == 2 and link.ep.stats.received == 2


def test_received_and_rport_are_filled() -> None:
    link = Link()
    link.receive(request_bytes("OPTIONS", via_host="10.0.0.5:5062"), NAT_PEER)
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    via = event.request.top_via
    assert via.params["received"] == "198.51.100.7"
    assert via.params["rport"] == "40000"
    link.send_response(answer(event.request, 200), event.transaction)
    ((_, out),) = link.take_sent()
    assert out.destination == Address("udp", "198.51.100.7", 40000)
    assert b"received=198.51.100.7;rport=40000" in out.data or b"rport=40000" in out.data


def test_response_destination_without_rport_uses_received_and_sent_by_port() -> None:
    link = Link(force_rport=False)
    link.receive(request_bytes("OPTIONS", via_host="10.0.0.5:5070", rport=False), NAT_PEER)
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    assert "rport" not in event.request.top_via.params
    link.send_response(answer(event.request, 200), event.transaction)
    ((_, out),) = link.take_sent()
    assert out.destination == Address("udp", "198.51.100.7", 5070)


def test_forged_received_is_removed_when_sent_by_is_the_source() -> None:
    link = Link()
    link.receive(request_bytes("OPTIONS", via_host="192.0.2.20:5060;received=6.6.6.6"))
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    assert "received" not in event.request.top_via.params
    link.send_response(answer(event.request, 200), event.transaction)
    assert link.take_sent()[0][1].destination == THEM


def test_stream_responses_reuse_the_connection() -> None:
    link = Link()
    peer = Peer(Address("tcp", "198.51.100.7", 50123), Address("tcp", "203.0.113.1", 5060), 42)
    link.receive(request_bytes("OPTIONS").replace(b"UDP", b"TCP"), peer)
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    link.send_response(answer(event.request, 200), event.transaction)
    ((_, out),) = link.take_sent()
    assert out.destination == peer.remote and out.connection_id == 42


def test_unknown_methods_reach_the_tu() -> None:
    link = Link()
    link.receive(request_bytes("FOOBAR"))
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived) and event.request.method == "FOOBAR"


# == transport failures, the cap ==================================================================
def test_transport_failed_with_data_fails_that_transaction() -> None:
    link = Link()
    tx = link.send_request(make_request("OPTIONS"))
    other = link.send_request(make_request("OPTIONS"), Address("udp", "192.0.2.99", 5060))
    sent = link.take_sent()
    link.ep.transport_failed(THEM, sent[0][1].data, 0.1)
    link.pump()
    (event,) = link.take_events()
    assert isinstance(event, TransportError) and event.transaction == tx and not event.server
    assert link.ep.transactions_live == 1
    assert other


def test_transport_failed_without_data_fails_every_client_to_that_destination() -> None:
    link = Link()
    a = link.send_request(make_request("OPTIONS"), THEM_TCP)
    b = link.send_request(make_request("INVITE"), THEM_TCP)
    link.send_request(make_request("OPTIONS"), THEM)
    link.ep.transport_failed(THEM_TCP, None, 0.1)
    link.pump()
    failed = {e.transaction for e in link.take_events() if isinstance(e, TransportError)}
    assert failed == {a, b}
    assert link.ep.transactions_live == 1


def test_transport_failed_for_a_response_fails_the_server_transaction() -> None:
    link = Link()
    link.receive(request_bytes())
    (invite,) = link.take_events()
    assert isinstance(invite, RequestReceived)
    link.send_response(answer(invite.request, 486), invite.transaction)
    data = link.take_sent()[-1][1].data
    link.ep.transport_failed(THEM, data, 0.1)
    link.pump()
    (event,) = link.take_events()
    assert isinstance(event, TransportError) and event.server
    assert link.ep.transactions_live == 0


def test_transaction_cap_answers_503_with_retry_after() -> None:
    link = Link(max_transactions=2, retry_after=7)
    link.receive(request_bytes("OPTIONS", branch="z9hG4bK1"))
    link.receive(request_bytes("OPTIONS", branch="z9hG4bK2"))
    link.take_sent()
    link.receive(request_bytes("OPTIONS", branch="z9hG4bK3"))
    ((_, out),) = link.take_sent()
    response = parsed(out)
    assert isinstance(response, Response) and response.status == 503
    assert response.headers.get("retry-after") == "7"
    assert len(link.take_events()) == 2
    assert link.ep.stats.overloaded == 1



def test_completed_transactions_do_not_count_against_the_cap() -> None:
    """A registration storm: answered requests leave compact entries (Timer J), not live
    transactions, so the cap of live transactions never turns them into 503s."""
    link = Link(max_transactions=2, max_compact=10)
    for n in range(5):
        link.receive(request_bytes("OPTIONS", branch=f"z9hG4bKs{n}"))
        (event,) = link.take_events()
        assert isinstance(event, RequestReceived)
        link.send_response(answer(event.request, 200), event.transaction)
    assert link.ep.stats.overloaded == 0
    assert link.ep.transactions_compact == 5


def test_full_compact_store_drops_the_entry_closest_to_expiry() -> None:
    link = Link(max_compact=2)
    for n in range(3):
        link.at(float(n))
        link.receive(request_bytes("OPTIONS", branch=f"z9hG4bKe{n}"))
        (event,) = link.take_events()
        assert isinstance(event, RequestReceived)
        link.send_response(answer(event.request, 200), event.transaction)
    assert link.ep.transactions_compact == 2
    assert link.ep.stats.evicted == 1
    link.take_sent()
    # The newest is still absorbed: its 200 is sent again, the TU sees nothing.
    link.receive(request_bytes("OPTIONS", branch="z9hG4bKe2"))
    assert link.take_events() == []
    ((_, out),) = link.take_sent()
    assert isinstance(parsed(out), Response)
    # The oldest was dropped: its retransmission is a new request for the TU.
    link.receive(request_bytes("OPTIONS", branch="z9hG4bKe0"))
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)

# == random interleavings =========================================================================
_inputs = st.lists(
    st.one_of(
        st.tuples(st.just("invite_in"), st.integers(0, 3)),
        st.tuples(st.just("options_in"), st.integers(0, 3)),
        st.tuples(st.just("cancel_in"), st.integers(0, 3)),
        st.tuples(st.just("ack_in"), st.integers(0, 3)),
        st.tuples(st.just("answer"), st.sampled_from([100, 180, 200, 404, 486, 503])),
        st.tuples(st.just("send"), st.sampled_from(["INVITE", "OPTIONS", "REGISTER"])),
        st.tuples(st.just("respond"), st.sampled_from([100, 180, 200, 200, 487, 603])),
        st.tuples(st.just("cancel"), st.integers(0, 5)),
        st.tuples(st.just("fail"), st.booleans()),
        st.tuples(st.just("garbage"), st.binary(max_size=60)),
        st.tuples(st.just("tick"), st.floats(0, 40, allow_nan=False)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs=_inputs, tcp=st.booleans())
def test_random_interleavings_are_handled_and_everything_ends(
    inputs: list[tuple[str, object]], tcp: bool
) -> None:
    link = Link(timer_c=20.0)
    destination = THEM_TCP if tcp else THEM
    pending: list[RequestReceived] = []
    clients: list[tuple[str, bytes]] = []
    for kind, arg in inputs:
        if kind == "invite_in":
            link.receive(request_bytes(branch=f"z9hG4bKi{arg}", call_id=f"c{arg}"))
        elif kind == "options_in":
            link.receive(request_bytes("OPTIONS", branch=f"z9hG4bKo{arg}"))
        elif kind == "cancel_in":
            link.receive(
                request_bytes("CANCEL", branch=f"z9hG4bKi{arg}", call_id=f"c{arg}", cseq="1 CANCEL")
            )
        elif kind == "ack_in":
            link.receive(
                request_bytes(
                    "ACK",
                    branch=f"z9hG4bKi{arg}",
                    call_id=f"c{arg}",
                    cseq="1 ACK",
                    to="<sip:b@x>;tag=srv",
                )
            )
        elif kind == "answer" and pending:
            event = pending[0]
            status = int(arg)  # type: ignore[call-overload]
            if event.request.method != "INVITE" and status == 180:
                status = 200
            try:
                link.send_response(answer(event.request, status), event.transaction)
            except Exception as exc:  # a second final response is the TU's bug
                from sipbox.sip.errors import LocalProtocolError

                assert isinstance(exc, LocalProtocolError)
            if status >= 200:
                pending.pop(0)
        elif kind == "send":
            tx = link.send_request(make_request(str(arg)), destination)
            clients.append((tx, link.take_sent()[-1][1].data))
        elif kind == "respond" and clients:
            tx, data = clients[-1]
            link.receive(response_to(data, int(arg)))  # type: ignore[call-overload]
        elif kind == "cancel" and clients:
            tx, _ = clients[int(arg) % len(clients)]  # type: ignore[call-overload]
            link.ep.send_cancel(tx, link.now)  # type: ignore[arg-type]
            link.pump()
        elif kind == "fail":
            link.ep.transport_failed(destination, None if arg else b"junk", link.now)
            link.pump()
        elif kind == "garbage":
            link.receive(bytes(arg))  # type: ignore[call-overload]
        elif kind == "tick":
            link.run_until(link.now + float(arg))  # type: ignore[arg-type]
        pending.extend(e for e in link.take_events() if isinstance(e, RequestReceived))
    # The TU answers everything still open, then nothing else happens.
    for event in pending:
        try:
            link.send_response(answer(event.request, 500), event.transaction)
        except Exception as exc:
            from sipbox.sip.errors import LocalProtocolError

            assert isinstance(exc, LocalProtocolError)
    # 64*T1 + T4, plus Timer D (32 s), the INVITE guard (20 s here) and the wheel resolution.
    link.run_until(link.now + 32 + 5 + 20 + 32 + 1)
    assert link.ep.transactions_live == 0
    assert link.ep.get_timer() is None


# == purity =======================================================================================
def test_importing_the_endpoint_loads_neither_asyncio_nor_socket() -> None:
    code = (
        "import sys, sipbox.sip.endpoint, sipbox.sip.ids; "
        "assert 'asyncio' not in sys.modules, 'asyncio'; "
        "assert 'socket' not in sys.modules, 'socket'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# == more edges ===================================================================================
def test_rfc2543_ack_for_2xx_passes_through_accepted() -> None:
    link = Link()
    link.receive(request_bytes(branch="", rport=False))
    (invite,) = link.take_events()
    assert isinstance(invite, RequestReceived)
    link.send_response(answer(invite.request, 200), invite.transaction)
    ack = request_bytes("ACK", branch="", rport=False, cseq="1 ACK", to="<sip:b@x>;tag=srv")
    link.receive(ack)  # RFC 2543 matching finds the Accepted INVITE transaction
    (event,) = link.take_events()
    assert isinstance(event, AckReceived) and event.peer == UDP_PEER


def test_request_with_broken_via_is_answered_to_its_source() -> None:
    link = Link()
    data = request_bytes("OPTIONS").replace(b"SIP/2.0/UDP 192.0.2.20:5060", b"SIP/2.0/UDP ???")
    link.receive(data, NAT_PEER)
    ((_, out),) = link.take_sent()
    assert out.destination == NAT_PEER.remote
    response = parsed(out)
    assert isinstance(response, Response) and response.status == 400
    assert "Via" in response.reason


def test_request_with_a_broken_header_line_is_dropped() -> None:
    link = Link()
    data = request_bytes("OPTIONS").replace(b"Max-Forwards: 70", b"Max Forwards 70")
    link.receive(data)
    assert link.take_sent() == []
    assert [type(e) for e in link.take_events()] == [MessageDiscarded]


def test_user_agent_names_our_responses() -> None:
    link = Link(user_agent="sipbox/1")
    link.receive(request_bytes())
    (invite,) = link.take_events()
    assert isinstance(invite, RequestReceived)
    link.send_response(answer(invite.request, 486), invite.transaction)
    sent = link.take_sent()
    assert all(b"\r\nServer: sipbox/1\r\n" in o.data for _, o in sent)
    invite_tx = link.send_request(make_request())
    link.ep.send_cancel(invite_tx, 0.0)  # type: ignore[arg-type]


def test_api_misuse_is_a_local_protocol_error() -> None:
    import pytest

    from sipbox.sip.errors import LocalProtocolError

    link = Link()
    with pytest.raises(LocalProtocolError):
        link.ep.send_request(make_request("ACK"), THEM, 0.0)
    with pytest.raises(LocalProtocolError):
        link.ep.send_request(make_request("CANCEL"), THEM, 0.0)
    with pytest.raises(LocalProtocolError):
        link.ep.send_ack_2xx(make_request("BYE"), THEM)
    duplicate = Link()
    duplicate.ep._id_source = lambda: "same"
    duplicate.ep.send_request(make_request("OPTIONS"), THEM, 0.0)
    with pytest.raises(LocalProtocolError):
        duplicate.ep.send_request(make_request("OPTIONS"), THEM, 0.0)


def test_send_stateless_and_stats() -> None:
    link = Link()
    link.ep.send_stateless(b"\r\n\r\n", THEM)
    link.ep.send_stateless(make_request("OPTIONS"), THEM, 3)
    out = link.ep.datagrams_to_send()
    assert [o.connection_id for o in out] == [None, 3]
    assert link.ep.stats.as_dict()["sent"] == 2


_valid = [
    request_bytes(),
    request_bytes("OPTIONS"),
    request_bytes("ACK", cseq="1 ACK"),
    request_bytes("CANCEL", cseq="1 CANCEL"),
    response_to(request_bytes(), 180),
    response_to(request_bytes("OPTIONS"), 200),
]


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(_valid),
    cuts=st.lists(st.tuples(st.integers(0, 400), st.binary(max_size=6)), max_size=4),
)
def test_mutated_messages_never_raise(base: bytes, cuts: list[tuple[int, bytes]]) -> None:
    link = Link()
    data = base
    for pos, chunk in cuts:
        pos %= len(data) + 1
        data = data[:pos] + chunk + data[pos + len(chunk) :]
    link.receive(data)
    link.receive(data)
    link.run_until(100)
    assert link.ep.transactions_live <= 1  # at most the request's server transaction, unanswered


def test_ack_reusing_the_invite_branch_in_accepted_reaches_the_tu_once() -> None:
    link = Link()
    link.receive(request_bytes())
    (invite,) = link.take_events()
    assert isinstance(invite, RequestReceived)
    link.send_response(answer(invite.request, 200), invite.transaction)
    link.receive(request_bytes("ACK", cseq="1 ACK", to="<sip:b@x>;tag=srv"))  # same branch
    (event,) = link.take_events()
    assert isinstance(event, AckReceived)
    link.receive(request_bytes("ACK", cseq="x ACK", to="<sip:b@x>;tag=srv"))  # broken: dropped
    assert [type(e) for e in link.take_events()] == [MessageDiscarded]
    assert link.take_sent()[-1][1].data.startswith(b"SIP/2.0 200")  # nothing sent for ACKs


def test_retransmission_fast_path_skips_the_header_check() -> None:
    link = Link()
    link.receive(request_bytes("OPTIONS"))
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    link.send_response(answer(event.request, 200), event.transaction)
    first = link.take_sent()
    # Same branch, sent-by and Call-ID: the same transaction, answered from the compact store
    # without checking the other headers.
    link.receive(request_bytes("OPTIONS", cseq="broken"))
    assert link.take_sent() == first and link.take_events() == []


def test_a_reused_branch_with_another_call_id_is_a_new_transaction() -> None:
    link = Link()
    link.receive(request_bytes("OPTIONS", call_id="first"))
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    link.send_response(answer(event.request, 416), event.transaction)
    link.receive(request_bytes("OPTIONS", call_id="second"))
    (again,) = link.take_events()
    assert isinstance(again, RequestReceived) and again.request.call_id == "second"


def test_refused_start_line_is_answered_from_the_partial_request() -> None:
    link = Link()
    link.receive(request_bytes("OPTIONS").replace(b" SIP/2.0\r\n", b" SIP/7.0\r\n", 1))
    ((_, out),) = link.take_sent()
    response = parsed(out)
    assert isinstance(response, Response) and response.status == 505
    assert response.call_id == "in-1@192.0.2.20"
    (event,) = link.take_events()
    assert isinstance(event, MessageDiscarded) and event.status_hint == 505
    link.receive(request_bytes("ACK", cseq="1 ACK").replace(b" SIP/2.0\r\n", b" SIP/7.0\r\n", 1))
    assert link.take_sent() == []


def test_force_rport_answers_to_the_source_port_by_default() -> None:
    link = Link()
    link.receive(request_bytes("OPTIONS", via_host="10.0.0.5:5070", rport=False), NAT_PEER)
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    assert event.request.top_via.params["rport"] == "40000"
    link.send_response(answer(event.request, 200), event.transaction)
    ((_, out),) = link.take_sent()
    assert out.destination == NAT_PEER.remote


# == stateless answers (out-of-dialog OPTIONS) ====================================================
def test_stateless_answer_creates_no_transaction_and_answers_retransmissions_again() -> None:
    link = Link()
    seen: list[str] = []

    def answer(request: Request, peer: Peer) -> bytes | None:
        seen.append(request.method)
        return b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"

    link.ep.answer_statelessly({"OPTIONS"}, answer)
    link.receive(request_bytes("OPTIONS"))
    assert link.take_events() == []  # the TU answered; no RequestReceived
    assert link.ep.transactions_live == 0 and link.ep.transactions_compact == 0
    (sent,) = link.take_sent()
    assert sent[1].data.startswith(b"SIP/2.0 200")
    assert sent[1].destination == Address("udp", "192.0.2.20", 5060)
    link.receive(request_bytes("OPTIONS"))  # a retransmission is simply answered again
    assert len(link.take_sent()) == 1 and seen == ["OPTIONS", "OPTIONS"]
    assert link.ep.stats.stateless_answers == 2


def test_stateless_answer_declined_or_in_dialog_goes_the_normal_way() -> None:
    link = Link()
    link.ep.answer_statelessly({"OPTIONS"}, lambda request, peer: None)
    link.receive(request_bytes("OPTIONS", branch="z9hG4bKdecl"))
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived) and link.ep.transactions_live == 1
    answered: list[str] = []
    link.ep.answer_statelessly({"OPTIONS"}, lambda request, peer: answered.append("x") or b"")
    link.receive(request_bytes("OPTIONS", branch="z9hG4bKdlg", to="<sip:bob@example.com>;tag=t1"))
    (event,) = link.take_events()  # in dialog (To tag): never stateless
    assert isinstance(event, RequestReceived) and answered == []
    link.receive(request_bytes("OPTIONS", branch="z9hG4bKdrop"))
    assert link.take_events() == [] and link.take_sent() == [] and answered == ["x"]


# == the received/rport fix written into the client's own Via text ===============================
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        [
            "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa",
            "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa;rport",
            "SIP/2.0/UDP 10.0.0.5:5062;rport;branch=z9hG4bKa",
            "SIP/2.0/UDP 10.0.0.5;RPORT;branch=z9hG4bKa",
            "SIP/2.0/UDP 10.0.0.5;rportx;branch=z9hG4bKa;rport",
            "SIP/2.0/UDP 10.0.0.5;rport;rport=7;branch=z9hG4bKa",
            "SIP/2.0/UDP 10.0.0.5;rport=5062;branch=z9hG4bKa",
            "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKa;received=1.1.1.1",
            "SIP/2.0/UDP 10.0.0.5 ; rport ; branch=z9hG4bKa",
            "SIP/2.0/UDP [2001:db8::5]:5062;branch=z9hG4bKa;rport",
            'SIP/2.0/UDP 10.0.0.5;x="q;rport;";branch=z9hG4bKa',
        ]
    ),
    st.sampled_from(["10.0.0.5", "198.51.100.7", "2001:db8::5"]),
    st.sampled_from([5062, 40000]),
    st.booleans(),
)
def test_fixed_via_text_parses_to_the_fixed_via(
    text: str, source: str, port: int, force_rport: bool
) -> None:
    from sipbox.sip.endpoint import _fix_via_value, _fixed_via_text
    from sipbox.sip.headers import parse_via

    via = parse_via(text)
    peer = Peer(Address("udp", source, port), Address("udp", "203.0.113.1", 5060))
    fixed = _fix_via_value(via, peer, force_rport)
    written = _fixed_via_text(text, via, fixed)
    if written is None:
        return  # the caller serializes `fixed` instead
    again = parse_via(written)
    assert again == fixed, written
    assert list(again.params.items()) == list(fixed.params.items()), written


def test_the_usual_via_fix_keeps_the_clients_text() -> None:
    """rport filled where the client wrote it, received appended, and the rest as written (a
    lower-case transport: the serialized Via would say UDP)."""
    link = Link()
    data = request_bytes("OPTIONS", branch="z9hG4bKkeep").replace(b"/UDP 192.", b"/udp 192.")
    link.receive(data, NAT_PEER)
    (event,) = link.take_events()
    assert isinstance(event, RequestReceived)
    assert event.request.headers.first("via") == (
        "SIP/2.0/udp 192.0.2.20:5060;branch=z9hG4bKkeep;rport=40000;received=198.51.100.7"
    )
