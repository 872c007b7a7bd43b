"""The anti-scanning guard: exact-time tests with an explicit clock (no sleeping)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipbox.pbx.guard import (
    Ban,
    Banned,
    FloodBlocked,
    Guard,
    GuardPolicy,
    GuardRefused,
    Unbanned,
    UserBlocked,
    format_log_line,
    source_key,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
HOUR = 3600.0
ATTACKER = "203.0.113.7"
OFFICE = "198.51.100.20"


def fail(
    g: Guard,
    host: str,
    now: float,
    user: str | None = "1001",
    *,
    known: bool = True,
    ua: str | None = "Yealink SIP-T46S",
    live: bool = False,
) -> object:
    return g.record_auth_failure(host, user, now, known, ua, live)


# ---- fail-to-ban ------------------------------------------------------------------------------


def test_five_failures_within_window_ban() -> None:
    g = Guard()
    results = [fail(g, ATTACKER, T0 + t, user=f"10{t:02d}") for t in (0, 10, 20, 30, 40)]
    assert results[:4] == [None] * 4
    ev = results[4]
    assert isinstance(ev, Banned)
    ban = ev.ban
    assert (ban.source, ban.reason, ban.since, ban.until, ban.offence) == (
        ATTACKER,
        "auth-failures",
        T0 + 40,
        T0 + 40 + 3 * HOUR,
        1,
    )
    assert ban.users == ("1000", "1010", "1020", "1030", "1040")
    assert ban.user_agent == "Yealink SIP-T46S"
    assert g.is_allowed(ATTACKER, T0 + 40) is False
    assert g.is_allowed("203.0.113.8", T0 + 40) is True


def test_four_failures_do_not_ban() -> None:
    g = Guard()
    assert [fail(g, ATTACKER, T0 + t) for t in (0, 1, 2, 3)] == [None] * 4
    assert g.is_allowed(ATTACKER, T0 + 4)
    assert g.active_bans(T0 + 4) == []


def test_five_failures_spread_over_more_than_window_do_not_ban() -> None:
    g = Guard()
    # The window is half-open, (now - 60, now]: failures at 0 and 60 are not within 60 s.
    assert [fail(g, ATTACKER, T0 + t) for t in (0, 15, 30, 45, 60)] == [None] * 5
    assert g.is_allowed(ATTACKER, T0 + 60)
    # ... but 15, 30, 45, 60, 61 are.
    assert isinstance(fail(g, ATTACKER, T0 + 61), Banned)


def test_ban_expires_exactly_at_since_plus_ban_time() -> None:
    g = Guard()
    for t in range(5):
        ev = fail(g, ATTACKER, T0 + t)
    assert isinstance(ev, Banned)
    until = T0 + 4 + 3 * HOUR
    assert ev.ban.until == until
    assert g.is_allowed(ATTACKER, until - 0.001) is False
    assert g.expire(until - 0.001) == []
    assert g.next_expiry() == until
    assert g.is_allowed(ATTACKER, until) is True
    assert g.expire(until) == [Unbanned(ATTACKER, "expired")]
    assert g.expire(until + 1) == []
    assert g.active_bans(until) == []
    assert g.next_expiry() is None


def test_failures_after_ban_are_ignored_and_counters_restart() -> None:
    g = Guard()
    for t in range(5):
        fail(g, ATTACKER, T0 + t)
    # In-flight messages of a banned source change nothing.
    assert fail(g, ATTACKER, T0 + 5) is None
    assert len(g.active_bans(T0 + 5)) == 1


def test_repeat_offender_doubles_up_to_the_cap() -> None:
    g = Guard()
    now = T0
    durations = []
    offences = []
    for _ in range(6):
        ev = None
        for i in range(5):
            ev = fail(g, ATTACKER, now + i)
        assert isinstance(ev, Banned)
        durations.append(ev.ban.until - ev.ban.since)
        offences.append(ev.ban.offence)
        now = ev.ban.until + 10 * 60  # comes back ten minutes after the ban ends
        g.expire(now)
    assert durations == [3 * HOUR, 6 * HOUR, 12 * HOUR, 24 * HOUR, 24 * HOUR, 24 * HOUR]
    assert offences == [1, 2, 3, 4, 5, 6]


def test_offences_are_forgotten_after_the_repeat_window() -> None:
    g = Guard()
    first = g.ban(ATTACKER, T0)
    assert first.ban.until == T0 + 3 * HOUR
    later = first.ban.until + 24 * HOUR  # exactly repeat_window after the end
    g.expire(later)
    again = g.ban(ATTACKER, later)
    assert (again.ban.offence, again.ban.until - again.ban.since) == (1, 3 * HOUR)


# ---- never lock out our own -------------------------------------------------------------------


def test_whitelist_is_never_banned_nor_flood_blocked() -> None:
    g = Guard(GuardPolicy(whitelist=("10.0.0.0/8", "2001:db8:aa::/48")))
    for host in ("10.1.2.3", "::ffff:10.9.9.9", "2001:db8:aa:1::5"):
        for i in range(100):
            assert fail(g, host, T0 + i * 0.1, user=f"u{i}", known=False) is None
        assert g.inspect_signature(host, "friendly-scanner", "sipvicious", T0) is None
        for i in range(100):
            assert g.record_unknown_target(host, f"x{i}", T0 + i * 0.01) is None
        for i in range(10_000):
            assert g.record_request(host, T0 + i * 1e-5) is None
        assert g.is_allowed(host, T0 + 1)
    assert g.active_bans(T0 + 1) == []


def test_manual_ban_refused_for_whitelisted_trusted_and_loopback() -> None:
    g = Guard(GuardPolicy(whitelist=("192.0.2.0/24", "2001:db8:1:2::5")))
    g.add_trusted(["198.51.100.77"])
    for source in (
        "192.0.2.10",  # whitelisted network
        "2001:db8:1:2::99",  # its /64 covers a whitelisted address
        "2001:db8:1:2::/64",
        "198.51.100.77",  # trusted trunk
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "::ffff:127.0.0.1",
        "203.0.113.0/24",  # wider than one ban key: the blacklist's job
        "2001:db8::/48",
        "not-an-address",
    ):
        with pytest.raises(GuardRefused):
            g.ban(source, T0)
    assert g.active_bans(T0) == []
    with pytest.raises(ValueError):
        g.ban(ATTACKER, T0, duration=0)
    assert isinstance(g.ban("2001:db8:1:3::99", T0), Banned)


def test_trusted_trunks_are_never_banned_nor_blocked() -> None:
    g = Guard()
    g.add_trusted(["192.0.2.50"])
    g.add_trusted(["192.0.2.51"])
    for i in range(20):
        assert fail(g, "192.0.2.50", T0 + i) is None
        assert fail(g, "192.0.2.51", T0 + i) is None
    for i in range(1000):
        assert g.record_request("192.0.2.50", T0 + i * 1e-4) is None
    g.set_trusted(["192.0.2.51"])  # the line's proxy moved: .50 is an ordinary host now
    assert [fail(g, "192.0.2.50", T0 + 100 + i) for i in range(4)] == [None] * 4
    assert isinstance(fail(g, "192.0.2.50", T0 + 104), Banned)
    assert fail(g, "192.0.2.51", T0 + 105) is None


def test_office_one_users_failures_block_only_that_user() -> None:
    g = Guard()
    evs = [fail(g, OFFICE, T0 + t, user="1001", live=True) for t in range(5)]
    assert evs[:4] == [None] * 4
    assert evs[4] == UserBlocked(OFFICE, "1001", T0 + 4 + 3 * HOUR)
    assert g.is_allowed(OFFICE, T0 + 5)
    assert g.is_user_blocked(OFFICE, "1001", T0 + 5)
    assert not g.is_user_blocked(OFFICE, "1002", T0 + 5)
    assert not g.is_user_blocked("198.51.100.21", "1001", T0 + 5)
    assert not g.is_user_blocked(OFFICE, "1001", T0 + 4 + 3 * HOUR)
    assert g.active_bans(T0 + 5) == []
    assert g.unblock_user(OFFICE, "1001") is True
    assert not g.is_user_blocked(OFFICE, "1001", T0 + 6)


def test_office_many_distinct_users_failing_bans_the_address() -> None:
    g = Guard()
    evs = [fail(g, OFFICE, T0 + i, user=f"20{i}", live=True) for i in range(5)]
    assert evs[:4] == [None] * 4
    assert isinstance(evs[4], Banned)
    assert evs[4].ban.users == ("200", "201", "202", "203", "204")
    assert not g.is_allowed(OFFICE, T0 + 5)


def test_office_unknown_user_failures_ban_the_address() -> None:
    g = Guard()
    evs = [fail(g, OFFICE, T0 + i, user="9999", known=False, live=True) for i in range(5)]
    assert evs[:4] == [None] * 4
    assert isinstance(evs[4], Banned)
    assert evs[4].ban.reason == "auth-failures"


def test_unknown_user_failures_ban() -> None:
    g = Guard()
    evs = [fail(g, ATTACKER, T0 + i, user=None, known=False, ua=None) for i in range(5)]
    assert evs[:4] == [None] * 4
    assert isinstance(evs[4], Banned)


# ---- scanners ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ua",
    [
        "friendly-scanner",
        "FRIENDLY-SCANNER",
        "sipvicious 0.3.4",
        "Mozilla/5.0 SIPVicious",
        "sundayddr",
        "iWar",
        "IWAR/1.0",
        "sip-scan",
        "smap 0.6",
    ],
)
def test_scanner_user_agent_bans_at_once(ua: str) -> None:
    g = Guard()
    ev = g.inspect_signature(ATTACKER, ua, None, T0)
    assert isinstance(ev, Banned)
    assert (ev.ban.reason, ev.ban.user_agent, ev.ban.until) == ("scanner", ua, T0 + 3 * HOUR)
    assert not g.is_allowed(ATTACKER, T0)


@pytest.mark.parametrize(
    "ua",
    [
        "Yealink SIP-T46S 66.86.0.15",
        "Linphone/5.2.0 (belle-sip/5.2.0)",
        "baresip v3.10.1",
        None,
        "",
    ],
)
def test_legit_user_agents_do_not_ban(ua: str | None) -> None:
    g = Guard()
    assert g.inspect_signature(ATTACKER, ua, "Alice", T0) is None
    assert g.is_allowed(ATTACKER, T0)


def test_svmap_from_display_bans() -> None:
    g = Guard()
    ev = g.inspect_signature(ATTACKER, "Asterisk PBX", "SIPVicious", T0)
    assert isinstance(ev, Banned)
    assert ev.ban.detail == "from-display=SIPVicious"


# ---- enumeration ------------------------------------------------------------------------------


def test_enumeration_threshold() -> None:
    g = Guard()
    for i in range(9):
        assert g.record_unknown_target(ATTACKER, f"{100 + i}", T0 + i) is None
    for _ in range(5):  # the same unknown users again do not count
        assert g.record_unknown_target(ATTACKER, "100", T0 + 9) is None
    ev = g.record_unknown_target(ATTACKER, "109", T0 + 10)
    assert isinstance(ev, Banned)
    assert ev.ban.reason == "enumeration"
    assert len(ev.ban.users) == 10


def test_enumeration_spread_over_more_than_window_does_not_ban() -> None:
    g = Guard()
    for i in range(30):
        assert g.record_unknown_target(ATTACKER, f"{100 + i}", T0 + i * 7) is None
    assert g.is_allowed(ATTACKER, T0 + 300)


# ---- flood ------------------------------------------------------------------------------------


def test_flood_blocks_above_rate() -> None:
    g = Guard()
    for i in range(100):
        assert g.record_request(ATTACKER, T0 + i * 0.009) is None
    ev = g.record_request(ATTACKER, T0 + 0.95)
    assert ev == FloodBlocked(ATTACKER, T0 + 0.95 + 300, 101)
    assert not g.is_allowed(ATTACKER, T0 + 1)
    assert not g.is_allowed(ATTACKER, T0 + 0.95 + 299.9)
    assert g.is_allowed(ATTACKER, T0 + 0.95 + 300)
    assert g.is_allowed("203.0.113.8", T0 + 1)


def test_flood_steady_rate_below_limit_is_fine() -> None:
    g = Guard()
    for i in range(2000):  # 80 requests per second for 25 s
        assert g.record_request(ATTACKER, T0 + i * 0.0125) is None


def test_flood_limit_scales_with_registrations() -> None:
    g = Guard()
    for i in range(300):
        assert g.record_request(OFFICE, T0 + i * 0.003, registered_count=3) is None
    ev = g.record_request(OFFICE, T0 + 0.95, registered_count=3)
    assert isinstance(ev, FloodBlocked)
    assert ev.rate == 301


def test_repeated_flood_blocks_become_a_ban() -> None:
    g = Guard()
    now = T0
    kinds = []
    for _ in range(3):
        ev = None
        for i in range(101):
            ev = g.record_request(ATTACKER, now + i * 0.001)
        kinds.append(type(ev))
        now += 400
    assert kinds == [FloodBlocked, FloodBlocked, Banned]
    assert not g.is_allowed(ATTACKER, now)
    assert g.active_bans(now)[0].reason == "flood"


# ---- addresses ------------------------------------------------------------------------------


def test_source_keys() -> None:
    assert source_key("203.0.113.7") == "203.0.113.7"
    assert source_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert source_key("[::ffff:203.0.113.7]") == "203.0.113.7"
    assert source_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert source_key("[2001:db8:1:2::1]") == "2001:db8:1:2::/64"
    assert source_key("fe80::1%eth0") == "fe80::/64"
    assert source_key("2001:db8::1", 128) == "2001:db8::1"
    assert source_key("2001:db8:1:2:3::", 48) == "2001:db8:1::/48"
    for junk in ("", "bogus", "1.2.3", "1.2.3.256", "01.2.3.4", "::g", "[", "1.2.3.4 "):
        assert source_key(junk) == junk


def test_ipv6_addresses_are_grouped_by_64() -> None:
    g = Guard()
    for i in range(5):
        ev = fail(g, f"2001:db8:1:2::{i + 1:x}", T0 + i)
    assert isinstance(ev, Banned)
    assert ev.ban.source == "2001:db8:1:2::/64"
    assert not g.is_allowed("2001:db8:1:2:ffff:ffff:ffff:ffff", T0 + 5)
    assert g.is_allowed("2001:db8:1:3::1", T0 + 5)


def test_ipv4_mapped_counts_as_ipv4() -> None:
    g = Guard()
    for i in range(4):
        fail(g, "::ffff:203.0.113.7", T0 + i)
    assert isinstance(fail(g, ATTACKER, T0 + 4), Banned)
    assert not g.is_allowed("::ffff:203.0.113.7", T0 + 5)


def test_malformed_hosts_never_crash() -> None:
    g = Guard()
    for i in range(5):
        ev = fail(g, "not an ip", T0 + i)
    assert isinstance(ev, Banned)
    assert ev.ban.source == "not an ip"
    assert not g.is_allowed("not an ip", T0 + 5)
    assert g.unban("not an ip", T0 + 6) == Unbanned("not an ip", "manual")
    assert g.is_allowed("", T0) and g.record_request("", T0) is None


# ---- lists ------------------------------------------------------------------------------------


def test_blacklist() -> None:
    g = Guard(GuardPolicy(blacklist=("203.0.113.0/24", "2001:db8:bad::/48", "192.0.2.9")))
    assert not g.is_allowed("203.0.113.200", T0)
    assert not g.is_allowed("::ffff:203.0.113.1", T0)
    assert not g.is_allowed("2001:db8:bad:1::1", T0)
    assert not g.is_allowed("192.0.2.9", T0)
    assert g.is_allowed("192.0.2.10", T0)
    g.set_blacklist([])
    assert g.is_allowed("203.0.113.200", T0)
    g.set_blacklist(["198.51.100.0/24"])
    assert not g.is_allowed("198.51.100.1", T0)
    g.set_whitelist(["198.51.100.1"])  # the whitelist wins
    assert g.is_allowed("198.51.100.1", T0)
    assert not g.is_allowed("198.51.100.2", T0)
    with pytest.raises(ValueError):
        g.set_blacklist(["nonsense/99"])


def test_disabled_guard_only_applies_the_blacklist() -> None:
    g = Guard(GuardPolicy(enabled=False, blacklist=("203.0.113.0/24",)))
    assert not g.is_allowed(ATTACKER, T0)
    host = "198.51.100.5"
    for i in range(50):
        assert fail(g, host, T0 + i) is None
        assert g.record_unknown_target(host, f"u{i}", T0 + i) is None
    assert g.inspect_signature(host, "friendly-scanner", None, T0) is None
    assert all(g.record_request(host, T0 + i * 1e-4) is None for i in range(1000))
    assert g.is_allowed(host, T0 + 100)


# ---- manual bans, restore, sweep -----------------------------------------------------------


def test_manual_ban_unban_and_hit_count() -> None:
    g = Guard()
    ev = g.ban("2001:db8:5:6::1", T0, duration=600, detail="seen in honeypot")
    assert ev.ban == Ban(
        "2001:db8:5:6::/64", "manual", T0, T0 + 600, 1, 0, (), None, "seen in honeypot"
    )
    for _ in range(3):
        assert not g.is_allowed("2001:db8:5:6::abc", T0 + 1)
    assert g.active_bans(T0 + 2)[0].hit_count == 3
    assert g.unban("2001:db8:5:6::77", T0 + 3) == Unbanned("2001:db8:5:6::/64", "manual")
    assert g.unban("2001:db8:5:6::/64", T0 + 3) is None
    assert g.is_allowed("2001:db8:5:6::abc", T0 + 4)
    # A manual unban forgets the offences: the next ban is offence 1 again.
    assert g.ban("2001:db8:5:6::1", T0 + 5).ban.offence == 1


def test_restore_after_restart() -> None:
    g = Guard()
    for i in range(5):
        fail(g, ATTACKER, T0 + i)
    g.ban("198.51.100.9", T0, duration=60)
    g.is_allowed(ATTACKER, T0 + 10)
    saved = g.active_bans(T0 + 10)
    assert [b.hit_count for b in saved] == [0, 1]

    g2 = Guard()
    g2.restore(saved)
    assert not g2.is_allowed(ATTACKER, T0 + 20)
    assert not g2.is_allowed("198.51.100.9", T0 + 20)
    assert [b.hit_count for b in g2.active_bans(T0 + 20)] == [1, 2]
    assert g2.expire(T0 + 60) == [Unbanned("198.51.100.9", "expired")]
    # The offence count survives the restart: the next ban doubles.
    until = T0 + 4 + 3 * HOUR
    assert g2.expire(until) == [Unbanned(ATTACKER, "expired")]
    for i in range(5):
        ev = fail(g2, ATTACKER, until + 100 + i)
    assert isinstance(ev, Banned)
    assert (ev.ban.offence, ev.ban.until - ev.ban.since) == (2, 6 * HOUR)


def test_restore_normalises_and_keeps_the_longer_ban() -> None:
    g = Guard()
    b = Ban("2001:db8:7:7::1", "manual", T0, T0 + 100)
    g.restore([b, replace(b, until=T0 + 50), Ban("::ffff:192.0.2.1", "scanner", T0, T0 + 10)])
    assert [(x.source, x.until) for x in g.active_bans(T0)] == [
        ("192.0.2.1", T0 + 10),
        ("2001:db8:7:7::/64", T0 + 100),
    ]


def test_expire_sweep_returns_unbanned_events() -> None:
    g = Guard()
    g.ban("192.0.2.1", T0, duration=10)
    g.ban("192.0.2.2", T0, duration=20)
    g.ban("192.0.2.3", T0, duration=30)
    assert g.next_expiry() == T0 + 10
    assert g.expire(T0 + 5) == []
    assert g.expire(T0 + 20) == [Unbanned("192.0.2.1", "expired"), Unbanned("192.0.2.2", "expired")]
    assert g.next_expiry() == T0 + 30
    assert [b.source for b in g.active_bans(T0 + 20)] == ["192.0.2.3"]


def test_expire_drops_stale_counters() -> None:
    g = Guard()
    fail(g, ATTACKER, T0)
    g.record_unknown_target(ATTACKER, "x", T0)
    g.record_request(ATTACKER, T0)
    assert g.stats()["failures"] == 1
    g.expire(T0 + 3600)
    stats = g.stats()
    assert (stats["failures"], stats["enumeration"], stats["rates"]) == (0, 0, 0)


def test_tables_stay_bounded_under_spoofed_sources() -> None:
    policy = GuardPolicy(max_sources=2_000, max_bans=1_000)
    g = Guard(policy)
    now = T0
    for i in range(100_000):
        host = f"{10 + i % 200}.{(i >> 8) & 255}.{i & 255}.{(i * 7) % 251}"
        now += 0.0001
        g.is_allowed(host, now)
        g.record_request(host, now)
        fail(g, host, now, user=f"u{i}", known=i % 2 == 0, live=i % 3 == 0)
        g.record_unknown_target(host, f"t{i}", now)
        if i % 10 == 0:
            g.inspect_signature(host, "friendly-scanner", None, now)
        if i % 1000 == 0:
            g.expire(now)
    stats = g.stats()
    assert stats["bans"] <= policy.max_bans
    assert all(v <= policy.max_sources for k, v in stats.items() if k != "bans"), stats


# ---- log lines --------------------------------------------------------------------------------


def test_format_log_line_exact() -> None:
    ban = Ban(
        "203.0.113.7",
        "auth-failures",
        T0,
        T0 + 3 * HOUR,
        offence=1,
        users=("1001", "1002"),
        user_agent="friendly-scanner",
    )
    assert format_log_line(Banned(ban)) == (
        "sipbox-guard action=ban source=203.0.113.7 reason=auth-failures"
        " since=2026-01-01T00:00:00Z until=2026-01-01T03:00:00Z offence=1"
        ' users="1001,1002" ua="friendly-scanner"'
    )
    odd = Ban(
        "2001:db8::/64",
        "manual",
        T0 + 0.75,
        T0 + 86400.9,
        offence=2,
        users=("a,b", 'q"x'),
        user_agent='evil\r\nsipbox-guard action=unban "x" \\',
        detail="by admin",
    )
    assert format_log_line(Banned(odd)) == (
        "sipbox-guard action=ban source=2001:db8::/64 reason=manual"
        " since=2026-01-01T00:00:00Z until=2026-01-02T00:00:00Z offence=2"
        ' users="a\\x2cb,q\\"x" ua="evil\\r\\nsipbox-guard action=unban \\"x\\" \\\\"'
        ' detail="by admin"'
    )
    assert format_log_line(Unbanned("203.0.113.7", "expired")) == (
        "sipbox-guard action=unban source=203.0.113.7 reason=expired"
    )
    assert format_log_line(FloodBlocked("203.0.113.7", T0 + 300, 250)) == (
        "sipbox-guard action=flood-block source=203.0.113.7 until=2026-01-01T00:05:00Z rate=250"
    )
    assert format_log_line(UserBlocked("198.51.100.20", "alice smith", T0 + 60)) == (
        'sipbox-guard action=user-block source=198.51.100.20 user="alice smith"'
        " until=2026-01-01T00:01:00Z"
    )
    assert format_log_line(Unbanned("not an ip", "manual")) == (
        'sipbox-guard action=unban source="not an ip" reason=manual'
    )
    far = Ban("192.0.2.1", "manual", T0, 1e20)
    assert "until=1e+20 " in format_log_line(Banned(far))


# ---- properties -------------------------------------------------------------------------------

WHITE = "192.0.2.0/28"
WHITE_HOSTS = [f"192.0.2.{i}" for i in range(16)] + ["::ffff:192.0.2.3"]
hosts = st.one_of(
    st.sampled_from(
        [*WHITE_HOSTS, "203.0.113.7", "2001:db8::1", "2001:db8::2", "127.0.0.1", "::1", "x"]
    ),
    st.text(max_size=12),
)
users = st.one_of(st.none(), st.text(max_size=8))
ops = st.one_of(
    st.tuples(st.just("allowed"), hosts),
    st.tuples(st.just("request"), hosts, st.integers(-1, 5)),
    st.tuples(st.just("fail"), hosts, users, st.booleans(), st.booleans()),
    st.tuples(st.just("unknown"), hosts, st.text(max_size=8)),
    st.tuples(st.just("signature"), hosts, st.sampled_from(["friendly-scanner", "Linphone", ""])),
    st.tuples(st.just("ban"), hosts, st.one_of(st.none(), st.floats(-10, 1e6))),
    st.tuples(st.just("unban"), hosts),
    st.tuples(st.just("expire")),
    st.tuples(st.just("user_blocked"), hosts, st.text(max_size=8)),
    st.tuples(st.just("restore")),
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(st.floats(0, 100_000), ops), max_size=60),
    small=st.booleans(),
)
def test_random_calls_never_raise_and_whitelist_always_allowed(
    steps: list[tuple[float, tuple[object, ...]]], small: bool
) -> None:
    policy = GuardPolicy(whitelist=(WHITE,), max_failures=2, enumeration_threshold=2)
    if small:
        policy = replace(policy, max_sources=4, max_bans=3, flood_rate=2)
    g = Guard(policy)
    now = T0
    for dt, op in steps:
        now += dt
        name, *args = op
        if name == "allowed":
            g.is_allowed(str(args[0]), now)
        elif name == "request":
            g.record_request(str(args[0]), now, int(args[1]))  # type: ignore[call-overload]
        elif name == "fail":
            host, user, known, live = args
            g.record_auth_failure(str(host), user, now, bool(known), "ua", bool(live))  # type: ignore[arg-type]
        elif name == "unknown":
            g.record_unknown_target(str(args[0]), str(args[1]), now)
        elif name == "signature":
            g.inspect_signature(str(args[0]), str(args[1]), None, now)
        elif name == "ban":
            try:
                g.ban(str(args[0]), now, args[1])  # type: ignore[arg-type]
            except GuardRefused:
                pass
            except ValueError:
                assert args[1] is not None and args[1] <= 0  # type: ignore[operator]
        elif name == "unban":
            g.unban(str(args[0]), now)
        elif name == "expire":
            for ev in g.expire(now):
                format_log_line(ev)
        elif name == "user_blocked":
            g.is_user_blocked(str(args[0]), str(args[1]), now)
        elif name == "restore":
            g.restore(g.active_bans(now))
        for host in WHITE_HOSTS:
            assert g.is_allowed(host, now)
    for ban in g.active_bans(now):
        format_log_line(Banned(ban))
