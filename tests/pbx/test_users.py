"""The user directory: in-memory cache, refresh/forget, IP-authorization index."""

from __future__ import annotations

from sipbox.pbx.users import UserDirectory, password_fields
from sipbox.sip.digest import compute_ha1
from sipbox.storage import NewUser

from .regkit import make_store


async def test_load_get_refresh_forget(tmp_path) -> None:
    store = await make_store(tmp_path)
    try:
        await store.create_users([NewUser(number=str(1000 + i)) for i in range(12)])
        directory = UserDirectory(store)
        await directory.load()
        assert directory.count == 12 and directory.get("1005") is not None
        assert directory.get("9999") is None
        user = await store.get_user_by_number("1005")
        await store.update_user(user.id, {"display_name": "Alice", "ip_auth": ["10.1.0.0/16"]})
        assert directory.get("1005").display_name == ""  # cached until told
        await directory.refresh("1005")
        assert directory.get("1005").display_name == "Alice"
        assert [u.number for u in directory.ip_authorized_users("10.1.2.3")] == ["1005"]
        await store.delete_user(user.id)
        await directory.refresh("1005")
        assert directory.get("1005") is None
        assert directory.ip_authorized_users("10.1.2.3") == []
        directory.forget("1006")
        assert directory.get("1006") is None and directory.count == 10
    finally:
        await store.close()


async def test_ip_index_exact_and_networks(tmp_path) -> None:
    store = await make_store(tmp_path)
    try:
        await store.create_users(
            [
                NewUser(number="gw1", ip_auth=("192.0.2.5",)),
                NewUser(number="gw2", ip_auth=("192.0.2.0/24", "2001:db8::/32")),
                NewUser(number="off", ip_auth=("192.0.2.5",), enabled=False),
            ]
        )
        directory = UserDirectory()
        await directory.load(store)
        assert [u.number for u in directory.ip_authorized_users("192.0.2.5")] == ["gw1", "gw2"]
        assert [u.number for u in directory.ip_authorized_users("192.0.2.77")] == ["gw2"]
        assert [u.number for u in directory.ip_authorized_users("2001:db8::9")] == ["gw2"]
        assert [u.number for u in directory.ip_authorized_users("::ffff:192.0.2.77")] == ["gw2"]
        assert directory.ip_authorized_users("198.51.100.1") == []
        assert directory.ip_authorized_users("not-an-ip") == []
    finally:
        await store.close()


def test_password_fields() -> None:
    fields = password_fields("1001", "pbx.test", "pw")
    assert fields["ha1_md5"] == compute_ha1("1001", "pbx.test", "pw")
    assert fields["ha1_sha256"] == compute_ha1("1001", "pbx.test", "pw", "SHA-256")
    assert fields["settings"]["ha1b_md5"] == compute_ha1("1001@pbx.test", "pbx.test", "pw")
    assert fields["realm"] == "pbx.test"
