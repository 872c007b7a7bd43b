"""SecurityService: the guard wired to the dispatcher, auth, store, log, timer and transport.

The PBX side runs against the fake port and a real SQLite store (regkit); the clock is fake
except where the expiry timer itself is under test.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from sipbox.config import GuardSettings
from sipbox.pbx.dispatcher import RequestContext
from sipbox.pbx.guard import GuardRefused
from sipbox.pbx.security import SecurityService, policy_from_settings
from sipbox.sip.address import Address, Peer
from sipbox.sip.message import Request
from tests.pbx.regkit import (
    PHONE,
    REALM,
    SERVER,
    UA,
    Clock,
    Pbx,
    add_user,
    build,
    make_pbx,
    make_store,
)

ATTACKER = Address("udp", "203.0.113.66", 5070)
OFFICE = Address("udp", "198.51.100.50", 5060)


@pytest.fixture
async def store(tmp_path):
    store = await make_store(tmp_path)
    await add_user(store, "1001")
    await add_user(store, "1002")
    yield store
    await store.close()


class Rig:
    """A PBX whose auth and dispatcher report to a real SecurityService."""

    def __init__(self, pbx: Pbx, service: SecurityService) -> None:
        self.pbx = pbx
        self.service = service
        self.closed: list[str] = []
        self.accept = service.accept_source()

    def offer(self, request: Request, source: Address) -> int | None:
        """Hand a request to the dispatcher as the transport would (skipping it when the
        source check refuses it); the response status, or None when nothing was answered."""
        if not self.accept(source.host):
            return None
        before = len(self.pbx.port.responses)
        ctx = RequestContext(request, Peer(source, SERVER, None), "stx")
        self.pbx.dispatcher.handle_request(ctx)
        if len(self.pbx.port.responses) == before:
            return None
        return self.pbx.port.responses[-1].status

    def register(self, number: str, password: str, source: Address) -> int | None:
        """REGISTER, answer the 401: the final status (None = dropped or unanswered)."""
        ua = UA(self.pbx, number, password=password, source=source)
        if self.offer(ua.request(), source) != 401:
            return None
        challenge = self.pbx.port.responses[-1]
        before = len(self.pbx.port.responses)
        try:
            return ua.answer(challenge).status
        except AssertionError:  # pbx.send: no response
            assert len(self.pbx.port.responses) == before
            return None


async def make_rig(store, clock: Clock | None = None, **guard: object) -> Rig:
    clock = clock or Clock()
    service = SecurityService(GuardSettings(**guard), store, clock=clock)  # type: ignore[arg-type]
    await service.load()
    service.start()
    pbx = await make_pbx(store, clock=clock, guard=service.guard)  # type: ignore[arg-type]
    pbx.auth.on_guard_event = service.handle_event
    rig = Rig(pbx, service)
    service.attach(
        users=pbx.directory,
        live_registrations_from=pbx.registrar.live_registrations_from,
        close_source=rig.closed.append,
    )
    pbx.dispatcher.screen = service.screen
    return rig


def options(user: str | None, ua: str | None = None, display: str | None = None) -> Request:
    uri = f"sip:{user}@{REALM}" if user else f"sip:{REALM}"
    extra = f"User-Agent: {ua}\r\n" if ua else ""
    request = build("OPTIONS", uri=uri, to_uri=uri, extra=extra)
    if display is not None:
        request.headers.pop_first("from")
        request.headers.add("From", f'"{display}"<sip:100@1.1.1.1>;tag=x')
    return request


async def test_five_wrong_passwords_ban_the_source_silently(store, caplog) -> None:
    rig = await make_rig(store)
    caplog.set_level(logging.WARNING, "sipbox.security")
    statuses = [rig.register("1001", f"guess{n}", ATTACKER) for n in range(5)]
    # Four 403s; the fifth failure bans, and a banned source never gets an answer.
    assert statuses == [403, 403, 403, 403, None]
    # Banned: the transport drops it, the live TCP connections were closed, one log line.
    assert not rig.accept(ATTACKER.host)
    assert rig.closed == [ATTACKER.host]
    assert rig.offer(build("REGISTER", source=ATTACKER), ATTACKER) is None
    lines = [r.getMessage() for r in caplog.records if r.name == "sipbox.security"]
    assert len(lines) == 1
    assert lines[0].startswith(
        "sipbox-guard action=ban source=203.0.113.66 reason=auth-failures since="
    )
    assert 'users="1001"' in lines[0]
    # Other sources carry on.
    assert UA(rig.pbx, "1002", source=PHONE).register().status == 200
    await rig.service.stop()
    stored = await store.list_active_bans(rig.pbx.clock())
    assert [(b.source, b.reason, b.offence_count) for b in stored] == [
        ("203.0.113.66", "auth-failures", 1)
    ]
    assert stored[0].hit_count >= 1  # written back on stop
    events = await store.list_security_events()
    assert [(e.kind, e.source, e.reason) for e in events] == [
        ("ban", "203.0.113.66", "auth-failures")
    ]
    assert events[0].detail["users"] == ["1001"]


async def test_scanner_user_agent_and_svmap_from_are_banned_at_once(store) -> None:
    rig = await make_rig(store)
    assert rig.offer(options(None, ua="friendly-scanner"), ATTACKER) is None
    assert not rig.accept(ATTACKER.host)
    other = Address("udp", "203.0.113.67", 5060)
    assert rig.offer(options("100", display="sipvicious"), other) is None
    assert not rig.accept(other.host)
    assert rig.service.stats["scanner"] == 2
    # A legitimate phone's OPTIONS is answered.
    assert rig.offer(options(None, ua="Yealink SIP-T46S"), PHONE) == 200
    await rig.service.stop()


async def test_enumeration_of_unknown_users_bans(store) -> None:
    rig = await make_rig(store)
    answers = [rig.offer(options(str(100 + n)), ATTACKER) for n in range(12)]
    # Nine answered exactly like any OPTIONS; the tenth distinct unknown user bans.
    assert answers[:9] == [200] * 9
    assert answers[9:] == [None, None, None]
    ban = rig.service.active_bans()[0]
    assert (ban.source, ban.reason, len(ban.users)) == ("203.0.113.66", "enumeration", 10)
    await rig.service.stop()


async def test_enumeration_with_invite_and_register(store) -> None:
    rig = await make_rig(store)
    for n in range(10):
        uri = f"sip:{200 + n}@{REALM}"
        rig.offer(build("INVITE", uri=uri, to_uri=uri, from_user="x"), ATTACKER)
    assert rig.service.active_bans()[0].reason == "enumeration"
    reg_attacker = Address("udp", "203.0.113.80", 5060)
    statuses = {
        rig.offer(build("REGISTER", from_user=str(300 + n), source=reg_attacker), reg_attacker)
        for n in range(10)
    }
    # svwar sees one answer for every extension (401), then nothing at all.
    assert statuses == {401, None}
    assert not rig.accept(reg_attacker.host)
    await rig.service.stop()


async def test_known_users_and_registered_offices_are_not_enumeration(store) -> None:
    rig = await make_rig(store)
    for _ in range(20):
        assert rig.offer(options("1001"), ATTACKER) == 200
    assert UA(rig.pbx, "1001", source=OFFICE).register().status == 200
    for n in range(20):  # an office dialling out to numbers that are not users
        rig.offer(options(str(5550000 + n)), OFFICE)
    assert rig.service.active_bans() == []
    await rig.service.stop()


async def test_flood_is_blocked_and_scaled_by_registrations(store) -> None:
    clock = Clock()
    rig = await make_rig(store, clock, flood_rate=20)
    answered = [rig.offer(options(None), ATTACKER) for _ in range(30)]
    assert answered[:20] == [200] * 20 and answered[20] is None
    assert not rig.accept(ATTACKER.host)
    assert rig.closed == [ATTACKER.host]
    # An office with two registrations has twice the limit.
    UA(rig.pbx, "1001", source=OFFICE).register()
    UA(rig.pbx, "1002", source=OFFICE).register()
    clock.t += 5
    assert all(rig.offer(options(None), OFFICE) == 200 for _ in range(36))
    assert rig.accept(OFFICE.host)
    await rig.service.stop()
    events = await store.list_security_events()
    assert [e.kind for e in events] == ["flood-block"]


async def test_whitelisted_source_failing_100_times_is_never_banned(store) -> None:
    rig = await make_rig(store, whitelist=("203.0.113.0/24",))
    for attempt in range(100):
        assert rig.register("1001", f"x{attempt}", ATTACKER) == 403
    assert rig.offer(options(None, ua="friendly-scanner"), ATTACKER) == 200
    assert rig.service.active_bans() == []
    await rig.service.stop()


async def test_manual_ban_refusals_and_unban(store) -> None:
    rig = await make_rig(store, whitelist=("192.0.2.0/24",))
    service = rig.service
    with pytest.raises(GuardRefused, match="loopback"):
        service.ban("127.0.0.5")
    with pytest.raises(GuardRefused, match="whitelisted"):
        service.ban("192.0.2.44")
    with pytest.raises(GuardRefused, match="not an IP address"):
        service.ban("example.com")
    ban = service.ban("2001:db8:1:2::7", 60, "by hand")
    assert (ban.source, ban.reason, ban.detail) == ("2001:db8:1:2::/64", "manual", "by hand")
    assert ban.until - ban.since == 60
    assert not rig.accept("2001:db8:1:2::99")
    assert rig.closed == ["2001:db8:1:2::/64"]
    assert service.unban("2001:db8:1:2::/64")
    assert not service.unban("2001:db8:1:2::/64")
    assert rig.accept("2001:db8:1:2::99")
    await service.stop()
    events = await store.list_security_events()
    assert [(e.kind, e.reason) for e in events] == [("unban", "manual"), ("ban", "manual")]
    assert await store.list_active_bans(0) == []


async def test_lists_change_at_run_time_and_persist(store) -> None:
    rig = await make_rig(store, blacklist=("198.18.0.0/15",))
    service = rig.service
    service.ban("203.0.113.66")
    await service.add_entry("whitelist", "203.0.113.0/24", "office")
    assert service.active_bans() == []  # white-listing lifted the covered ban
    assert rig.accept("203.0.113.66")
    await service.add_entry("blacklist", "100.64.0.0/10")
    assert not rig.accept("100.64.1.1")
    assert "100.64.0.0/10" in rig.closed
    assert [e.origin for e in service.list_entries("blacklist")] == ["config", "api"]
    with pytest.raises(GuardRefused, match="configuration file"):
        await service.remove_entry("blacklist", "198.18.0.0/15")
    await service.stop()
    # A restart reads the stored lists back.
    again = SecurityService(GuardSettings(), store, clock=Clock())
    await again.load()
    assert again.accept_source()("203.0.113.9")
    assert not again.accept_source()("100.64.9.9")
    await again.remove_entry("blacklist", "100.64.0.0/10")
    assert again.accept_source()("100.64.9.9")


async def test_bans_survive_a_restart_and_expire_on_time(store) -> None:
    rig = await make_rig(store, clock=Clock(time.time()), ban_time=0.3)
    for attempt in range(5):
        rig.register("1001", f"g{attempt}", ATTACKER)
    await rig.service.stop()
    # Restart with the real clock: the ban is still in force...
    service = SecurityService(GuardSettings(ban_time=0.3), store)
    await service.load()
    service.start()
    assert not service.accept_source()(ATTACKER.host)
    # ...and the one timer lifts it on time.
    await asyncio.sleep(0.6)
    assert service.accept_source()(ATTACKER.host)
    assert service.active_bans() == []
    await service.stop()
    assert await store.list_active_bans(time.time()) == []
    kinds = [(e.kind, e.reason) for e in await store.list_security_events()]
    assert kinds[0] == ("unban", "expired")


async def test_disabled_guard_screens_nothing(store) -> None:
    rig = await make_rig(store, enabled=False)
    assert rig.offer(options(None, ua="friendly-scanner"), ATTACKER) == 200
    for attempt in range(10):
        assert rig.register("1001", f"x{attempt}", ATTACKER) == 403
    assert rig.accept(ATTACKER.host)
    await rig.service.stop()


def test_policy_zero_means_rule_off() -> None:
    policy = policy_from_settings(GuardSettings(max_failures=0, flood_rate=0))
    assert policy.max_failures >= 10**9 and policy.flood_rate >= 10**9
    defaults = policy_from_settings(GuardSettings())
    assert (defaults.max_failures, defaults.window, defaults.ban_time) == (5, 60.0, 10800.0)
    assert "friendly-scanner" in defaults.scanner_user_agents
