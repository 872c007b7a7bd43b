"""The race table of docs/calls.md, one test per row: CANCEL and 2xx crossing each other."""

from __future__ import annotations

from tests.pbx.callkit import SDP_B, make_kit


def test_cancel_before_any_provisional():
    """Row 1: the caller cancels before a B leg sent anything: 200 to the CANCEL, 487 to the
    INVITE at once; our CANCEL is handed to the endpoint (which holds it until a provisional,
    §9.1)."""
    kit = make_kit({"1002": 2})
    invite = kit.invite()
    kit.send(invite)
    (tx1, _, _), (tx2, _, _) = kit.b_requests()
    kit.cancel(invite)
    cancel_ok = [r for r in kit.port.responses if r.cseq.method == "CANCEL"]
    assert [r.status for r in cancel_ok] == [200]
    assert kit.a_statuses(invite.call_id) == [487]
    assert sorted(t for t, _ in kit.port.cancels) == [tx1, tx2]
    assert all(reason is None for _, reason in kit.port.cancels)  # a plain CANCEL
    assert kit.last_cdr().disposition == "cancelled" and kit.last_cdr().hangup_by == "caller"
    kit.reply(tx1, 487)
    assert kit.b2bua.calls  # one leg still live
    kit.reply(tx2, 487)
    assert kit.b2bua.calls == {}


def test_cancel_reason_from_caller_is_relayed():
    kit = make_kit({"1002": 1})
    invite = kit.invite()
    kit.send(invite)
    kit.cancel(invite, reason='SIP;cause=200;text="Call completed elsewhere"')
    assert kit.port.cancels[0][1] == 'SIP;cause=200;text="Call completed elsewhere"'


def test_cancel_crossing_b_leg_200():
    """Row 2: our CANCEL crosses the leg's 200: ACK and BYE that leg; the caller keeps its 487
    (its 200 never went out)."""
    kit = make_kit({"1002": 1})
    invite = kit.invite()
    kit.send(invite)
    [(tx, leg, _)] = kit.b_requests()
    kit.reply(tx, 180)
    kit.cancel(invite)
    ok = kit.reply(tx, 200, body=SDP_B)
    [(ack, _, _)] = kit.port.acks
    assert ack.call_id == leg.call_id and ack.to.tag == ok.to.tag
    [(_, bye, _)] = kit.b_requests("BYE")
    assert bye.call_id == leg.call_id and "487" in (bye.headers.get("reason") or "")
    assert kit.a_statuses(invite.call_id) == [180, 487]
    assert kit.last_cdr().disposition == "cancelled"
    assert kit.b2bua.calls == {}
    kit.retransmit_2xx(ok, None)  # its retransmission after the call is gone: absorbed
    assert len(kit.port.acks) == 1


def test_cancel_after_our_200_changes_nothing():
    """Row 3: the CANCEL arrives after the caller's 200 went out: 200 to the CANCEL, no 487,
    the call goes on (§9.2)."""
    kit = make_kit({"1002": 1})
    invite = kit.invite()
    kit.send(invite)
    [(tx, _, _)] = kit.b_requests()
    kit.reply(tx, 200, body=SDP_B)
    kit.cancel(invite)
    assert kit.a_statuses(invite.call_id) == [200]
    assert [r.status for r in kit.port.responses if r.cseq.method == "CANCEL"] == [200]
    assert kit.port.cancels == [] and kit.b_requests("BYE") == []
    assert kit.b2bua.calls


def test_two_legs_answer_at_once():
    """Row 4: two devices answer: the first 2xx wins; the second leg is ACKed and BYEd with
    "completed elsewhere"."""
    kit = make_kit({"1002": 2})
    invite = kit.invite()
    kit.send(invite)
    (tx1, leg1, _), (tx2, leg2, _) = kit.b_requests()
    kit.reply(tx1, 200, body=SDP_B)
    kit.reply(tx2, 200, body=SDP_B)
    assert [a[0].call_id for a in kit.port.acks] == [leg1.call_id, leg2.call_id]
    [(_, bye, _)] = kit.b_requests("BYE")
    assert bye.call_id == leg2.call_id
    assert "cause=200" in (bye.headers.get("reason") or "")
    assert kit.a_statuses(invite.call_id) == [200]
    assert kit.last_cdr().b_call_id == leg1.call_id


def test_2xx_after_cancels_were_sent_for_a_ring_timeout():
    """Row 5: the ring timeout cancelled the legs, then one answers: ACK + BYE it; the caller
    already has its 480."""
    kit = make_kit({"1002": 1}, ring_timeout=3)
    invite = kit.invite()
    kit.send(invite)
    [(tx, leg, _)] = kit.b_requests()
    kit.reply(tx, 180)
    kit.advance(3.1)
    kit.reply(tx, 200, body=SDP_B)
    assert kit.port.acks[0][0].call_id == leg.call_id
    assert kit.b_requests("BYE")[0][1].call_id == leg.call_id
    assert kit.a_statuses(invite.call_id) == [180, 480]
    assert kit.last_cdr().disposition == "no-answer"


def test_b_leg_times_out_after_cancel():
    """Row 6: a leg never answers our CANCEL (Timer C/64*T1 in the endpoint): forgotten."""
    kit = make_kit({"1002": 1})
    invite = kit.invite()
    kit.send(invite)
    [(tx, _, _)] = kit.b_requests()
    kit.cancel(invite)
    kit.timeout(tx)
    assert kit.b2bua.calls == {}
