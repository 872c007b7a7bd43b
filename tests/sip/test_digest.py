"""Tests for sipbox.sip.digest: known answers, parser, nonces, server/client round trips."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipbox.sip.digest import (
    DigestAuthenticator,
    DigestChallenge,
    DigestClient,
    DigestCredentials,
    NonceCheck,
    NonceService,
    VerifyOutcome,
    answer_challenge,
    build_credentials,
    canonical_algorithm,
    choose_challenge,
    compute_ha1,
    compute_response,
    format_challenge,
    format_credentials,
    parse_challenge,
    parse_credentials,
    session_ha1,
    uri_matches,
)
from sipbox.sip.errors import RemoteProtocolError

SECRET = b"0123456789abcdef-test-secret"
REALM = "sipbox.test"


def counter_bytes() -> Callable[[int], bytes]:
    """A deterministic injected randomness source: distinct bytes on every call."""
    counter = itertools.count(1)

    def random_bytes(n: int) -> bytes:
        return next(counter).to_bytes(n, "big")

    return random_bytes


def make_service(**kwargs: float) -> NonceService:
    return NonceService(SECRET, counter_bytes(), **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Known-answer vectors


def test_rfc2617_example() -> None:
    # RFC 2617 §3.5
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    response = compute_response(
        ha1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "GET",
        "/dir/index.html",
        "MD5",
        qop="auth",
        nc=1,
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ("sha-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_examples(algorithm: str, expected: str) -> None:
    # RFC 7616 §3.9.1
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    response = compute_response(
        ha1, RFC7616_NONCE, "GET", "/dir/index.html", algorithm, "auth", "00000001",
        RFC7616_CNONCE,
    )  # fmt: skip
    assert response == expected


def test_rfc7616_authorization_header_parses_and_verifies_as_client() -> None:
    challenge = parse_challenge(
        'Digest\r\n    realm="http-auth@example.org",\r\n    qop="auth, auth-int",\r\n'
        "    algorithm=SHA-256,\r\n"
        f'    nonce="{RFC7616_NONCE}",\r\n    opaque="{RFC7616_OPAQUE}"'
    )
    assert challenge.qop == ("auth", "auth-int")
    assert challenge.algorithm == "SHA-256"
    assert challenge.opaque == RFC7616_OPAQUE
    value = answer_challenge(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life", RFC7616_CNONCE, 1
    )
    creds = parse_credentials(value)
    assert creds.response == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    assert creds.qop == "auth"
    assert creds.nc == "00000001"
    assert creds.opaque == RFC7616_OPAQUE
    assert creds.algorithm == "SHA-256"


# Expected values computed independently with coreutils md5sum/sha256sum.
SIP_HA1 = "7959365c1863678989bc54ef838399ec"


def test_sip_register_example() -> None:
    ha1 = compute_ha1("alice", REALM, "s3cret")
    assert ha1 == SIP_HA1
    args = (ha1, "abc123nonce", "REGISTER", "sip:sipbox.test")
    assert compute_response(*args, "MD5", "auth", 1, "0a4f113b") == (
        "5f5397265388590e273cc9862551c89b"
    )
    assert compute_response(*args) == "3605808d1375738fda39a6256fc9f43b"  # RFC 2069, no qop
    assert compute_response(*args, "MD5-sess", "auth", 1, "0a4f113b") == (
        "2ff4cddfc571eadc83fa51aca7ba45a2"
    )
    sha_ha1 = compute_ha1("alice", REALM, "s3cret", "SHA-256")
    assert (
        compute_response(
            sha_ha1, "abc123nonce", "REGISTER", "sip:sipbox.test", "SHA-256", "auth", 1, "0a4f113b"
        )
        == "a02e85ba853e0d75dfdd386b4efaee182ba8a2e4c20346ccb153a40fa8ba9afa"
    )


def test_auth_int_example() -> None:
    response = compute_response(
        SIP_HA1, "abc123nonce", "INVITE", "sip:bob@sipbox.test", "MD5", "auth-int", 2,
        "0a4f113b", b"v=0\r\n",
    )  # fmt: skip
    assert response == "f3f236f9873ccc29a47a04e33025f2da"


def test_session_ha1_and_algorithm_names() -> None:
    assert session_ha1(SIP_HA1, "n", "c", "MD5-sess") == session_ha1(SIP_HA1, "n", "c", "md5")
    assert canonical_algorithm(None) == "MD5"
    assert canonical_algorithm("md5-SESS") == "MD5-sess"
    assert canonical_algorithm("sha-256") == "SHA-256"
    assert canonical_algorithm("SHA-512-256") is None
    with pytest.raises(ValueError):
        compute_ha1("a", "b", "c", "SHA-1")
    with pytest.raises(ValueError):
        compute_response(SIP_HA1, "n", "REGISTER", "sip:x", "MD5-sess")  # no cnonce
    with pytest.raises(ValueError):
        compute_response(SIP_HA1, "n", "REGISTER", "sip:x", "MD5", "auth")  # no nc/cnonce


# --------------------------------------------------------------------------------------------
# Parser and formatter


def test_parse_credentials_lws_case_escapes_extra() -> None:
    creds = parse_credentials(
        'dIgEsT  UserName = "al\\"ice" ,REALM="sipbox.test",nonce="n1", '
        'uri="sip:sipbox.test", response="ABCDEF", Algorithm=md5, cnonce="c\\\\x", '
        'qop=auth, nc=0000000A, foo=bar, x-y="a b"'
    )
    assert creds.username == 'al"ice'
    assert creds.realm == "sipbox.test"
    assert creds.algorithm == "md5"
    assert creds.canonical_algorithm == "MD5"
    assert creds.cnonce == "c\\x"
    assert creds.nc == "0000000A"
    assert creds.nc_value == 10
    assert dict(creds.extra) == {"foo": "bar", "x-y": "a b"}
    assert parse_credentials(format_credentials(creds)) == creds


def test_parse_credentials_folded_lines() -> None:
    creds = parse_credentials(
        'Digest username="bob",\r\n realm="r",\r\n\tnonce="n", uri="sip:r", response="x"'
    )
    assert (creds.username, creds.realm, creds.qop) == ("bob", "r", None)


def test_format_credentials_canonical() -> None:
    creds = DigestCredentials(
        username="alice", realm=REALM, nonce="n", uri="sip:sipbox.test", response="abc",
        algorithm="MD5", cnonce="c", opaque="o", qop="auth", nc="00000001",
    )  # fmt: skip
    assert format_credentials(creds) == (
        'Digest username="alice", realm="sipbox.test", nonce="n", uri="sip:sipbox.test", '
        'response="abc", algorithm=MD5, cnonce="c", opaque="o", qop=auth, nc=00000001'
    )


def test_format_and_parse_challenge() -> None:
    challenge = DigestChallenge(
        realm=REALM, nonce="n\\1", algorithm="SHA-256", qop=("auth", "auth-int"), opaque="o",
        stale=True, extra={"charset": "UTF-8"},
    )  # fmt: skip
    text = format_challenge(challenge)
    assert text == (
        'Digest realm="sipbox.test", nonce="n\\\\1", opaque="o", stale=true, '
        'algorithm=SHA-256, qop="auth,auth-int", charset=UTF-8'
    )
    assert parse_challenge(text) == challenge
    # stale quoted and in any case; anything else is false (RFC 2617 §3.2.1)
    assert parse_challenge('Digest realm="r", nonce="n", stale="TRUE"').stale
    assert not parse_challenge('Digest realm="r", nonce="n", stale=maybe').stale
    assert parse_challenge('Digest realm="r", nonce="n", userhash=true').userhash


def test_username_star() -> None:
    creds = parse_credentials(
        'Digest username*=UTF-8\'\'J%C3%A4s%C3%B8n%20Doe, realm="r", nonce="n", '
        'uri="sip:r", response="x", userhash=false'
    )
    assert creds.username == "Jäsøn Doe"
    assert not creds.userhash


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Digest",
        "Digest ",
        'Basic realm="r"',
        'Digest username="a", realm="r", nonce="n", uri="u"',  # no response
        'Digest username="a", username="b", realm="r", nonce="n", uri="u", response="x"',
        'Digest username="a", REALM="r", realm="r", nonce="n", uri="u", response="x"',
        'Digest username="a, realm="r", nonce="n", uri="u", response="x"',
        'Digest username="a",, realm="r", nonce="n", uri="u", response="x"',
        'Digest username="a", realm="r", nonce="n", uri="u", response="x",',
        'Digest username="a" realm="r", nonce="n", uri="u", response="x"',
        'Digest username="a", realm="r", nonce="n", uri=sip:u, response="x"',
        'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth',
        'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth, '
        'cnonce="c", nc=xyz',
        'Digest username="a", realm="r", nonce="n", uri="u", response="x", nc=00000001',
        'Digest username="a\r\n", realm="r", nonce="n", uri="u", response="x"',
        'Digest username*=UTF-8\'\'%FF, realm="r", nonce="n", uri="u", response="x"',
        'Digest username="a", username*=UTF-8\'\'b, realm="r", nonce="n", uri="u", response="x"',
        "Digest " + "a=b, " * 5000 + "c=d",
    ],
)
def test_parse_credentials_rejects(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_credentials(value)
    assert info.value.status_hint == 400


@pytest.mark.parametrize(
    "value", ['Digest nonce="n"', 'Digest realm="r"', 'Digest realm="r", nonce="n", nonce="m"']
)
def test_parse_challenge_rejects(value: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_challenge(value)


_alphabet = st.sampled_from(
    list('Digest username="\\,= \t\r\nrealmnoceuriqpaut-*:@0123456789aé\x00\x7f\ud800')
)
_texts = st.one_of(st.text(), st.text(alphabet=_alphabet, max_size=80))


@settings(max_examples=500)
@given(_texts)
def test_fuzz_parse_only_raises_remote_protocol_error(value: str) -> None:
    for parse in (parse_credentials, parse_challenge):
        try:
            parse(value)
        except RemoteProtocolError:
            pass


_value = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=20)


@given(
    username=_value,
    realm=_value,
    nonce=_value,
    uri=_value,
    response=_value,
    cnonce=_value,
    opaque=st.none() | _value,
    nc=st.integers(1, 0xFFFFFFFF),
)
def test_credentials_round_trip(
    username: str, realm: str, nonce: str, uri: str, response: str, cnonce: str,
    opaque: str | None, nc: int,
) -> None:  # fmt: skip
    creds = DigestCredentials(
        username=username, realm=realm, nonce=nonce, uri=uri, response=response,
        algorithm="SHA-256", cnonce=cnonce, opaque=opaque, qop="auth", nc=f"{nc:08x}",
    )  # fmt: skip
    assert parse_credentials(format_credentials(creds)) == creds


# --------------------------------------------------------------------------------------------
# Nonces


def test_nonce_valid_and_expires_exactly_at_lifetime() -> None:
    service = make_service(lifetime=300.0)
    nonce = service.issue(1000.0, REALM)
    assert service.check(nonce, 1000.0, REALM) is NonceCheck.VALID
    assert service.check(nonce, 1299.999, REALM) is NonceCheck.VALID
    assert service.check(nonce, 1300.0, REALM) is NonceCheck.STALE
    assert service.check(nonce, 5000.0, REALM) is NonceCheck.STALE


def test_nonce_from_the_future_beyond_skew_is_stale() -> None:
    service = make_service(max_skew=5.0)
    nonce = service.issue(1000.0, REALM)
    assert service.check(nonce, 995.0, REALM) is NonceCheck.VALID
    assert service.check(nonce, 994.9, REALM) is NonceCheck.STALE


def test_nonce_shared_between_nodes_with_same_secret() -> None:
    a, b = make_service(), make_service()
    assert b.check(a.issue(10.0, REALM), 11.0, REALM) is NonceCheck.VALID
    other = NonceService(b"another-secret-of-16+", counter_bytes())
    assert other.check(a.issue(10.0, REALM), 11.0, REALM) is NonceCheck.FORGED


def test_nonce_forged() -> None:
    service = make_service()
    nonce = service.issue(1000.0, REALM)
    assert service.check(nonce, 1001.0, "other.realm") is NonceCheck.FORGED
    for i in range(len(nonce)):
        replacement = "A" if nonce[i] != "A" else "B"
        tampered = nonce[:i] + replacement + nonce[i + 1 :]
        assert service.check(tampered, 1001.0, REALM) is NonceCheck.FORGED
    for bad in ("", "!!!", nonce + "A", nonce[:-1], "é" * len(nonce), nonce.replace("-", "+")):
        if bad != nonce:
            assert service.check(bad, 1001.0, REALM) is NonceCheck.FORGED


def test_nonce_count_replay() -> None:
    service = make_service()
    nonce = service.issue(1000.0, REALM)
    assert service.check(nonce, 1001.0, REALM, nc=1) is NonceCheck.VALID
    assert service.check(nonce, 1001.0, REALM, nc=1) is NonceCheck.REPLAYED
    assert service.check(nonce, 1002.0, REALM, nc=2) is NonceCheck.VALID
    assert service.check(nonce, 1002.0, REALM, nc=5) is NonceCheck.VALID
    assert service.check(nonce, 1002.0, REALM, nc=4) is NonceCheck.REPLAYED
    assert service.check(nonce, 1002.0, REALM, nc=6) is NonceCheck.VALID
    # without nc (no qop) nothing is recorded: reusable until expiry
    assert service.check(nonce, 1003.0, REALM) is NonceCheck.VALID
    assert service.check(nonce, 1003.0, REALM) is NonceCheck.VALID
    # another nonce has its own count
    other = service.issue(1000.0, REALM)
    assert service.check(other, 1001.0, REALM, nc=1) is NonceCheck.VALID


def test_replay_table_bounded_and_safe_when_full() -> None:
    service = make_service(lifetime=300.0, max_entries=10)
    nonces = [service.issue(1000.0 + i, REALM) for i in range(25)]
    for nonce in nonces:
        assert service.check(nonce, 1030.0, REALM, nc=1) is NonceCheck.VALID
        assert service.tracked <= 10
    assert service.tracked == 10
    # an evicted (older) nonce cannot be proven fresh: REPLAYED, never silently accepted
    assert service.check(nonces[0], 1030.0, REALM, nc=1) is NonceCheck.REPLAYED
    assert service.check(nonces[0], 1030.0, REALM, nc=2) is NonceCheck.REPLAYED
    # the newest are still counted
    assert service.check(nonces[-1], 1030.0, REALM, nc=2) is NonceCheck.VALID
    # a nonce issued after the eviction watermark is fresh
    fresh = service.issue(1031.0, REALM)
    assert service.check(fresh, 1031.0, REALM, nc=1) is NonceCheck.VALID


def test_replay_table_forgets_expired_nonces() -> None:
    service = make_service(lifetime=300.0, max_entries=100)
    for i in range(50):
        assert service.check(service.issue(float(i), REALM), 60.0, REALM, nc=1) is (
            NonceCheck.VALID
        )
    assert service.tracked == 50
    late = service.issue(400.0, REALM)
    assert service.check(late, 400.0, REALM, nc=1) is NonceCheck.VALID
    assert service.tracked == 1  # the 50 old ones (issued 0..49, expired by 349) are gone


def test_nonce_service_validates_arguments() -> None:
    with pytest.raises(ValueError):
        NonceService(b"short", counter_bytes())
    with pytest.raises(ValueError):
        NonceService(SECRET, lambda n: b"x").issue(0.0)


# --------------------------------------------------------------------------------------------
# Server verification and client round trips


PASSWORD = "s3cret"


def ha1_store(username: str, algorithm: str) -> str | None:
    """An HA1 source that knows alice (plain) and also her `alice@realm` form."""
    user = DigestCredentials(username, REALM, "", "", "").user_part(REALM)
    if user != "alice":
        return None
    return compute_ha1(username, REALM, PASSWORD, algorithm)


def make_auth(**kwargs: object) -> DigestAuthenticator:
    return DigestAuthenticator(REALM, make_service(), **kwargs)  # type: ignore[arg-type]


def round_trip(
    auth: DigestAuthenticator,
    *,
    algorithm: str = "MD5",
    username: str = "alice",
    password: str = PASSWORD,
    method: str = "REGISTER",
    body: bytes = b"",
    verify_body: bytes | None = None,
    now: float = 1000.0,
    later: float = 1001.0,
) -> tuple[DigestCredentials, VerifyOutcome, str]:
    challenges = [parse_challenge(v) for v in auth.challenges(now)]
    challenge = next(c for c in challenges if c.algorithm == algorithm)
    value = answer_challenge(
        challenge, method, "sip:sipbox.test", username, password, "cn0nce", 1, body
    )
    creds = parse_credentials(value)
    result = auth.verify(
        creds, method, ha1_store, later, body if verify_body is None else verify_body
    )
    return creds, result.outcome, result.reason


def test_challenges_one_per_algorithm_in_order() -> None:
    auth = make_auth(algorithms=("MD5", "SHA-256"))
    values = auth.challenges(1000.0)
    parsed = [parse_challenge(v) for v in values]
    assert [c.algorithm for c in parsed] == ["MD5", "SHA-256"]
    assert parsed[0].nonce == parsed[1].nonce
    assert all(c.qop == ("auth",) and c.realm == REALM and not c.stale for c in parsed)
    assert values[0].startswith('Digest realm="sipbox.test", nonce="')
    assert values[0].endswith(', algorithm=MD5, qop="auth"')
    assert all(parse_challenge(v).stale for v in auth.challenges(1000.0, stale=True))


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
def test_round_trip_algorithms(algorithm: str) -> None:
    auth = make_auth(algorithms=(algorithm,))
    creds, outcome, reason = round_trip(auth, algorithm=algorithm)
    assert outcome is VerifyOutcome.OK, reason
    assert creds.qop == "auth"
    assert creds.cnonce == "cn0nce"


def test_round_trip_auth_int() -> None:
    auth = make_auth(qop=("auth-int",))
    creds, outcome, _ = round_trip(auth, method="INVITE", body=b"v=0\r\n")
    assert outcome is VerifyOutcome.OK
    assert creds.qop == "auth-int"
    _, outcome, reason = round_trip(auth, method="INVITE", body=b"v=0\r\n", verify_body=b"v=1")
    assert (outcome, reason) == (VerifyOutcome.FAILED, "wrong response")


def test_client_prefers_auth_over_auth_int() -> None:
    auth = make_auth(qop=("auth-int", "auth"))
    creds, outcome, _ = round_trip(auth)
    assert outcome is VerifyOutcome.OK
    assert creds.qop == "auth"


def test_round_trip_no_qop() -> None:
    auth = make_auth(qop=())
    creds, outcome, _ = round_trip(auth)
    assert outcome is VerifyOutcome.OK
    assert (creds.qop, creds.nc, creds.cnonce) == (None, None, None)
    # RFC 2069 mode: the same credentials stay valid until the nonce expires
    assert auth.verify(creds, "REGISTER", ha1_store, 1100.0).outcome is VerifyOutcome.OK
    assert auth.verify(creds, "REGISTER", ha1_store, 1300.0).outcome is VerifyOutcome.STALE


def test_wrong_password_fails() -> None:
    _, outcome, reason = round_trip(make_auth(), password="guess")
    assert (outcome, reason) == (VerifyOutcome.FAILED, "wrong response")


def test_unknown_user_fails() -> None:
    _, outcome, reason = round_trip(make_auth(), username="mallory")
    assert outcome is VerifyOutcome.FAILED
    assert reason == "no credentials for user"


def test_user_at_realm_username() -> None:
    creds, outcome, _ = round_trip(make_auth(), username="alice@sipbox.test")
    assert outcome is VerifyOutcome.OK
    assert creds.username == "alice@sipbox.test"
    assert creds.user_part(REALM) == "alice"
    assert creds.user_part("other") == "alice@sipbox.test"
    # a mapping source (HA1 of the plain user) cannot match the user@realm form
    result = make_auth().verify(creds, "REGISTER", {"MD5": SIP_HA1}, 1001.0)
    assert result.outcome is VerifyOutcome.FAILED


def test_mapping_ha1_source() -> None:
    auth = make_auth(algorithms=("MD5", "SHA-256"))
    challenge = choose_challenge(auth.challenges(1000.0))
    assert challenge is not None and challenge.algorithm == "SHA-256"
    creds = build_credentials(challenge, "REGISTER", "sip:x", "alice", PASSWORD, "c", 1)
    store = {
        "MD5": compute_ha1("alice", REALM, PASSWORD),
        "SHA-256": compute_ha1("alice", REALM, PASSWORD, "SHA-256"),
    }
    result = auth.verify(creds, "REGISTER", store, 1001.0)
    assert result.ok and result.algorithm == "SHA-256" and result.username == "alice"


def test_replayed_request_is_stale_not_failed() -> None:
    auth = make_auth()
    creds, outcome, _ = round_trip(auth)
    assert outcome is VerifyOutcome.OK
    again = auth.verify(creds, "REGISTER", ha1_store, 1002.0)
    assert again.outcome is VerifyOutcome.STALE
    assert "replayed" in again.reason


def test_expired_nonce_is_stale_only_with_correct_response() -> None:
    auth = make_auth()
    _, outcome, _ = round_trip(auth, later=1300.0)
    assert outcome is VerifyOutcome.STALE
    _, outcome, _ = round_trip(auth, later=1300.0, password="guess")
    assert outcome is VerifyOutcome.FAILED


def test_wrong_response_does_not_burn_nonce_count() -> None:
    auth = make_auth()
    challenge = parse_challenge(auth.challenges(1000.0)[0])
    bad = build_credentials(challenge, "REGISTER", "sip:x", "alice", "guess", "c", 5)
    assert auth.verify(bad, "REGISTER", ha1_store, 1001.0).outcome is VerifyOutcome.FAILED
    good = build_credentials(challenge, "REGISTER", "sip:x", "alice", PASSWORD, "c", 1)
    assert auth.verify(good, "REGISTER", ha1_store, 1001.0).ok


def _answer(auth: DigestAuthenticator, **changes: object) -> DigestCredentials:
    challenge = parse_challenge(auth.challenges(1000.0)[0])
    creds = build_credentials(challenge, "REGISTER", "sip:x", "alice", PASSWORD, "c", 1)
    return dataclasses.replace(creds, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"realm": "other"}, "realm mismatch"),
        ({"algorithm": "SHA-256"}, "algorithm not offered"),
        ({"algorithm": "SHA-1"}, "algorithm not offered"),
        ({"qop": None, "nc": None, "cnonce": None}, "qop missing"),
        ({"qop": "auth-int"}, "qop not offered"),
        ({"nonce": "not-ours"}, "nonce not issued by us"),
        ({"uri": ""}, "empty uri"),
        ({"userhash": True}, "userhash is not supported"),
    ],
)
def test_verify_failures(changes: dict[str, object], reason: str) -> None:
    auth = make_auth()
    result = auth.verify(_answer(auth, **changes), "REGISTER", ha1_store, 1001.0)
    assert result.outcome is VerifyOutcome.FAILED
    assert result.reason.startswith(reason)


def test_uri_matches() -> None:
    assert uri_matches("sip:sipbox.test", "SIP:sipbox.test")
    assert uri_matches(" <sip:a@b> ", "sip:a@b")
    assert not uri_matches("sip:a@b", "sip:c@b")
    creds = _answer(make_auth())
    assert creds.uri_matches("sip:x")


def test_choose_challenge() -> None:
    md5 = 'Digest realm="r", nonce="n", algorithm=MD5, qop="auth"'
    sha = 'Digest realm="r", nonce="n", algorithm=sha-256, qop="auth"'
    assert choose_challenge([md5, sha]) == parse_challenge(sha)
    assert choose_challenge([md5, 'Basic realm="r"', "garbage"]) == parse_challenge(md5)
    assert choose_challenge(['Digest realm="r", nonce="n", algorithm=SHA-512-256']) is None
    assert choose_challenge(['Digest realm="r", nonce="n", qop="weird"']) is None
    assert choose_challenge([md5, sha], realm="elsewhere") is None
    no_alg = parse_challenge('Digest realm="r", nonce="n"')
    assert choose_challenge([no_alg]) == no_alg


def test_client_echoes_opaque_and_algorithm_absence() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", opaque="op"')
    value = answer_challenge(challenge, "INVITE", "sip:b@r", "alice", "pw", "cn", 1)
    creds = parse_credentials(value)
    assert creds.opaque == "op"
    assert creds.algorithm is None
    assert creds.qop is None and creds.nc is None and creds.cnonce is None
    with pytest.raises(RemoteProtocolError):
        answer_challenge(
            'Digest realm="r", nonce="n", algorithm=SHA-1', "INVITE", "sip:b", "a", "p", "c", 1
        )


def test_digest_client_counts_nc_per_nonce() -> None:
    auth = make_auth()
    client = DigestClient("alice", PASSWORD, counter_bytes())
    challenge = auth.challenges(1000.0)[0]
    first = parse_credentials(client.authorize(challenge, "REGISTER", "sip:sipbox.test"))
    second = parse_credentials(client.authorize(challenge, "REGISTER", "sip:sipbox.test"))
    assert (first.nc, second.nc) == ("00000001", "00000002")
    assert first.cnonce == second.cnonce
    assert auth.verify(first, "REGISTER", ha1_store, 1001.0).ok
    assert auth.verify(second, "REGISTER", ha1_store, 1002.0).ok
    fresh = auth.challenges(1003.0, stale=True)[0]
    third = parse_credentials(client.authorize(fresh, "REGISTER", "sip:sipbox.test"))
    assert third.nc == "00000001" and third.cnonce != first.cnonce
    assert auth.verify(third, "REGISTER", ha1_store, 1004.0).ok
