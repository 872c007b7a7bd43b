"""Test kit for groups, forwarding and feature codes: the B2BUA kit (`callkit`) with the
router extended the way `install_features` does it, but synchronously and with fake groups."""

from __future__ import annotations

from typing import Any

from sipbox.pbx.calls.featurecodes import FeatureCodeResolver, FeatureCodes
from sipbox.pbx.calls.forwarding import ForwardingResolver
from sipbox.pbx.calls.groups import GroupDirectory, GroupResolver
from sipbox.storage.records import Group, GroupMember, User
from tests.pbx.callkit import Kit, make_kit, user

COMPLETED = 'SIP;cause=200;text="Call completed elsewhere"'


class DictDirectory(dict):  # type: ignore[type-arg]
    """The users dict of the kit, with the directory's `put` (feature codes use it)."""

    def put(self, record: User) -> None:
        self[record.number] = record


def group(number: str, members: list[str | tuple[str, int]], **kw: Any) -> Group:
    values: dict[str, Any] = dict(
        id=int(number), number=number, name=f"Group {number}", strategy="ring-all",
        ring_timeout=None, no_answer_destination=None, completed_elsewhere=True,
        members=tuple(GroupMember(m) if isinstance(m, str) else GroupMember(*m) for m in members),
        settings={}, created_at=0.0, updated_at=0.0,
    )  # fmt: skip
    values.update(kw)
    return Group(**values)


def forwarding(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "unconditional": None, "busy": None, "no_answer": None, "unreachable": None, "dnd": False,
    }  # fmt: skip
    base.update(kw)
    return {"forwarding": base}


def make_group_kit(
    contacts: dict[str, int] | None = None,
    groups: list[Group] | None = None,
    users: dict[str, User] | None = None,
    ring_timeout: float = 30.0,
) -> tuple[Kit, GroupDirectory, list[tuple[str, dict[str, Any]]]]:
    numbers = ("1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008")
    directory = DictDirectory(users or {n: user(n) for n in numbers})
    kit = make_kit(contacts or {"1002": 1, "1003": 1, "1004": 1}, users=directory,
                   ring_timeout=ring_timeout)  # fmt: skip
    router = kit.b2bua.router
    cache = GroupDirectory()
    cache.replace_all(groups or [])
    persisted: list[tuple[str, dict[str, Any]]] = []
    codes = FeatureCodeResolver(
        FeatureCodes(), directory, lambda n, c: persisted.append((n, c)), router
    )
    router.resolvers[:] = [
        codes,
        GroupResolver(cache, router.users, ring_timeout, router),
        ForwardingResolver(router.users, router),
    ]
    return kit, cache, persisted
