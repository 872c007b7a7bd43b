"""Ringing and hunting groups against the fake port with explicit time (issue 4): ring-all,
sequential and circular order, skipped members, one member's failure ending only its branch,
"completed elsewhere" only on a real answer, the no-answer destination."""

from __future__ import annotations

from sipbox.pbx.calls.groups import GroupPlan, member_order
from tests.pbx.callkit import SDP_B, target, user
from tests.pbx.groupkit import COMPLETED, group, make_group_kit


def rung(kit, start: int = 0) -> list[str]:
    """Users rung by the INVITEs sent since index `start`."""
    return [r.to.uri.user for _, r, _ in kit.b_requests()[start:]]


def tx_of(kit, number: str) -> list[str]:
    return [tx for tx, r, _ in kit.b_requests() if r.to.uri.user == number]


def test_ring_all_rings_everyone_and_losers_get_completed_elsewhere():
    kit, _, _ = make_group_kit(
        {"1002": 2, "1003": 1, "1004": 1}, [group("600", ["1002", "1003", "1004"])]
    )
    invite = kit.invite("600")
    kit.send(invite)
    assert rung(kit) == ["1002", "1002", "1003", "1004"]
    for tx, _, _ in kit.b_requests():
        kit.reply(tx, 180)
    [winner] = tx_of(kit, "1003")
    kit.reply(winner, 200, body=SDP_B)
    cancelled = {tx: reason for tx, reason in kit.port.cancels}
    assert set(cancelled) == {*tx_of(kit, "1002"), *tx_of(kit, "1004")}
    assert set(cancelled.values()) == {COMPLETED}
    assert kit.a_statuses(invite.call_id)[-1] == 200
    assert kit.last_cdr().destination.startswith("1003 sip:")
    assert kit.b2bua.active_calls("1003") == 1 and kit.b2bua.active_calls("600") == 0


def test_caller_hangs_up_gives_plain_cancel():
    kit, _, _ = make_group_kit(groups=[group("600", ["1002", "1003", "1004"])])
    invite = kit.invite("600")
    kit.send(invite)
    for tx, _, _ in kit.b_requests():
        kit.reply(tx, 180)
    kit.cancel(invite)
    assert len(kit.port.cancels) == 3
    assert {reason for _, reason in kit.port.cancels} == {None}
    assert kit.a_statuses(invite.call_id)[-1] == 487


def test_completed_elsewhere_can_be_switched_off():
    kit, _, _ = make_group_kit(groups=[group("600", ["1002", "1003"], completed_elsewhere=False)])
    kit.send(kit.invite("600"))
    kit.reply(tx_of(kit, "1002")[0], 200, body=SDP_B)
    assert kit.port.cancels == [(tx_of(kit, "1003")[0], None)]


def test_ring_all_timeout_cancels_plainly_and_answers_480():
    kit, _, _ = make_group_kit(groups=[group("600", ["1002", "1003"], ring_timeout=10)])
    invite = kit.invite("600")
    kit.send(invite)
    kit.advance(9.9)
    assert kit.port.cancels == []
    kit.advance(0.2)
    assert {reason for _, reason in kit.port.cancels} == {None} and len(kit.port.cancels) == 2
    assert kit.a_statuses(invite.call_id)[-1] == 480
    assert kit.last_cdr().disposition == "no-answer"


def test_one_member_busy_ends_only_its_branch():
    kit, _, _ = make_group_kit({"1002": 2, "1003": 1}, [group("600", ["1002", "1003"])])
    invite = kit.invite("600")
    kit.send(invite)
    first, second = tx_of(kit, "1002")
    kit.reply(first, 486)  # one device of 1002
    kit.reply(tx_of(kit, "1003")[0], 603)  # member 1003 declines
    assert kit.a_statuses(invite.call_id) == []  # 1002's other device still rings
    kit.reply(second, 200, body=SDP_B)
    assert kit.a_statuses(invite.call_id)[-1] == 200


def test_group_fails_only_when_every_member_failed():
    kit, _, _ = make_group_kit(groups=[group("600", ["1002", "1003"])])
    invite = kit.invite("600")
    kit.send(invite)
    kit.reply(tx_of(kit, "1002")[0], 486)
    assert kit.a_statuses(invite.call_id) == []
    kit.reply(tx_of(kit, "1003")[0], 486)
    assert kit.a_statuses(invite.call_id) == [486]


def test_skips_caller_offline_disabled_dnd_and_busy_members():
    users = {n: user(n) for n in ("1001", "1002", "1003", "1004", "1005", "1006")}
    users["1004"] = user("1004", enabled=False)
    users["1005"] = user("1005", settings={"forwarding": {"dnd": True}})
    contacts = {n: 1 for n in ("1001", "1002", "1003", "1004", "1005", "1006")}
    kit, _, _ = make_group_kit(
        contacts,
        [group("600", ["1001", "1002", "1003", "1004", "1005", "1006", "1007"])],
        users=users,
    )
    kit.b2bua._active["1006"] = 1  # 1006 is in a call (skip_busy is on by default)
    kit.b2bua._active["1003"] = 1
    kit.users["1003"] = user("1003", max_calls=1)
    kit.send(kit.invite("600", caller="1001"))
    # 1001 is the caller, 1003 at max_calls, 1004 disabled, 1005 DND, 1006 busy, 1007 offline
    assert rung(kit) == ["1002"]


def test_skip_busy_off_rings_members_in_a_call():
    kit, _, _ = make_group_kit(
        groups=[group("600", ["1002", "1003"], settings={"skip_busy": False})]
    )
    kit.b2bua._active["1003"] = 1
    kit.send(kit.invite("600"))
    assert rung(kit) == ["1002", "1003"]


def test_nobody_available_480_everybody_busy_486():
    kit, _, _ = make_group_kit(groups=[group("600", ["1007", "1008"]), group("601", ["1002"])])
    invite = kit.invite("600")
    kit.send(invite)
    assert kit.a_statuses(invite.call_id) == [480]
    kit.b2bua._active["1002"] = 1
    invite = kit.invite("601")
    kit.send(invite)
    assert kit.a_statuses(invite.call_id) == [486]


def test_sequential_order_with_member_timeouts():
    kit, _, _ = make_group_kit(
        groups=[group("601", [("1002", 5), "1003", "1004"], strategy="sequential", ring_timeout=8)]
    )
    invite = kit.invite("601")
    kit.send(invite)
    assert rung(kit) == ["1002"]
    kit.reply(tx_of(kit, "1002")[0], 180)
    kit.advance(5)
    # 1002's turn is over: a plain CANCEL (nobody answered elsewhere), then 1003
    assert kit.port.cancels == [(tx_of(kit, "1002")[0], None)]
    assert rung(kit) == ["1002", "1003"]
    kit.advance(7.9)
    assert rung(kit) == ["1002", "1003"]
    kit.reply(tx_of(kit, "1003")[0], 486)  # busy: the next member at once
    assert rung(kit) == ["1002", "1003", "1004"]
    kit.reply(tx_of(kit, "1002")[0], 487)  # the late 487 of the cancelled leg changes nothing
    assert rung(kit)[-1] == "1004" and kit.a_statuses(invite.call_id)[-1] == 180
    kit.advance(8)
    assert kit.a_statuses(invite.call_id)[-1] == 480
    assert kit.last_cdr().disposition == "no-answer"


def test_sequential_answer_cancels_nothing_else_and_skips_offline():
    kit, _, _ = make_group_kit(
        groups=[group("601", ["1007", "1003", "1004"], strategy="sequential")]
    )
    invite = kit.invite("601")
    kit.send(invite)
    assert rung(kit) == ["1003"]  # 1007 is offline: skipped
    kit.reply(tx_of(kit, "1003")[0], 200, body=SDP_B)
    assert kit.port.cancels == [] and kit.a_statuses(invite.call_id)[-1] == 200


def test_circular_starts_after_the_member_that_answered_last():
    kit, cache, _ = make_group_kit(
        groups=[group("602", ["1002", "1003", "1004"], strategy="circular")]
    )
    first = kit.invite("602")
    kit.send(first)
    assert rung(kit) == ["1002"]
    kit.advance(30)
    assert rung(kit) == ["1002", "1003"]
    kit.reply(tx_of(kit, "1003")[0], 200, body=SDP_B)
    assert cache.last_answered == {"602": "1003"}
    n = len(kit.b_requests())
    kit.send(kit.invite("602", caller="1005"))
    assert rung(kit, n) == ["1004"]
    kit.reply(tx_of(kit, "1004")[0], 200, body=SDP_B)
    n = len(kit.b_requests())
    kit.send(kit.invite("602", caller="1006"))
    assert rung(kit, n) == ["1002"]


def test_member_order():
    g = group("602", ["1", "2", "3"], strategy="circular")
    assert [m for m, _ in member_order(g, "2")] == ["3", "1", "2"]
    assert [m for m, _ in member_order(g, "9")] == ["1", "2", "3"]
    assert [m for m, _ in member_order(group("600", ["1", "2"]), "1")] == ["1", "2"]


def test_no_answer_destination_user_and_group():
    kit, _, _ = make_group_kit(
        groups=[
            group("600", ["1002"], ring_timeout=5, no_answer_destination="601"),
            group("601", ["1003"], ring_timeout=5, no_answer_destination="1004"),
        ]
    )
    invite = kit.invite("600")
    kit.send(invite)
    kit.advance(5)
    assert rung(kit) == ["1002", "1003"]
    kit.advance(5)
    assert rung(kit) == ["1002", "1003", "1004"]
    assert [r for _, r in kit.port.cancels] == [None, None]
    kit.reply(tx_of(kit, "1004")[0], 200, body=SDP_B)
    assert kit.a_statuses(invite.call_id)[-1] == 200
    assert kit.last_cdr().destination.startswith("1004 ")


def test_no_answer_destination_loop_stops():
    kit, _, _ = make_group_kit(
        groups=[
            group("600", ["1002"], ring_timeout=5, no_answer_destination="601"),
            group("601", ["1003"], ring_timeout=5, no_answer_destination="600"),
        ]
    )
    invite = kit.invite("600")
    kit.send(invite)
    kit.advance(5)
    kit.advance(5)
    assert rung(kit) == ["1002", "1003"]  # back to 600: refused by the loop guard
    assert kit.a_statuses(invite.call_id)[-1] == 480


def test_plan_alone_with_explicit_time():
    calls: list[str] = []
    targets = {"a": [target("a", 0)], "b": [target("b", 1)]}
    plan = GroupPlan("600", [("a", 5.0), ("b", 5.0)], lambda m: targets.get(m, "offline"),  # type: ignore[arg-type,return-value]
                     ring_all=False, ring_timeout=5.0, on_answer=calls.append)  # fmt: skip
    step = plan.start(100.0)
    assert [s.number for s in step.start] == ["a"] and plan.next_deadline() == 105.0
    step = plan.on_timer(105.0)
    assert step.cancel == [1] and step.cancel_reason is None
    assert [s.number for s in step.start] == ["b"] and plan.next_deadline() == 110.0
    assert plan.answered(2, 106.0).cancel == [] and calls == ["b"]
    assert plan.next_deadline() is None
