"""The B2BUA against a fake port with explicit time: set-up, forking, header policy, offer/
answer, in-dialog relaying, failures, limits and call records."""

from __future__ import annotations

from sipbox.sip.address import Address, Peer
from sipbox.sip.message import Response
from tests.pbx.callkit import CALLER, SDP, SDP_B, SERVER, make_kit, user


def answered_call(kit, dialed="1002", **kw):
    invite = kit.invite(dialed, **kw)
    kit.send(invite)
    legs = kit.b_requests()
    tx, leg_invite, _ = legs[-1]
    ok = kit.reply(tx, 200, body=SDP_B)
    a_ok = kit.a_responses(invite.call_id)[-1]
    return invite, tx, leg_invite, ok, a_ok


def test_forks_to_every_contact_and_relays_ringing_per_leg():
    kit = make_kit({"1002": 2})
    invite = kit.invite()
    kit.send(invite)
    legs = kit.b_requests()
    assert [str(d) for _, _, d in legs] == ["udp:203.0.113.9:5070", "udp:203.0.113.9:5071"]
    assert [r.uri_text for _, r, _ in legs] == [
        "sip:1002@203.0.113.9:5070",
        "sip:1002@203.0.113.9:5071",
    ]
    kit.reply(legs[0][0], 180)
    kit.reply(legs[1][0], 183, body=SDP_B)
    ringing, progress = kit.a_responses(invite.call_id)
    assert (ringing.status, progress.status) == (180, 183)
    # one early dialog per device: distinct To tags towards the caller
    assert ringing.to.tag != progress.to.tag
    assert progress.body == SDP_B  # early media passes unchanged
    assert progress.headers.get("content-type") == "application/sdp"


def test_answer_acks_b_leg_cancels_others_and_relays_200():
    kit = make_kit({"1002": 2})
    invite = kit.invite()
    kit.send(invite)
    (tx1, _, _), (tx2, leg2, _) = kit.b_requests()
    kit.reply(tx1, 180)
    ok = kit.reply(tx2, 200, body=SDP_B)
    # the B leg is ACKed at once (the caller's INVITE had the offer)
    [(ack, dest, _)] = kit.port.acks
    assert ack.method == "ACK" and ack.cseq.seq == 1 and ack.call_id == leg2.call_id
    assert ack.to.tag == ok.to.tag and str(dest) == "udp:203.0.113.9:5071"
    # the other leg is cancelled, "completed elsewhere" (RFC 3326)
    assert kit.port.cancels == [(tx1, 'SIP;cause=200;text="Call completed elsewhere"')]
    a_ok = kit.a_responses(invite.call_id)[-1]
    assert a_ok.status == 200 and a_ok.body == SDP_B
    assert a_ok.headers.get("contact") == "<sip:1002@192.0.2.10:5060>"
    cdr = kit.last_cdr()
    assert cdr.answer_time is not None and cdr.end_time is None
    assert cdr.b_call_id == leg2.call_id and cdr.destination.startswith("1002 sip:1002@")


def test_header_policy_nothing_leaks_across_legs():
    kit = make_kit({"1002": 1})
    invite = kit.invite(max_forwards=12)
    kit.send(invite)
    [(_, leg, _)] = kit.b_requests()
    h = leg.headers
    assert leg.call_id != invite.call_id
    assert "via" not in h  # the endpoint adds our own
    assert "record-route" not in h and "route" not in h
    assert h.get("contact") == "<sip:1001@192.0.2.10:5060>"
    assert h.get("max-forwards") == "11"
    assert h.get("p-asserted-identity") == '"User 1001" <sip:1001@pbx.test>'
    assert h.count("p-asserted-identity") == 1 and "p-preferred-identity" not in h
    assert "x-secret" not in h
    assert h.get("subject") == "hello"
    assert "supported" not in h  # 100rel/timer/replaces are not carried (not supported)
    assert leg.from_.tag and leg.from_.tag != invite.from_.tag
    assert str(leg.to.uri) == "sip:1002@pbx.test" and leg.to.tag is None
    assert leg.body == SDP


def test_bye_from_caller_ends_both_legs_and_completes_cdr():
    kit = make_kit({"1002": 1})
    invite, _tx, leg, ok, a_ok = answered_call(kit)
    kit.ack_from_a(invite, a_ok)
    kit.advance(5)
    kit.in_dialog_from_a(invite, a_ok, "BYE", 11, extra="Reason: Q.850;cause=16")
    assert kit.port.responses[-1].status == 200 and kit.port.responses[-1].cseq.method == "BYE"
    bye = kit.b_requests("BYE")[-1][1]
    assert bye.call_id == leg.call_id and bye.to.tag == ok.to.tag
    assert bye.headers.get("reason") == "Q.850;cause=16"
    assert bye.cseq.seq == 2
    cdr = kit.last_cdr()
    assert (cdr.disposition, cdr.hangup_by, cdr.status) == ("answered", "caller", 200)
    assert cdr.billable == 5 and cdr.duration == 5
    assert kit.b2bua.calls == {}
    assert kit.b2bua.active_calls("1001") == 0


def test_bye_from_callee_goes_to_caller_source_address():
    kit = make_kit({"1002": 1})
    invite, _tx, leg, ok, a_ok = answered_call(kit)
    kit.ack_from_a(invite, a_ok)
    kit.request_from_b(leg, ok, "BYE", 1)
    _tx_bye, bye, dest = kit.b_requests("BYE")[-1]
    assert bye.call_id == invite.call_id
    assert bye.uri_text == "sip:1001@198.51.100.7:5062"  # the caller's Contact
    assert dest == CALLER  # sent to its source (NAT), the flow the call came on
    assert bye.to.tag == invite.from_.tag and bye.from_.tag == a_ok.to.tag
    # the A dialog's Record-Route became its route set (§12.1.1)
    assert bye.headers.get("route") == "<sip:proxy.example;lr>"
    assert kit.last_cdr().hangup_by == "callee"


def test_delayed_offer_ack_carries_callers_answer_and_is_resent():
    kit = make_kit({"1002": 1})
    invite = kit.invite(body=b"")
    kit.send(invite)
    [(tx, leg, _)] = kit.b_requests()
    assert leg.body == b""
    ok = kit.reply(tx, 200, body=SDP_B)  # the offer
    assert kit.port.acks == []  # waits for the caller's answer
    a_ok = kit.a_responses(invite.call_id)[-1]
    assert a_ok.body == SDP_B
    kit.retransmit_2xx(ok, tx)  # a retransmission before the answer: nothing to send yet
    assert kit.port.acks == []
    kit.ack_from_a(invite, a_ok, body=SDP)
    [(ack, _, data)] = kit.port.acks
    assert ack.body == SDP and ack.headers.get("content-type") == "application/sdp"
    kit.retransmit_2xx(ok, tx)
    kit.retransmit_2xx(ok, None)  # after the transaction ended
    assert [a[2] for a in kit.port.acks] == [data, data, data]


def test_2xx_to_caller_retransmitted_until_ack_then_ack_timeout_tears_down():
    kit = make_kit({"1002": 1})
    invite, _tx, leg, _ok, _a_ok = answered_call(kit)
    sent = lambda: [r for r in kit.a_responses(invite.call_id) if r.status == 200]  # noqa: E731
    assert len(sent()) == 1
    kit.advance(0.5)
    kit.advance(1.0)
    kit.advance(2.0)
    assert len(sent()) == 4  # T1, 2*T1, 4*T1 (§13.3.1.4)
    kit.advance(40)  # 64*T1 without ACK: the caller is gone
    byes = kit.b_requests("BYE")
    assert {b[1].call_id for b in byes} == {invite.call_id, leg.call_id}
    assert kit.last_cdr().hangup_by == "system"
    assert kit.b2bua.calls == {}


def test_ack_stops_retransmissions():
    kit = make_kit({"1002": 1})
    invite, _tx, _leg, _ok, a_ok = answered_call(kit)
    kit.ack_from_a(invite, a_ok)
    kit.advance(10)
    assert len([r for r in kit.a_responses(invite.call_id) if r.status == 200]) == 1
    kit.advance(60)
    assert kit.b_requests("BYE") == []


def test_failures_are_mapped():
    cases = [
        ([486, 486], 486, "busy"),
        ([486, 480], 486, "busy"),
        ([603, 486], 603, "rejected"),
        ([480, 408], 480, "failed"),
        ([404, 500], 404, "failed"),
    ]
    for statuses, final, disposition in cases:
        kit = make_kit({"1002": 2})
        invite = kit.invite()
        kit.send(invite)
        for (tx, _, _), status in zip(kit.b_requests(), statuses, strict=True):
            kit.reply(tx, status)
        assert kit.a_statuses(invite.call_id)[-1] == final, statuses
        assert kit.last_cdr().disposition == disposition
        assert kit.b2bua.calls == {}


def test_reason_header_relayed_on_failure():
    kit = make_kit({"1002": 1})
    invite = kit.invite()
    kit.send(invite)
    [(tx, _, _)] = kit.b_requests()
    kit.reply(tx, 603, extra=[("Reason", "Q.850;cause=21"), ("X-Phone", "secret")])
    final = kit.a_responses(invite.call_id)[-1]
    assert final.status == 603 and final.headers.get("reason") == "Q.850;cause=21"
    assert "x-phone" not in final.headers


def test_unknown_offline_and_max_calls():
    kit = make_kit({"1002": 1}, users={
        "1001": user("1001", max_calls=1), "1002": user("1002"), "1004": user("1004"),
        "1005": user("1005", max_calls=1),
    })  # fmt: skip
    kit.contacts["1005"] = kit.contacts["1002"]
    invite = kit.invite("7777")
    kit.send(invite)
    assert kit.a_statuses(invite.call_id) == [404]
    assert kit.last_cdr().disposition == "failed" and kit.last_cdr().status == 404
    invite = kit.invite("1004")
    kit.send(invite)
    assert kit.a_statuses(invite.call_id) == [480]
    first = kit.invite("1002")
    kit.send(first)  # 1001 is now in one call, its maximum
    second = kit.invite("1002")
    kit.send(second)
    assert kit.a_statuses(second.call_id) == [486]
    # a callee at its maximum is busy too
    kit.send(kit.invite("1005", caller="1002"))
    third = kit.invite("1005", caller="1004")
    kit.send(third)
    assert kit.a_statuses(third.call_id) == [486]


def test_ring_timeout_cancels_and_answers_480():
    kit = make_kit({"1002": 2}, users={"1001": user("1001"), "1002": user("1002", ring_timeout=5)})
    invite = kit.invite()
    kit.send(invite)
    (tx1, _, _), (tx2, _, _) = kit.b_requests()
    kit.reply(tx1, 180)
    kit.advance(4.9)
    assert kit.port.cancels == []
    kit.advance(0.2)
    assert sorted(t for t, _ in kit.port.cancels) == [tx1, tx2]
    assert all(reason is None for _, reason in kit.port.cancels)
    assert kit.a_statuses(invite.call_id)[-1] == 480
    assert kit.last_cdr().disposition == "no-answer"
    kit.reply(tx1, 487)
    kit.reply(tx2, 487)
    assert kit.b2bua.calls == {}


def test_redirect_followed_to_local_user_with_loop_guard():
    kit = make_kit({"1002": 1, "1003": 1})
    invite = kit.invite()
    kit.send(invite)
    [(tx, _, _)] = kit.b_requests()
    kit.reply(tx, 302, contact="sip:1003@pbx.test")
    legs = kit.b_requests()
    assert len(legs) == 2 and legs[1][1].uri_text == "sip:1003@203.0.113.9:5070"
    # 1003 redirects back to 1002, already visited: not followed, the call fails
    kit.reply(legs[1][0], 302, contact="sip:1002@pbx.test")
    assert len(kit.b_requests()) == 2
    assert kit.a_statuses(invite.call_id)[-1] == 480


def test_reinvite_from_callee_relayed_and_glare_491():
    kit = make_kit({"1002": 1})
    invite, _tx, leg, ok, a_ok = answered_call(kit)
    kit.ack_from_a(invite, a_ok)
    hold = SDP_B.replace(b"m=audio", b"a=sendonly\r\nm=audio")
    reinvite = kit.request_from_b(leg, ok, "INVITE", 2, body=hold)
    tx_a, to_a, dest = kit.b_requests("INVITE")[-1]
    assert to_a.call_id == invite.call_id and to_a.body == hold and dest == CALLER
    assert to_a.headers.get("contact") == "<sip:1002@192.0.2.10:5060>"
    # the caller sends its own re-INVITE meanwhile: 491 (§14.1)
    kit.in_dialog_from_a(invite, a_ok, "INVITE", 11, body=SDP)
    assert kit.port.responses[-1].status == 491
    # the caller answers ours: relayed to the callee, the caller's 2xx is ACKed at once
    kit.reply(tx_a, 200, body=SDP, contact="sip:1001@198.51.100.7:5062")
    relayed = kit.port.responses[-1]
    assert relayed.status == 200 and relayed.call_id == reinvite.call_id and relayed.body == SDP
    ack = kit.port.acks[-1][0]
    assert ack.call_id == invite.call_id and ack.cseq.seq == to_a.cseq.seq
    # the callee ACKs: consumed here
    acks_before = len(kit.port.acks)
    from sipbox.sip.events import AckReceived
    from sipbox.sip.parser import parse_message

    raw = (
        f"ACK sip:1001@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.9:5070;branch=z9hG4bKx\r\n"
        f"From: {reinvite.headers.get('from')}\r\nTo: {reinvite.headers.get('to')}\r\n"
        f"Call-ID: {reinvite.call_id}\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    callee = Peer(Address("udp", "203.0.113.9", 5070), SERVER)
    kit.b2bua.on_ack(AckReceived(parse_message(raw), callee))
    assert len(kit.port.acks) == acks_before


def test_info_update_message_relayed_both_ways():
    kit = make_kit({"1002": 1})
    invite, _tx, leg, ok, a_ok = answered_call(kit)
    kit.ack_from_a(invite, a_ok)
    info = kit.in_dialog_from_a(
        invite, a_ok, "INFO", 11, extra="Content-Type: application/dtmf-relay"
    )
    tx_info, out, _ = kit.b_requests("INFO")[-1]
    assert out.call_id == leg.call_id and out.cseq.seq == 2
    kit.reply(tx_info, 200)
    assert kit.port.responses[-1].call_id == info.call_id
    assert kit.port.responses[-1].status == 200
    kit.request_from_b(leg, ok, "MESSAGE", 5)
    tx_msg, msg, _ = kit.b_requests("MESSAGE")[-1]
    assert msg.call_id == invite.call_id
    kit.reply(tx_msg, 202)
    assert kit.port.responses[-1].status == 202
    # an out-of-order CSeq from the caller: 500 (§12.2.2)
    kit.in_dialog_from_a(invite, a_ok, "INFO", 5)
    assert kit.port.responses[-1].status == 500


def test_in_dialog_481_or_timeout_tears_the_call_down():
    kit = make_kit({"1002": 1})
    invite, _tx, leg, _ok, a_ok = answered_call(kit)
    kit.ack_from_a(invite, a_ok)
    kit.in_dialog_from_a(invite, a_ok, "INFO", 11)
    tx_info = kit.b_requests("INFO")[-1][0]
    kit.timeout(tx_info)
    assert kit.port.responses[-1].status == 408
    assert {b[1].call_id for b in kit.b_requests("BYE")} == {invite.call_id, leg.call_id}
    assert kit.b2bua.calls == {}


def test_unknown_dialog_481():
    kit = make_kit()
    invite = kit.invite()
    kit.send(invite)
    fake_ok = Response(200)
    fake_ok.headers.add("To", "<sip:1002@pbx.test>;tag=nope")
    kit.in_dialog_from_a(invite, fake_ok, "BYE", 11)
    assert kit.port.responses[-1].status == 481


def test_max_duration():
    kit = make_kit({"1002": 1}, max_duration=60)
    invite, _tx, _leg, _ok, a_ok = answered_call(kit)
    kit.ack_from_a(invite, a_ok)
    kit.advance(59)
    assert kit.b_requests("BYE") == []
    kit.advance(2)
    assert len(kit.b_requests("BYE")) == 2
    assert kit.last_cdr().hangup_by == "system" and kit.last_cdr().billable == 61


def test_admin_hangup():
    kit = make_kit({"1002": 1})
    _invite, _tx, _leg, _ok, _a_ok = answered_call(kit)
    [call_id] = kit.b2bua.calls
    assert kit.b2bua.hangup(call_id)
    assert len(kit.b_requests("BYE")) == 2
    assert not kit.b2bua.hangup(call_id)
    ringing = kit.invite()
    kit.send(ringing)
    [call_id] = kit.b2bua.calls
    assert kit.b2bua.hangup(call_id)
    assert kit.a_statuses(ringing.call_id)[-1] == 480
