"""Authentication: digest (401/407, stale, 403, user@realm), IP authorization, guard reports."""

from __future__ import annotations

import os
import re

import pytest

from sipbox.pbx.auth import load_nonce_secret
from sipbox.pbx.dispatcher import RequestContext
from sipbox.sip.address import Address, Peer
from sipbox.sip.digest import NonceService, parse_challenge

from .regkit import REALM, SERVER, UA, add_user, build, make_pbx, make_store

PHONE = Address("udp", "198.51.100.7", 5062)
GATEWAY = Address("udp", "10.9.8.7", 5060)


@pytest.fixture
async def store(tmp_path):
    store = await make_store(tmp_path)
    await add_user(store, "1001")
    await add_user(
        store, "2000", password=None, ip_auth=("10.9.8.7",), static_contact="10.9.8.7:5060"
    )
    await add_user(store, "2001", password="gwpass", ip_auth=("10.9.9.0/24",))
    yield store
    await store.close()


def _without_nonce(value: str) -> str:
    return re.sub(r'nonce="[^"]*"', 'nonce="N"', value)


async def test_unknown_user_challenged_exactly_like_known(store) -> None:
    pbx = await make_pbx(store, algorithms=("MD5", "SHA-256"))
    known = pbx.send(build("REGISTER", from_user="1001"), PHONE)
    unknown = pbx.send(build("REGISTER", from_user="9999"), PHONE)
    assert known.status == unknown.status == 401
    k = [(n, _without_nonce(v)) for n, v in known.headers if n.lower() != "to"]
    u = [(n, _without_nonce(v)) for n, v in unknown.headers if n.lower() != "to"]
    # Everything but Via branch / From tag (different requests) and the nonce is identical.
    norm = [(n, v) for n, v in k if n.lower() not in ("via", "from")]
    assert norm == [(n, v) for n, v in u if n.lower() not in ("via", "from")]
    assert [n for n, _ in known.headers] == [n for n, _ in unknown.headers]
    algorithms = [parse_challenge(v).algorithm for v in known.headers.get_all("WWW-Authenticate")]
    assert algorithms == ["MD5", "SHA-256"]
    # Answering for an unknown user gives the very answer a wrong password gets.
    wrong = UA(pbx, "1001", password="nope").register()
    ghost = UA(pbx, "9999", password="whatever").register()
    assert wrong.status == ghost.status == 403
    assert wrong.reason == ghost.reason
    assert [f[1:3] for f in pbx.guard.failures] == [("1001", True), ("9999", False)]
    assert ("198.51.100.7", "9999") in pbx.guard.unknown_targets


async def test_wrong_password_403_and_guard_failure(store) -> None:
    pbx = await make_pbx(store)
    r = UA(pbx, "1001", password="bad").register()
    assert r.status == 403
    assert pbx.guard.failures == [("198.51.100.7", "1001", True, False)]
    # The first challenge was not a failure; a good password is not either.
    assert UA(pbx, "1001").register().status == 200
    assert len(pbx.guard.failures) == 1


async def test_stale_nonce_rechallenged_with_stale_true(store) -> None:
    pbx = await make_pbx(store)
    ua = UA(pbx)
    challenge = pbx.send(ua.request(), PHONE)
    pbx.clock.t += 301  # nonce lifetime is 300 s
    again = ua.answer(challenge)
    assert again.status == 401
    assert parse_challenge(again.headers.get("WWW-Authenticate")).stale
    assert pbx.guard.failures == []
    assert ua.answer(again).status == 200


async def test_username_with_realm_accepted(store) -> None:
    pbx = await make_pbx(store)
    ua = UA(pbx, "1001", username=f"1001@{REALM}")
    assert ua.register().status == 200


async def test_proxy_challenge_for_other_requests(store) -> None:
    pbx = await make_pbx(store)
    seen = []

    def handler(ctx: RequestContext) -> None:
        result = pbx.auth.authenticate(ctx, proxy=True)
        seen.append(result)
        if result.ok:
            pbx.dispatcher.reply(ctx, 200)

    pbx.dispatcher.on_request("MESSAGE", handler)
    ua = UA(pbx)
    first = pbx.send(ua.request("MESSAGE", contacts=[]), PHONE)
    assert first.status == 407 and first.headers.get("Proxy-Authenticate")
    ok = ua.answer(first, method="MESSAGE", contacts=[])
    assert ok.status == 200
    assert seen[-1].method == "digest" and seen[-1].user.number == "1001"
    # Authenticated as 1001 but claiming to be 2001 in From: refused.
    ua_as = UA(pbx, "2001", password="secret", username="1001")
    first = pbx.send(ua_as.request("MESSAGE", contacts=[]), PHONE)
    assert ua_as.answer(first, method="MESSAGE", contacts=[]).status == 403


async def test_ip_authorized_user_accepted_without_challenge(store) -> None:
    pbx = await make_pbx(store)
    results = []

    def handler(ctx: RequestContext) -> None:
        results.append(pbx.auth.authenticate(ctx, proxy=True))
        if results[-1].ok:
            pbx.dispatcher.reply(ctx, 200)

    pbx.dispatcher.on_request("MESSAGE", handler)
    # Claims its own number from its address.
    assert pbx.send(build("MESSAGE", from_user="2000"), GATEWAY).status == 200
    assert results[-1].method == "ip" and results[-1].user.number == "2000"
    # Claims nobody we know: exactly one IP user matches -> that user.
    assert pbx.send(build("MESSAGE", from_user="+15551234"), GATEWAY).status == 200
    assert results[-1].user.number == "2000"
    # Password-less IP user claimed from another address: 403 and a guard failure.
    r = pbx.send(build("MESSAGE", from_user="2000"), PHONE)
    assert r.status == 403
    assert pbx.guard.failures[-1][:2] == ("198.51.100.7", "2000")
    # IP user with a password, from another address: a normal challenge.
    r = pbx.send(build("MESSAGE", from_user="2001"), PHONE)
    assert r.status == 407
    # ... and from its network: accepted.
    assert (
        pbx.send(build("MESSAGE", from_user="2001"), Address("udp", "10.9.9.44", 5060)).status
        == 200
    )
    # Reachable without ever registering; the last source is remembered.
    assert pbx.registrar.reachable("2000")
    [target] = pbx.registrar.targets("2000")
    assert target.request_uri == "sip:2000@10.9.8.7:5060"
    assert target.destination == Address("udp", "10.9.8.7", 5060)
    assert pbx.auth.ip_sources["2001"].host == "10.9.9.44"
    assert pbx.registrar.reachable("2001")


async def test_blocked_user_gets_403_without_password_check(store) -> None:
    pbx = await make_pbx(store)
    pbx.guard.blocked.add(("198.51.100.7", "1001"))
    assert UA(pbx).register().status == 403


async def test_scanner_user_agent_gets_no_answer(store) -> None:
    pbx = await make_pbx(store)
    req = build("REGISTER", extra="User-Agent: friendly-scanner\r\n")
    pbx.dispatcher.handle_request(RequestContext(req, Peer(PHONE, SERVER, None), None))
    assert pbx.port.responses == []


async def test_malformed_credentials_400(store) -> None:
    pbx = await make_pbx(store)
    req = build("REGISTER", extra="Authorization: Digest garbage\r\n")
    assert pbx.send(req, PHONE).status == 400


async def test_forged_nonce_is_a_failure(store) -> None:
    pbx = await make_pbx(store)
    ua = UA(pbx)
    challenge = pbx.send(ua.request(), PHONE)
    other = NonceService(b"x" * 32, os.urandom)
    forged = challenge.headers.get("WWW-Authenticate")
    forged = re.sub(r'nonce="[^"]*"', f'nonce="{other.issue(pbx.clock(), REALM)}"', forged)
    challenge.headers.set("WWW-Authenticate", forged)
    assert ua.answer(challenge).status == 403
    assert len(pbx.guard.failures) == 1


async def test_works_without_guard(store) -> None:
    pbx = await make_pbx(store)
    pbx.auth.guard = None
    assert UA(pbx, password="bad").register().status == 403
    assert UA(pbx).register().status == 200


def test_nonce_secret_created_once_with_mode_0600(tmp_path) -> None:
    first = load_nonce_secret(tmp_path)
    assert len(first) == 32
    assert (tmp_path / "nonce-secret").stat().st_mode & 0o777 == 0o600
    assert load_nonce_secret(tmp_path) == first
