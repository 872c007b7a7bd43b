"""Registrar rules (RFC 3261 §10.3, RFC 5626 basics) against a fake port and real SQLite."""

from __future__ import annotations

import pytest

from sipbox.config import RegistrarSettings
from sipbox.sip.address import Address

from .regkit import REALM, UA, add_user, build, make_pbx, make_store


@pytest.fixture
async def store(tmp_path):
    store = await make_store(tmp_path)
    await add_user(store, "1001")
    await add_user(store, "1002", password="other")
    await add_user(store, "1003", max_contacts=2)
    yield store
    await store.close()


def contacts_of(response) -> dict[str, int]:
    out = {}
    for value in response.headers.values("contact"):
        uri, _, params = value.partition(">")
        expires = [p.split("=")[1] for p in params.split(";") if p.startswith("expires=")]
        out[uri.lstrip("<")] = int(expires[0])
    return out


async def test_register_challenge_then_200_with_bindings_and_date(store) -> None:
    pbx = await make_pbx(store)
    ua = UA(pbx)
    first = pbx.send(ua.request(), ua.source)
    assert first.status == 401
    assert 'realm="pbx.test"' in first.headers.get("WWW-Authenticate")
    ok = ua.answer(first)
    assert ok.status == 200
    assert contacts_of(ok) == {"sip:1001@198.51.100.7:5062": 3600}
    assert ok.headers.get("Date", "").endswith("GMT")
    assert pbx.registrar.count() == 1
    [binding] = pbx.registrar.bindings_for("1001")
    assert binding.aor == f"sip:1001@{REALM}"
    assert binding.source == ua.source


async def test_expires_header_param_default_and_cap(store) -> None:
    pbx = await make_pbx(store, settings=RegistrarSettings(max_expires=600, default_expires=300))
    ua = UA(pbx)
    ok = ua.register(
        contacts=["<sip:1001@10.0.0.1:5060>;expires=120", "<sip:1001@10.0.0.2:5060>"],
        expires=500,
    )
    assert contacts_of(ok) == {"sip:1001@10.0.0.1:5060": 120, "sip:1001@10.0.0.2:5060": 500}
    ok = ua.register(contacts=["<sip:1001@10.0.0.3:5060>"])
    assert contacts_of(ok)["sip:1001@10.0.0.3:5060"] == 300  # default
    ok = ua.register(contacts=["<sip:1001@10.0.0.3:5060>"], expires=99999)
    assert contacts_of(ok)["sip:1001@10.0.0.3:5060"] == 600  # capped


async def test_423_below_min_expires_and_nothing_applied(store) -> None:
    pbx = await make_pbx(store)
    ua = UA(pbx)
    r = ua.register(contacts=["<sip:1001@10.0.0.1>", "<sip:1001@10.0.0.2>;expires=10"])
    assert r.status == 423
    assert r.headers.get("Min-Expires") == "60"
    assert pbx.registrar.count() == 0


async def test_expires_zero_removes_one_and_star_removes_all(store) -> None:
    pbx = await make_pbx(store)
    ua = UA(pbx)
    ua.register(contacts=["<sip:1001@10.0.0.1>", "<sip:1001@10.0.0.2>"])
    assert pbx.registrar.count() == 2
    ok = ua.register(contacts=["<sip:1001@10.0.0.1>;expires=0"])
    assert list(contacts_of(ok)) == ["sip:1001@10.0.0.2"]
    bad = ua.register(contacts=["*"], expires=30)
    assert bad.status == 400
    bad = ua.register(contacts=["*", "<sip:1001@10.0.0.9>"], expires=0)
    assert bad.status == 400
    ok = ua.register(contacts=["*"], expires=0)
    assert ok.status == 200 and not ok.headers.values("contact")
    assert pbx.registrar.count() == 0


async def test_query_without_contact_lists_bindings(store) -> None:
    pbx = await make_pbx(store)
    ua = UA(pbx)
    ua.register()
    ok = ua.register(contacts=[])
    assert ok.status == 200 and len(contacts_of(ok)) == 1


async def test_out_of_order_cseq_same_call_id_is_500(store) -> None:
    pbx = await make_pbx(store)
    ua = UA(pbx)
    assert ua.register().status == 200
    ua.cseq -= 3  # an older request of the same Call-ID arrives late
    r = ua.register()
    assert r.status == 500
    # Another Call-ID (a rebooted phone) is accepted whatever its CSeq.
    other = UA(pbx, call_id="new-call")
    assert other.register().status == 200


async def test_max_contacts_replaces_the_oldest(store) -> None:
    pbx = await make_pbx(store)
    for i in range(3):
        pbx.clock.t += 10
        ua = UA(pbx, "1003", source=Address("udp", "198.51.100.7", 6000 + i))
        assert ua.register().status == 200
    ports = sorted(b.uri.port for b in pbx.registrar.bindings_for("1003"))
    assert ports == [6001, 6002]


async def test_instance_id_keeps_one_binding_per_device(store) -> None:
    pbx = await make_pbx(store)
    inst = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";reg-id=1'
    ua = UA(pbx, source=Address("udp", "203.0.113.5", 40000))
    r = ua.register(contacts=[f"<sip:1001@192.168.1.20:5060>;{inst}"])
    assert r.status == 200
    rebooted = UA(pbx, source=Address("udp", "203.0.113.5", 40999))
    r = rebooted.register(
        contacts=[f"<sip:1001@192.168.1.20:5070>;{inst}"], extra="Supported: outbound\r\n"
    )
    assert r.status == 200
    assert list(contacts_of(r)) == ["sip:1001@192.168.1.20:5070"]
    assert "reg-id=1" in r.headers.get("Contact")
    assert r.headers.get("Require") == "outbound"
    [binding] = pbx.registrar.bindings_for("1001")
    assert binding.reg_id == 1


async def test_to_must_be_sip_and_domain_must_be_ours(store) -> None:
    pbx = await make_pbx(store)
    ua = UA(pbx)
    r = pbx.send(ua.request(to_uri="tel:+15551234"), ua.source)
    assert r.status == 400
    r = pbx.send(ua.request(uri="sip:elsewhere.example"), ua.source)
    assert r.status == 403
    # The listener's own address is as good as the domain.
    r = pbx.send(ua.request(uri="sip:192.0.2.10:5060"), ua.source)
    assert r.status == 401


async def test_cannot_register_someone_elses_address(store) -> None:
    pbx = await make_pbx(store)
    ua = UA(pbx, "1001")
    r = ua.register(to_user="1002")
    assert r.status == 403


async def test_sweep_expires_bindings(store) -> None:
    pbx = await make_pbx(store)
    ua = UA(pbx)
    ua.register(expires=60)
    pbx.clock.t += 59
    assert pbx.registrar.sweep() == 0
    assert pbx.registrar.reachable("1001")
    pbx.clock.t += 2
    assert pbx.registrar.sweep() == 1
    assert pbx.registrar.count() == 0
    assert not pbx.registrar.reachable("1001")


async def test_write_behind_persists_and_restores(store) -> None:
    pbx = await make_pbx(store)
    UA(pbx, "1001").register()
    UA(pbx, "1002", password="other").register()
    ua3 = UA(pbx, "1003")
    ua3.register()
    # Nothing hit the store on the SIP path.
    assert await store.load_bindings(pbx.clock()) == []
    await pbx.registrar.flush()
    assert len(await store.load_bindings(pbx.clock())) == 3
    ua3.register(expires=0, contacts=[f"<sip:1003@{ua3.source.hostport()}>"])
    await pbx.registrar.flush()
    # "Restart": new objects on the same store.
    again = await make_pbx(store, clock=pbx.clock)
    assert await again.registrar.restore() == 2
    [b] = again.registrar.bindings_for("1001")
    assert b.source == Address("udp", "198.51.100.7", 5062)
    assert b.expires_at == pytest.approx(pbx.clock() + 3600)
    assert again.registrar.reachable("1002") and not again.registrar.reachable("1003")


async def test_background_writer_flushes(store) -> None:
    import asyncio

    pbx = await make_pbx(store)
    pbx.registrar.flush_interval = 0.01
    pbx.registrar.start()
    try:
        UA(pbx).register()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if await store.load_bindings(pbx.clock()):
                break
        assert len(await store.load_bindings(pbx.clock())) == 1
    finally:
        await pbx.registrar.stop()


async def test_admin_remove(store) -> None:
    pbx = await make_pbx(store)
    UA(pbx).register(contacts=["<sip:1001@10.0.0.1>", "<sip:1001@10.0.0.2>"])
    assert await pbx.registrar.remove("1001", "sip:1001@10.0.0.1") == 1
    assert await pbx.registrar.remove("1001") == 1
    assert await pbx.registrar.remove("1001") == 0
    await pbx.registrar.flush()
    assert await store.load_bindings(pbx.clock()) == []


async def test_malformed_contact_is_400(store) -> None:
    pbx = await make_pbx(store)
    ua = UA(pbx)
    r = ua.register(contacts=["<sip:1001@10.0.0.1>;expires=abc"])
    assert r.status == 400


async def test_unknown_domain_checked_before_auth(store) -> None:
    pbx = await make_pbx(store)
    r = pbx.send(build("REGISTER", uri="sip:other.example"), Address("udp", "198.51.100.1", 5060))
    assert r.status == 403


# ------------------------------------------------------------ memory-lean bookkeeping


async def test_one_binding_is_held_without_a_container(store) -> None:
    pbx = await make_pbx(store)
    registrar = pbx.registrar
    ua = UA(pbx)
    ua.register()
    [binding] = registrar.bindings_for("1001")
    assert registrar._aors["1001"] is binding  # no per-AOR container for one binding
    assert binding.match_key == binding.contact_uri and binding.match_key is binding.contact_uri
    ua.register(contacts=["<sip:1001@10.0.0.1>", "<sip:1001@10.0.0.2>"])
    assert type(registrar._aors["1001"]) is dict and registrar.count() == 3
    ua.register(contacts=["<sip:1001@10.0.0.1>"], expires=0)
    assert await registrar.remove("1001", "sip:1001@10.0.0.2") == 1
    assert registrar._aors["1001"] is binding and registrar.count() == 1
    # A refresh keeps the binding's text and key one string (no copy per refresh).
    ua.register()
    assert registrar._aors["1001"] is binding and binding.contact_uri is binding.match_key
    assert await registrar.remove("1001") == 1
    assert "1001" not in registrar._aors and registrar.count() == 0
    assert registrar.bindings_for("1001") == [] and not registrar.reachable("1001")


async def test_same_contact_twice_with_expires_zero_in_one_register(store) -> None:
    # The second entry removes only a binding the AOR had when the REGISTER arrived.
    pbx = await make_pbx(store)
    ua = UA(pbx)
    ok = ua.register(contacts=["<sip:1001@10.0.0.1>", "<sip:1001@10.0.0.1>;expires=0"])
    assert ok.status == 200 and pbx.registrar.count() == 1
    ok = ua.register(contacts=["<sip:1001@10.0.0.1>", "<sip:1001@10.0.0.1>;expires=0"])
    assert ok.status == 200 and pbx.registrar.count() == 0


async def test_flush_hands_the_store_records_built_as_they_are_written(store) -> None:
    pbx = await make_pbx(store)
    registrar = pbx.registrar
    calls: list[tuple[object, list]] = []
    real = store.apply_binding_changes

    async def recording(upserts, deletes):  # type: ignore[no-untyped-def]
        calls.append((upserts, list(deletes)))
        await real(upserts, deletes)

    store.apply_binding_changes = recording  # type: ignore[method-assign]
    ua = UA(pbx)
    ua.register(contacts=[f"<sip:1001@10.0.0.{i}>" for i in range(1, 6)])
    await registrar.flush()
    assert len(await store.load_bindings(pbx.clock())) == 5
    calls.clear()
    ua.register(contacts=["<sip:1001@10.0.0.1>", "<sip:1001@10.0.0.2>"], expires=0)
    ua.register(contacts=["<sip:1001@10.0.0.3>", "<sip:1001@10.0.0.9>", "<sip:1001@10.0.0.8>"])
    await registrar.flush()
    [(upserts, deletes)] = calls  # one batch, one transaction
    assert not isinstance(upserts, list) and len(deletes) == 2  # upserts: a generator
    stored = {b.contact_uri for b in await store.load_bindings(pbx.clock())}
    assert stored == {f"sip:1001@10.0.0.{i}" for i in (3, 4, 5, 8, 9)}
    assert registrar.stats["flushed"] == 5 + 5


async def test_failed_flush_queues_again_what_was_not_written(store) -> None:
    pbx = await make_pbx(store)
    registrar = pbx.registrar
    real = store.apply_binding_changes
    failures = [1]

    async def flaky(upserts, deletes):  # type: ignore[no-untyped-def]
        if failures:
            failures.pop()
            raise RuntimeError("disk full")
        await real(upserts, deletes)

    store.apply_binding_changes = flaky  # type: ignore[method-assign]
    ua = UA(pbx)
    ua.register(contacts=["<sip:1001@10.0.0.1>", "<sip:1001@10.0.0.2>"])
    await registrar.flush()
    assert registrar.stats["flush_errors"] == 1
    assert await store.load_bindings(pbx.clock()) == []
    # Removed while its write was pending again: deleted, not written back.
    assert await registrar.remove("1001", "sip:1001@10.0.0.2") == 1
    await registrar.flush()
    assert [b.contact_uri for b in await store.load_bindings(pbx.clock())] == [
        "sip:1001@10.0.0.1"
    ]


async def test_restore_shares_strings(store) -> None:
    pbx = await make_pbx(store)
    UA(pbx).register(contacts=["<sip:1001@10.0.0.1:5060>", "<sip:1001@10.0.0.2;transport=tcp>"])
    await pbx.registrar.flush()
    again = await make_pbx(store, clock=pbx.clock)
    assert await again.registrar.restore() == 2
    plain, tcp = sorted(again.registrar.bindings_for("1001"), key=lambda b: b.contact_uri)
    assert plain.match_key is plain.contact_uri
    assert tcp.match_key == "sip:1001@10.0.0.2:;tcp" and tcp.contact_uri.endswith("=tcp")
    assert plain.user_agent is tcp.user_agent
    assert plain.aor == tcp.aor == f"sip:1001@{REALM}"
