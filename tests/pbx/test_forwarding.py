"""Forwarding, DND, the loop guard and feature codes against the fake port (issue 4)."""

from __future__ import annotations

from sipbox.pbx.calls.forwarding import FollowPlan, Forwarding, failure_kind, hop_allowed
from sipbox.pbx.calls.plan import ForkPlan, LegSpec, Reject
from sipbox.pbx.calls.routing import RouteContext
from tests.pbx.callkit import SDP_B, target, user
from tests.pbx.groupkit import forwarding, group, make_group_kit


def rung(kit) -> list[str]:
    return [r.to.uri.user for _, r, _ in kit.b_requests()]


def tx_of(kit, number: str) -> list[str]:
    return [tx for tx, r, _ in kit.b_requests() if r.to.uri.user == number]


def kit_with(**settings: dict):
    users = {n: user(n) for n in ("1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008")}
    for number, fwd in settings.items():
        users[number.lstrip("u")] = user(number.lstrip("u"), settings=forwarding(**fwd))
    kit, _, persisted = make_group_kit(
        {"1002": 1, "1003": 1, "1004": 1, "1005": 1},
        [group("600", ["1004", "1005"], ring_timeout=5)],
        users=users,
        ring_timeout=10,
    )
    return kit, persisted


def test_unconditional_never_rings_the_user():
    kit, _ = kit_with(u1002={"unconditional": "1003"})
    invite = kit.invite("1002")
    kit.send(invite)
    assert rung(kit) == ["1003"]
    kit.reply(tx_of(kit, "1003")[0], 200, body=SDP_B)
    assert kit.a_statuses(invite.call_id)[-1] == 200
    cdr = kit.last_cdr()
    assert cdr.dialed_number == "1002" and cdr.destination.startswith("1003 ")


def test_forward_to_a_group():
    kit, _ = kit_with(u1002={"unconditional": "600"})
    kit.send(kit.invite("1002"))
    assert rung(kit) == ["1004", "1005"]


def test_busy_forwarding():
    kit, _ = kit_with(u1002={"busy": "1003", "no_answer": "1004"})
    invite = kit.invite("1002")
    kit.send(invite)
    kit.reply(tx_of(kit, "1002")[0], 486)
    assert rung(kit) == ["1002", "1003"]
    assert kit.a_statuses(invite.call_id) == []
    kit.reply(tx_of(kit, "1003")[0], 200, body=SDP_B)
    assert kit.a_statuses(invite.call_id) == [200]


def test_no_answer_forwarding_after_the_ring_timeout():
    kit, _ = kit_with(u1002={"busy": "1004", "no_answer": "1003"})
    invite = kit.invite("1002")
    kit.send(invite)
    kit.reply(tx_of(kit, "1002")[0], 180)
    kit.advance(9.9)
    assert rung(kit) == ["1002"]
    kit.advance(0.1)
    assert kit.port.cancels == [(tx_of(kit, "1002")[0], None)]
    assert rung(kit) == ["1002", "1003"]
    kit.reply(tx_of(kit, "1002")[0], 487)  # the cancelled leg's 487 changes nothing
    kit.advance(10)
    assert kit.a_statuses(invite.call_id)[-1] == 480  # 1003 did not answer either


def test_unreachable_forwarding_offline_and_timeout():
    kit, _ = kit_with(u1007={"unreachable": "1003"}, u1002={"unreachable": "1004"})
    kit.send(kit.invite("1007"))  # 1007 has no contact
    assert rung(kit) == ["1003"]
    kit.send(kit.invite("1002"))
    kit.timeout(tx_of(kit, "1002")[0])  # 408 from the transaction layer
    assert rung(kit) == ["1003", "1002", "1004"]


def test_no_forwarding_for_other_failures():
    kit, _ = kit_with(u1002={"busy": "1003"})
    invite = kit.invite("1002")
    kit.send(invite)
    kit.reply(tx_of(kit, "1002")[0], 404)
    assert rung(kit) == ["1002"] and kit.a_statuses(invite.call_id) == [404]


def test_dnd_busy_or_forward():
    kit, _ = kit_with(u1002={"dnd": True}, u1003={"dnd": True, "busy": "1004"})
    invite = kit.invite("1002")
    kit.send(invite)
    [response] = kit.a_responses(invite.call_id)
    assert (response.status, response.reason) == (486, "Do Not Disturb")
    kit.send(kit.invite("1003"))
    assert rung(kit) == ["1004"]


def test_loop_back_to_a_passed_number_is_not_taken():
    kit, _ = kit_with(u1002={"unconditional": "1003"}, u1003={"unconditional": "1002"})
    kit.send(kit.invite("1002"))
    assert rung(kit) == ["1003"]  # 1003 -> 1002 would loop: 1003's phones ring
    kit2, _ = kit_with(u1002={"unconditional": "1001"})
    kit2.send(kit2.invite("1002"))  # forwarding back to the caller: 1002 rings
    assert rung(kit2) == ["1002"]


def test_busy_loop_ends_with_the_failure():
    kit, _ = kit_with(u1002={"busy": "1003"}, u1003={"busy": "1002"})
    invite = kit.invite("1002")
    kit.send(invite)
    kit.reply(tx_of(kit, "1002")[0], 486)
    kit.reply(tx_of(kit, "1003")[0], 486)
    assert rung(kit) == ["1002", "1003"] and kit.a_statuses(invite.call_id) == [486]


def test_at_most_five_hops():
    chain = {f"u100{i}": {"unconditional": f"100{i + 1}"} for i in range(2, 8)}
    kit, _ = kit_with(**chain)  # 1002 -> 1003 -> ... -> 1008 (six hops)
    invite = kit.invite("1002")
    kit.send(invite)
    # five forwardings (1002 .. 1006 -> 1007) are taken; the sixth (1007 -> 1008) is refused:
    # 1007 would ring, but it has no contact, so the caller gets 480 (not 1008's phone).
    assert rung(kit) == [] and kit.a_statuses(invite.call_id) == [480]


def test_hop_allowed():
    caller = user("1001")
    assert hop_allowed("1003", RouteContext(caller, ("1001", "1002")))
    assert not hop_allowed("1001", RouteContext(caller, ("1001", "1002")))
    assert hop_allowed("x", RouteContext(caller, ("1001", "a", "b", "c", "d", "e")))
    assert not hop_allowed("x", RouteContext(caller, ("1001", "a", "b", "c", "d", "e", "f")))


def test_forwarding_target_needs_class_of_service_of_the_forwarder():
    kit, _ = kit_with(u1002={"unconditional": "1003"})
    kit.b2bua.router.permitted = lambda who, number: not (who.number == "1002" and number == "1003")
    kit.send(kit.invite("1002"))
    assert rung(kit) == ["1002"]


def test_failure_kind():
    assert failure_kind(Reject(480, "No Answer", "no-answer")) == "no_answer"
    assert failure_kind(Reject(486)) == failure_kind(Reject(603)) == "busy"
    assert failure_kind(Reject(480)) == failure_kind(Reject(503)) == "unreachable"
    assert failure_kind(Reject(404)) is None


def test_follow_plan_translates_keys():
    a = ForkPlan([LegSpec(1, target("a", 0), "a"), LegSpec(2, target("a", 1), "a")], 10, "a")
    b = ForkPlan([LegSpec(1, target("b", 2), "b")], 10, "b")
    plan = FollowPlan(a, lambda reject, now: b if reject.status == 486 else None, "a")
    step = plan.start(0.0)
    assert [s.key for s in step.start] == [1, 2]
    assert plan.leg_failed(1, 486, 1.0).final is None
    step = plan.leg_failed(2, 486, 1.0)
    assert step.final is None and [(s.key, s.number) for s in step.start] == [(3, "b")]
    assert plan.leg_failed(1, 487, 1.0).start == []  # an old stage's leg: ignored
    key = plan.new_key()
    step = plan.redirected(3, [LegSpec(key, target("c", 3), "c")], 2.0)
    assert [s.key for s in step.start] == [key]
    step = plan.answered(key, 3.0)
    assert step.cancel == []
    assert plan.next_deadline() is None


def test_forwarding_settings():
    assert not Forwarding.of(user("1")).active
    fwd = Forwarding.of(user("1", settings=forwarding(busy="2", dnd=True)))
    assert fwd.busy == "2" and fwd.dnd and fwd.active
    assert Forwarding.of(user("1", settings={"forwarding": "junk"})) == Forwarding()


# ------------------------------------------------------------------------------- feature codes


def code(kit, dialed: str, caller: str = "1002"):
    invite = kit.invite(dialed.replace("#", "%23"), caller=caller)
    kit.send(invite)
    [response] = kit.a_responses(invite.call_id)
    return response.status, response.reason


def test_feature_codes_set_and_clear_forwarding():
    kit, persisted = kit_with()
    assert code(kit, "*90*1003#") == (480, "Forwarding on busy set to 1003")
    assert Forwarding.of(kit.users["1002"]).busy == "1003"
    assert code(kit, "*91*1004") == (480, "Forwarding when unreachable set to 1004")
    assert code(kit, "*92*1004#") == (480, "Forwarding on no answer set to 1004")
    assert code(kit, "*93*1005#") == (480, "Forwarding unconditional set to 1005")
    assert Forwarding.of(kit.users["1002"]) == Forwarding("1005", "1003", "1004", "1004")
    assert code(kit, "*93#") == (480, "Forwarding unconditional cancelled")
    assert code(kit, "*78#") == (480, "Do not disturb on")
    assert Forwarding.of(kit.users["1002"]).dnd
    assert code(kit, "*79") == (480, "Do not disturb off")
    assert persisted[0] == ("1002", {"busy": "1003"})
    assert persisted[-1] == ("1002", {"dnd": False}) and len(persisted) == 7
    # the new settings are live at once: 1002 busy -> 1003
    invite = kit.invite("1002", caller="1001")
    kit.send(invite)
    kit.reply(tx_of(kit, "1002")[0], 486)
    assert rung(kit)[-1] == "1003"


def test_feature_code_refusals():
    kit, persisted = kit_with()
    assert code(kit, "*90*9999#") == (404, "Forwarding Target 9999 Unknown")
    assert code(kit, "*90*1002#") == (403, "Cannot Forward To Yourself")
    assert code(kit, "*90*#") == (484, "Forwarding Target Missing")
    kit.b2bua.router.permitted = lambda who, number: number != "1003"
    assert code(kit, "*90*1003#") == (403, "Forwarding To 1003 Not Allowed")
    assert persisted == []
    assert code(kit, "*55#")[0] == 404  # not a feature code, not a number: unknown
