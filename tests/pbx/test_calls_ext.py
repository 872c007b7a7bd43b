"""The B2BUA's extensions against a fake port with explicit time: 100rel/PRACK per leg
(RFC 3262), session timers (RFC 4028), REFER blind/attended and INVITE with Replaces
(RFC 3515/3891), early-dialog UPDATE/INFO, page-mode MESSAGE and SUBSCRIBE -> 489."""

from __future__ import annotations

from sipbox.pbx.calls.extensions import SUPPORTED_TAGS, CallExtensions
from sipbox.sip.address import Address
from sipbox.sip.message import Request
from sipbox.sip.parser import parse_message
from tests.pbx.callkit import CALLER, DOMAIN, SDP, SDP_B, SERVER, Kit, make_kit

B_ADDR = Address("udp", "203.0.113.9", 5070)


def ext_kit(contacts=None, *, session_expires: int = 0, min_se: int = 90, **kw) -> Kit:
    kit = make_kit(contacts or {"1002": 1, "1003": 1}, **kw)
    ext = CallExtensions(kit.b2bua, session_expires=session_expires, min_se=min_se)
    kit.dispatcher.supported |= SUPPORTED_TAGS
    for method in ("PRACK", "REFER"):
        kit.dispatcher.on_request(method, kit.b2bua.on_in_dialog)
    kit.dispatcher.on_request("MESSAGE", ext.messages.on_message)
    kit.dispatcher.on_request("SUBSCRIBE", ext.messages.on_subscribe)
    return kit


def invite(kit: Kit, dialed="1002", *, supported="replaces, 100rel, timer", extra="",
           body: bytes = SDP, caller: str = "1001") -> Request:  # fmt: skip
    request = kit.invite(dialed, extra=extra, body=body, caller=caller)
    data = request.to_bytes().replace(
        b"Supported: replaces, 100rel, timer", f"Supported: {supported}".encode()
    )
    parsed = parse_message(data)
    assert isinstance(parsed, Request)
    return parsed


def raw(lines: list[str], body: bytes = b"", content_type: str | None = None) -> Request:
    if body and content_type:
        lines = [*lines, f"Content-Type: {content_type}"]
    text = "\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n"
    request = parse_message(text.encode() + body)
    assert isinstance(request, Request)
    return request


def from_a(kit: Kit, inv: Request, to: str, method: str, cseq: int, *extra: str,
           body: bytes = b"", content_type: str | None = None) -> Request:  # fmt: skip
    request = raw(
        [
            f"{method} sip:1002@{SERVER.hostport()} SIP/2.0",
            f"Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKx{cseq}{method};rport",
            f"From: {inv.headers.get('from')}",
            f"To: {to}",
            f"Call-ID: {inv.call_id}",
            f"CSeq: {cseq} {method}",
            "Max-Forwards: 70",
            "Contact: <sip:1001@198.51.100.7:5062>",
            *extra,
        ],
        body,
        content_type,
    )
    kit.send(request)
    return request


def responses(kit: Kit, method: str, call_id: str | None = None):
    return [
        r for r in kit.port.responses
        if r.cseq.method == method and (call_id is None or r.call_id == call_id)
    ]  # fmt: skip


def answered(kit: Kit, dialed="1002", *, b_extra=None, **kw):
    inv = invite(kit, dialed, **kw)
    kit.send(inv)
    tx, leg, _ = kit.b_requests()[-1]
    ok = kit.reply(tx, 200, body=SDP_B, extra=b_extra)
    a_ok = kit.a_responses(inv.call_id)[-1]
    kit.ack_from_a(inv, a_ok)
    return inv, tx, leg, ok, a_ok


# == 100rel / PRACK ================================================================================
def test_b_leg_offers_100rel_timer_replaces():
    kit = ext_kit(session_expires=1800)
    kit.send(invite(kit))
    [(_, leg, _)] = kit.b_requests()
    assert leg.headers.get("supported") == "100rel, replaces, timer"
    assert leg.headers.get("session-expires") == "1800"
    assert leg.headers.get("min-se") == "90"
    kit2 = ext_kit()
    kit2.send(invite(kit2, body=b""))  # delayed offer: no 100rel towards the callee
    assert kit2.b_requests()[0][1].headers.get("supported") == "replaces"


def test_reliable_183_pracked_on_b_and_sent_reliably_to_a_until_prack():
    kit = ext_kit()
    inv = invite(kit)
    kit.send(inv)
    [(tx, leg, _)] = kit.b_requests()
    rel = [("Require", "100rel"), ("RSeq", "7")]
    kit.reply(tx, 183, body=SDP_B, extra=rel)
    [(_, prack, dest)] = kit.b_requests("PRACK")
    assert prack.headers.get("rack") == "7 1 INVITE" and dest == Address("udp", "203.0.113.9", 5070)
    assert prack.call_id == leg.call_id and prack.cseq.seq == 2 and prack.to.tag == "bt-tx1"
    [p183] = kit.a_responses(inv.call_id)
    assert p183.headers.get("require") == "100rel" and p183.body == SDP_B
    rseq = int(p183.headers.get("rseq"))
    assert 1 <= rseq < 2**31
    # retransmissions: T1, then doubling (0.5, 1, 2 ...) exactly
    times = []
    for _ in range(40):
        kit.advance(0.25)
        if len(kit.a_responses(inv.call_id)) > len(times) + 1:
            times.append(kit.port.t - 1000.0)
    assert times[:3] == [0.5, 1.5, 3.5]
    # the callee's retransmission of its 183 is neither PRACKed nor relayed again
    sent = len(kit.a_responses(inv.call_id))
    kit.reply(tx, 183, body=SDP_B, extra=rel)
    assert len(kit.b_requests("PRACK")) == 1 and len(kit.a_responses(inv.call_id)) == sent
    # a wrong RAck gets 481; the right one 200 and retransmission stops
    from_a(kit, inv, p183.headers.get("to"), "PRACK", 11, f"RAck: {rseq + 5} 10 INVITE")
    assert responses(kit, "PRACK")[-1].status == 481
    from_a(kit, inv, p183.headers.get("to"), "PRACK", 12, f"RAck: {rseq} 10 INVITE")
    assert responses(kit, "PRACK")[-1].status == 200
    kit.advance(10)
    assert len(kit.a_responses(inv.call_id)) == sent
    # the 2xx: the caller already has the answer (reliably): not repeated; CSeq continues
    kit.reply(tx, 200)
    a_ok = kit.a_responses(inv.call_id)[-1]
    assert a_ok.status == 200 and a_ok.body == b""
    kit.ack_from_a(inv, a_ok)
    kit.in_dialog_from_a(inv, a_ok, "BYE", 20)
    assert kit.b_requests("BYE")[-1][1].cseq.seq == 3  # after INVITE 1 and PRACK 2


def test_caller_without_100rel_gets_unreliable_1xx_and_the_early_answer_in_the_2xx():
    kit = ext_kit()
    inv = invite(kit, supported="replaces")
    kit.send(inv)
    [(tx, _, _)] = kit.b_requests()
    kit.reply(tx, 183, body=SDP_B, extra=[("Require", "100rel"), ("RSeq", "1")])
    [p183] = kit.a_responses(inv.call_id)
    assert "require" not in p183.headers and "rseq" not in p183.headers
    assert len(kit.b_requests("PRACK")) == 1
    kit.reply(tx, 200)  # RFC 3262: the answer is not repeated in the callee's 2xx
    a_ok = kit.a_responses(inv.call_id)[-1]
    assert a_ok.status == 200 and a_ok.body == SDP_B


def test_no_prack_for_64_t1_rejects_the_invite_with_500():
    kit = ext_kit(ring_timeout=60)
    inv = invite(kit, supported="replaces", extra="Require: 100rel")
    kit.send(inv)
    [(tx, _, _)] = kit.b_requests()
    kit.reply(tx, 180)  # unreliable from the callee, reliable to a caller that requires it
    assert kit.a_responses(inv.call_id)[0].headers.get("require") == "100rel"
    kit.advance(31.9)
    assert kit.a_statuses(inv.call_id)[-1] == 180
    kit.advance(0.1)  # 64*T1 = 32 s
    assert kit.a_statuses(inv.call_id)[-1] == 500
    assert kit.port.cancels and kit.last_cdr().status == 500


def test_second_reliable_1xx_waits_for_the_prack_of_the_first():
    kit = ext_kit()
    inv = invite(kit, extra="Require: 100rel")
    kit.send(inv)
    [(tx, _, _)] = kit.b_requests()
    kit.reply(tx, 180)
    kit.reply(tx, 183, body=SDP_B)
    first = kit.a_responses(inv.call_id)
    assert [r.status for r in first] == [180]
    rseq = int(first[0].headers.get("rseq"))
    from_a(kit, inv, first[0].headers.get("to"), "PRACK", 11, f"RAck: {rseq} 10 INVITE")
    second = kit.a_responses(inv.call_id)[-1]
    assert second.status == 183 and int(second.headers.get("rseq")) == rseq + 1


# == early-dialog requests =========================================================================
def test_update_and_info_before_answer_go_to_the_leg_of_that_early_dialog():
    kit = ext_kit({"1002": 2})
    inv = invite(kit)
    kit.send(inv)
    (tx1, leg1, _), (tx2, leg2, _) = kit.b_requests()
    kit.reply(tx1, 180)
    kit.reply(tx2, 183, body=SDP_B)
    r180, r183 = kit.a_responses(inv.call_id)
    from_a(kit, inv, r183.headers.get("to"), "INFO", 11, body=b"Signal=5\r\n",
           content_type="application/dtmf-relay")  # fmt: skip
    [(info_tx, info, dest)] = kit.b_requests("INFO")
    assert info.call_id == leg2.call_id and info.to.tag == "bt-tx2" and dest.port == 5071
    assert info.body == b"Signal=5\r\n" and info.cseq.seq == 2
    kit.reply(info_tx, 200)
    assert responses(kit, "INFO")[-1].status == 200
    from_a(kit, inv, r180.headers.get("to"), "UPDATE", 12, body=SDP, content_type="application/sdp")
    [(up_tx, update, _)] = kit.b_requests("UPDATE")
    assert update.call_id == leg1.call_id and update.body == SDP
    kit.reply(up_tx, 200, body=SDP_B)
    ok = responses(kit, "UPDATE")[-1]
    assert ok.status == 200 and ok.body == SDP_B and ok.headers.get("contact")


# == session timers ================================================================================
def test_session_expires_below_min_se_gets_422():
    kit = ext_kit(session_expires=1800, min_se=120)
    inv = invite(kit, extra="Session-Expires: 100")
    kit.send(inv)
    [r] = kit.a_responses(inv.call_id)
    assert r.status == 422 and r.headers.get("min-se") == "120"
    assert kit.b_requests() == []


def test_callee_422_is_retried_with_the_larger_min_se():
    kit = ext_kit(session_expires=300, min_se=90)
    kit.send(invite(kit))
    [(tx, first, _)] = kit.b_requests()
    kit.reply(tx, 422, extra=[("Min-SE", "600")])
    [_, (_, retry, _)] = kit.b_requests()
    assert retry.cseq.seq == 2 and retry.call_id == first.call_id
    assert retry.headers.get("session-expires") == "600" and retry.headers.get("min-se") == "600"


def test_we_refresh_a_callee_without_timer_support_at_half_the_interval():
    kit = ext_kit(session_expires=120, min_se=90)
    inv, _tx, leg, _ok, a_ok = answered(kit, b_extra=[("Allow", "INVITE, ACK, BYE, UPDATE")])
    # caller supports timers and did not choose: it refreshes its own leg (refresher=uac)
    assert a_ok.headers.get("session-expires") == "120;refresher=uac"
    assert a_ok.headers.get("require") == "timer"
    kit.advance(50)  # the caller refreshes its own leg (answered here, not relayed)
    from_a(kit, inv, a_ok.headers.get("to"), "UPDATE", 11, "Session-Expires: 120;refresher=uac",
           "Supported: timer")  # fmt: skip
    kit.advance(9.5)
    assert kit.b_requests("UPDATE") == []
    kit.advance(0.5)
    [(utx, update, dest)] = kit.b_requests("UPDATE")
    assert update.call_id == leg.call_id and update.body == b"" and dest == B_ADDR
    assert update.headers.get("session-expires") == "120;refresher=uac"
    kit.reply(utx, 200)
    kit.advance(59.5)
    assert len(kit.b_requests("UPDATE")) == 1
    kit.advance(0.5)
    assert len(kit.b_requests("UPDATE")) == 2


def test_refresh_by_reinvite_repeats_the_sdp_and_failure_tears_down():
    kit = ext_kit(session_expires=120, min_se=90)
    _inv, _tx, leg, _ok, _a_ok = answered(kit)  # no Allow: UPDATE from the callee
    kit.advance(60)
    [(_, _first, _), (rtx, reinvite, _)] = kit.b_requests()
    assert reinvite.call_id == leg.call_id and reinvite.body == SDP  # what we sent it last
    kit.reply(rtx, 500)
    byes = kit.b_requests("BYE")
    assert len(byes) == 2  # both legs
    assert byes[0][1].headers.get("reason") == 'SIP;cause=408;text="Session expired"'
    assert kit.last_cdr().hangup_by == "session-timer"


def test_caller_that_never_refreshes_is_hung_up_before_expiry():
    kit = ext_kit(session_expires=120, min_se=90)
    inv, *_ = answered(kit, extra="Session-Expires: 90;refresher=uac")
    a_ok = kit.a_responses(inv.call_id)[-1]
    assert a_ok.headers.get("session-expires") == "90;refresher=uac"
    kit.advance(59.9)  # 90 - min(32, 90/3) = 60
    assert kit.b_requests("BYE") == []
    kit.advance(0.1)
    assert len(kit.b_requests("BYE")) == 2
    cdr = kit.last_cdr()
    assert cdr.hangup_by == "session-timer" and cdr.disposition == "answered"


def test_bodiless_update_from_caller_is_answered_here_and_restarts_its_timer():
    kit = ext_kit(session_expires=120, min_se=90)
    inv, _tx, _leg, _ok, a_ok = answered(kit, extra="Session-Expires: 90;refresher=uac")
    kit.advance(50)
    from_a(kit, inv, a_ok.headers.get("to"), "UPDATE", 11, "Session-Expires: 90;refresher=uac",
           "Supported: timer")  # fmt: skip
    r = responses(kit, "UPDATE")[-1]
    assert r.status == 200 and r.headers.get("session-expires") == "90;refresher=uac"
    assert r.headers.get("require") == "timer"
    assert kit.b_requests("UPDATE") == []  # not relayed
    kit.advance(59.9)
    assert kit.b_requests("BYE") == []
    kit.advance(0.1)
    assert len(kit.b_requests("BYE")) == 2


# == REFER =========================================================================================
def refer_from_b(kit: Kit, leg: Request, ok, refer_to: str, cseq: int = 1) -> Request:
    return kit.request_from_b(leg, ok, "REFER", cseq, extra=f"Refer-To: {refer_to}\r\n"
                              "Referred-By: <sip:1002@pbx.test>")  # fmt: skip


def notifies(kit: Kit, call_id: str) -> list[tuple[str, Request]]:
    return [
        (t, r) for t, r, _ in kit.port.requests if r.method == "NOTIFY" and r.call_id == call_id
    ]


def test_blind_transfer_by_the_callee():
    kit = ext_kit()
    inv, _tx, leg, ok, a_ok = answered(kit)
    refer_from_b(kit, leg, ok, f"<sip:1003@{DOMAIN}>")
    assert responses(kit, "REFER")[-1].status == 202
    [(ntx, n1)] = notifies(kit, leg.call_id)
    assert n1.headers.get("event") == "refer"
    assert n1.headers.get("subscription-state") == "active;expires=60"
    assert n1.headers.get("content-type") == "message/sipfrag;version=2.0"
    assert n1.body == b"SIP/2.0 100 Trying\r\n"
    kit.reply(ntx, 200)
    # the B2BUA calls 1003 on behalf of the transferee (1001), without SDP (RFC 3725)
    new_tx, new_inv, _dest = kit.b_requests()[-1]
    assert new_inv.uri_text == "sip:1003@203.0.113.9:5070" and new_inv.body == b""
    assert new_inv.from_.uri.user == "1001"
    assert new_inv.headers.get("referred-by") == "<sip:1002@pbx.test>"
    kit.reply(new_tx, 180)
    kit.reply(new_tx, 200, body=SDP_B, contact="sip:1003@203.0.113.9:5070")
    # the transferee gets a re-INVITE with 1003's offer
    rtx, reinvite, rdest = kit.b_requests()[-1]
    assert reinvite.call_id == inv.call_id and reinvite.body == SDP_B and rdest == CALLER
    kit.reply(rtx, 200, body=SDP)
    acks = [a for a, _, _ in kit.port.acks]
    assert acks[-2].call_id == inv.call_id and acks[-2].body == b""
    assert acks[-1].call_id == new_inv.call_id and acks[-1].body == SDP  # the answer
    [_, (_, n2)] = notifies(kit, leg.call_id)
    assert n2.body == b"SIP/2.0 200 OK\r\n"
    assert n2.headers.get("subscription-state") == "terminated;reason=noresource"
    # the transferor hangs up: 200, nothing relayed
    kit.request_from_b(leg, ok, "BYE", 2)
    assert responses(kit, "BYE")[-1].status == 200
    assert [r for r in kit.b_requests("BYE")] == []
    assert kit.b2bua.active_calls("1002") == 0 and kit.b2bua.active_calls("1003") == 1
    # the caller hangs up: the BYE goes to 1003
    kit.in_dialog_from_a(inv, a_ok, "BYE", 20)
    [(_, bye, _)] = kit.b_requests("BYE")
    assert bye.call_id == new_inv.call_id
    cdr = kit.last_cdr()
    assert cdr.disposition == "answered" and cdr.hangup_by == "caller"
    assert kit.b2bua.calls == {}


def test_blind_transfer_to_unknown_number_reports_404_and_keeps_the_call():
    kit = ext_kit()
    inv, _tx, leg, ok, a_ok = answered(kit)
    refer_from_b(kit, leg, ok, f"<sip:7777@{DOMAIN}>")
    assert responses(kit, "REFER")[-1].status == 202
    [_, (_, n2)] = notifies(kit, leg.call_id)
    assert n2.body == b"SIP/2.0 404 Not Found\r\n"
    kit.in_dialog_from_a(inv, a_ok, "BYE", 20)
    assert kit.b_requests("BYE")[-1][1].call_id == leg.call_id


def test_transfer_rights_and_loop_guard():
    kit = ext_kit()
    kit.b2bua.router.permitted = lambda user, number: number != "1003"
    _inv, _tx, leg, ok, _a_ok = answered(kit)
    refer_from_b(kit, leg, ok, f"<sip:1003@{DOMAIN}>")
    assert responses(kit, "REFER")[-1].status == 403
    refer_from_b(kit, leg, ok, f"<sip:1001@{DOMAIN}>", cseq=2)  # back to the transferee
    assert responses(kit, "REFER")[-1].status == 403
    assert notifies(kit, leg.call_id) == []


def test_attended_transfer_translates_replaces_to_the_far_leg():
    kit = ext_kit()
    # call 1: 1001 -> 1002; call 2: 1001 -> 1003
    inv1, _tx1, leg1, ok1, a_ok1 = answered(kit, "1002")
    inv2, _tx2, leg2, ok2, a_ok2 = answered(kit, "1003")
    # 1001 REFERs 1002 (call 1) to 1003, replacing its dialog of call 2 (as 1001 sees it)
    call_id2 = inv2.call_id.replace("@", "%40")  # URI header values are escaped (§19.1.1)
    replaces = f"{call_id2}%3Bto-tag%3D{a_ok2.to.tag}%3Bfrom-tag%3D{inv2.from_.tag}"
    from_a(kit, inv1, a_ok1.headers.get("to"), "REFER", 11,
           f"Refer-To: <sip:1003@{DOMAIN}?Replaces={replaces}>")  # fmt: skip
    assert responses(kit, "REFER")[-1].status == 202
    new_tx, new_inv, _dest = kit.b_requests()[-1]
    # sent to 1003's device, Replaces naming 1003's leg of call 2 (its tag, our tag)
    assert new_inv.uri_text == "sip:1002@203.0.113.9:5070"  # 1003's Contact from call 2's 2xx
    assert new_inv.headers.get("replaces") == (
        f"{leg2.call_id};to-tag={ok2.to.tag};from-tag={leg2.from_.tag}"
    )
    assert new_inv.from_.uri.user == "1002"  # on behalf of the transferee
    kit.reply(new_tx, 200, body=SDP_B)
    rtx, reinvite, _ = kit.b_requests()[-1]
    assert reinvite.call_id == leg1.call_id and reinvite.body == SDP_B  # to 1002
    kit.reply(rtx, 200, body=SDP)
    nots = [r for r in kit.port.requests if r[1].method == "NOTIFY"]
    assert nots[-1][1].body == b"SIP/2.0 200 OK\r\n" and nots[-1][1].call_id == inv1.call_id
    # call 2 is ended by us: BYE to 1001 (call 2) and to 1003's old leg
    bye_ids = {r.call_id for _, r, _ in kit.b_requests("BYE")}
    assert {inv2.call_id, leg2.call_id} <= bye_ids
    # call 1 now joins 1002 and 1003: a BYE from 1002 goes to 1003's new dialog
    kit.request_from_b(leg1, ok1, "BYE", 5)
    assert kit.b_requests("BYE")[-1][1].call_id == new_inv.call_id


def test_invite_with_replaces_takes_over_a_side():
    kit = ext_kit()
    inv, _tx, leg, _ok, a_ok = answered(kit, "1002")
    # 1004 replaces 1001 in the call (e.g. a pickup/transfer target), naming the A dialog
    rep = f"Replaces: {inv.call_id};to-tag={a_ok.to.tag};from-tag={inv.from_.tag}"
    new = invite(kit, "1002", caller="1004", extra=rep)
    kit.send(new)
    rtx, reinvite, _ = kit.b_requests()[-1]
    assert reinvite.call_id == leg.call_id and reinvite.body == SDP
    kit.reply(rtx, 200, body=SDP_B)
    ok_new = kit.a_responses(new.call_id)[-1]
    assert ok_new.status == 200 and ok_new.body == SDP_B and ok_new.to.tag
    bye = kit.b_requests("BYE")[-1][1]
    assert bye.call_id == inv.call_id  # the replaced side
    assert bye.headers.get("reason") == 'SIP;cause=200;text="Call replaced"'
    assert kit.b2bua.active_calls("1004") == 1 and kit.b2bua.active_calls("1001") == 0
    missing = invite(kit, "1002", extra="Replaces: nope;to-tag=a;from-tag=b")
    kit.send(missing)
    assert kit.a_statuses(missing.call_id) == [481]


# == MESSAGE / SUBSCRIBE ===========================================================================
def message(kit: Kit, to: str, *extra: str) -> Request:
    request = raw(
        [
            f"MESSAGE sip:{to}@{DOMAIN} SIP/2.0",
            "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKmsg1;rport",
            f'From: "Alice" <sip:1001@{DOMAIN}>;tag=m1',
            f"To: <sip:{to}@{DOMAIN}>",
            "Call-ID: msg1@198.51.100.7",
            "CSeq: 1 MESSAGE",
            "Max-Forwards: 70",
            *extra,
        ],
        b"hello",
        "text/plain",
    )
    kit.send(request)
    return request


def test_page_message_relayed_to_every_contact_first_2xx_wins():
    kit = ext_kit({"1002": 2})
    message(kit, "1002")
    (tx1, m1, d1), (tx2, _m2, d2) = kit.b_requests("MESSAGE")
    assert (d1.port, d2.port) == (5070, 5071) and m1.body == b"hello"
    assert m1.headers.get("content-type") == "text/plain" and m1.from_.uri.user == "1001"
    assert m1.call_id != "msg1@198.51.100.7"
    kit.reply(tx1, 480)
    assert responses(kit, "MESSAGE") == []
    kit.reply(tx2, 202)
    assert [r.status for r in responses(kit, "MESSAGE")] == [202]


def test_page_message_failures():
    kit = ext_kit({"1002": 1})
    message(kit, "9999")
    assert responses(kit, "MESSAGE")[-1].status == 404
    message(kit, "1004")  # a user without contacts
    assert responses(kit, "MESSAGE")[-1].status == 480
    message(kit, "1002")
    [(tx, _, _)] = kit.b_requests("MESSAGE")
    kit.timeout(tx)
    assert responses(kit, "MESSAGE")[-1].status == 480


def test_subscribe_gets_489():
    kit = ext_kit()
    request = raw([
        f"SUBSCRIBE sip:1002@{DOMAIN} SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKsub;rport",
        f"From: <sip:1001@{DOMAIN}>;tag=s1", f"To: <sip:1002@{DOMAIN}>", "Call-ID: sub1",
        "CSeq: 1 SUBSCRIBE", "Max-Forwards: 70", "Event: presence",
    ])  # fmt: skip
    kit.send(request)
    r = responses(kit, "SUBSCRIBE")[-1]
    assert r.status == 489 and r.headers.get("allow-events") == "refer"
