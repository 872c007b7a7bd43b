"""NAT decisions and request targets (issue 3: source vs Contact, nat = auto|yes|no)."""

from __future__ import annotations

import pytest

from sipbox.pbx.location import (
    LiveBinding,
    behind_nat,
    binding_target,
    is_private,
    parse_static_contact,
    static_target,
)
from sipbox.sip.address import Address
from sipbox.sip.uri import parse_sip_uri
from sipbox.storage import User


def binding(contact: str, source: Address, reg_id: int | None = None, conn=None) -> LiveBinding:
    uri = parse_sip_uri(contact)
    return LiveBinding(
        aor="sip:1001@pbx.test",
        user_number="1001",
        contact_uri=str(uri),
        uri=uri,
        call_id="c",
        cseq=1,
        expires_at=100.0,
        source=source,
        connection_id=conn,
        reg_id=reg_id,
    )


PUBLIC = Address("udp", "203.0.113.9", 40000)


@pytest.mark.parametrize(
    "host,private",
    [
        ("10.1.2.3", True),
        ("172.20.0.1", True),
        ("192.168.1.1", True),
        ("100.64.0.1", True),
        ("169.254.1.1", True),
        ("[fd00::1]", True),
        ("fe80::1", True),
        ("203.0.113.9", False),
        ("2001:db8::1", False),
        ("phone.example.com", False),
    ],
)
def test_private_ranges(host: str, private: bool) -> None:
    assert is_private(host) is private


def test_private_contact_from_public_source_is_nat() -> None:
    b = binding("sip:1001@192.168.1.20:5060", PUBLIC)
    assert behind_nat(b)
    t = binding_target(b)
    assert t.destination == PUBLIC and t.request_uri == "sip:1001@192.168.1.20:5060" and t.nat


def test_public_contact_used_as_registered() -> None:
    # A third-party registration: the Contact names another public host.
    b = binding("sip:1001@198.51.100.50:5070", PUBLIC)
    assert not behind_nat(b)
    assert binding_target(b).destination == Address("udp", "198.51.100.50", 5070)


def test_private_contact_same_as_source_is_not_nat() -> None:
    lan = Address("udp", "192.168.1.20", 5060)
    b = binding("sip:1001@192.168.1.20:5060", lan)
    assert not behind_nat(b)
    assert binding_target(b).destination == lan


def test_reg_id_means_use_the_flow() -> None:
    flow = Address("tcp", "203.0.113.9", 51000)
    b = binding("sip:1001@198.51.100.50:5070;transport=tcp", flow, reg_id=1, conn=42)
    t = binding_target(b)
    assert t.destination == flow and t.connection_id == 42


def test_per_user_override() -> None:
    b = binding("sip:1001@198.51.100.50:5070", PUBLIC)
    assert behind_nat(b, "yes") and binding_target(b, "yes").destination == PUBLIC
    n = binding("sip:1001@192.168.1.20", PUBLIC)
    assert not behind_nat(n, "no")
    assert binding_target(n, "no").destination == Address("udp", "192.168.1.20", 5060)


def test_contact_transport_and_sips_defaults() -> None:
    b = binding("sips:1001@198.51.100.50", PUBLIC)
    assert binding_target(b).destination == Address("tls", "198.51.100.50", 5061)


def test_static_contact_target() -> None:
    assert parse_static_contact("10.0.0.5:5080;transport=tcp") == Address("tcp", "10.0.0.5", 5080)
    assert parse_static_contact("10.0.0.5") == Address("udp", "10.0.0.5", 5060)
    assert parse_static_contact("not a contact ::") is None
    user = User(
        id=1, number="2000", display_name="", ha1_md5=None, ha1_sha256=None, realm=None,
        enabled=True, max_contacts=None, ip_auth=("10.0.0.5",), static_contact="10.0.0.5:5080",
        nat="auto", ring_timeout=None, max_calls=None, class_of_service="local", settings={},
        created_at=0.0, updated_at=0.0,
    )  # fmt: skip
    t = static_target(user)
    assert t is not None and t.request_uri == "sip:2000@10.0.0.5:5080"
    assert t.destination == Address("udp", "10.0.0.5", 5080) and t.binding is None


def test_record_round_trip() -> None:
    b = binding("sip:1001@192.168.1.20:5060", PUBLIC, reg_id=2, conn=7)
    again = LiveBinding.from_record(b.to_record())
    assert again is not None
    assert again.source == PUBLIC and again.reg_id == 2 and again.connection_id is None


async def test_keepalive_pings_only_nated_udp_bindings(tmp_path) -> None:
    from sipbox.pbx.keepalive import KeepAlive

    from .regkit import UA, add_user, make_pbx, make_store

    store = await make_store(tmp_path)
    try:
        await add_user(store, "1001")
        pbx = await make_pbx(store)
        nated = Address("udp", "203.0.113.5", 40000)
        UA(pbx, source=nated).register(contacts=["<sip:1001@192.168.1.20:5060>"])
        UA(pbx, source=Address("udp", "198.51.100.9", 5060)).register(
            contacts=["<sip:1001@198.51.100.9:5060>"]
        )
        keepalive = KeepAlive(pbx.port, pbx.registrar, 60, from_uri="sip:ka@pbx.test")
        [due] = keepalive.due()
        keepalive.ping(due)
        [(request, destination, _)] = pbx.port.requests
        assert request.method == "OPTIONS" and destination == nated
        assert request.uri_text == "sip:1001@192.168.1.20:5060"
    finally:
        await store.close()


@pytest.mark.parametrize(
    "aor",
    ["sip:1001@pbx.test", "sip:1001@[2001:db8::1]", "sips:1001@pbx.test", "sip:10011@pbx.test",
     "sip:1001@", "tel:1001"],
)  # fmt: skip
def test_aor_reads_back_as_given(aor: str) -> None:
    b = binding("sip:1001@192.0.2.1", PUBLIC)
    b.aor = aor
    assert b.aor == aor and b.to_record().aor == aor
    again = LiveBinding.from_record(b.to_record())
    assert again is not None and again.aor == aor


def test_local_aor_is_not_held_as_text() -> None:
    first, second = binding("sip:1001@192.0.2.1", PUBLIC), binding("sip:1001@192.0.2.2", PUBLIC)
    assert first._aor is second._aor  # one shared domain object, not a string per binding
