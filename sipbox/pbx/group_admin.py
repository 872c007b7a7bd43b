"""Group administration: the one place where ringing/hunting groups are created, changed and
deleted (issue 4), for the REST API, the CLI through it, and the web admin's Groups page.

Why a service between the API and the store (as `UserAdmin` for users): a group change must be
validated the same way whoever asks — the number is a valid number and not a user's, members
are existing users listed once, the no-answer destination is a user or another group — and the
in-memory group cache the SIP path reads must be told at once (`cache.refresh(number)`), so a
call a second later rings the new members without a restart.

Every problem raises `GroupFieldError` (an `InvalidValue`, hence a `ValueError`) naming the
field (``members[2]``), which the API turns into a 422 pointing at it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from sipbox.pbx.user_admin import check_number
from sipbox.storage import AlreadyExists, InvalidValue, NotFound, Store
from sipbox.storage.records import GROUP_STRATEGIES, Group, GroupMember

__all__ = ["MAX_MEMBERS", "GroupAdmin", "GroupCachePort", "GroupFieldError"]

#: Most members one group may have (a ring-all group of hundreds would be a mistake and
#: one INVITE storm per call).
MAX_MEMBERS: Final = 100
_MAX_TIMEOUT: Final = 3600
#: Fields kept in the group's ``settings`` JSON rather than in columns of their own.
SETTINGS_FIELDS: Final = ("skip_busy",)
_FIELDS: Final = frozenset(
    {
        "number",
        "name",
        "strategy",
        "ring_timeout",
        "no_answer_destination",
        "completed_elsewhere",
        "members",
        *SETTINGS_FIELDS,
    }
)


class GroupFieldError(InvalidValue):
    """A group field value is not acceptable; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class GroupCachePort(Protocol):
    """What the service needs of the in-memory group cache (`calls.groups.GroupDirectory`)."""

    async def refresh(self, number: str) -> None: ...

    def forget(self, number: str) -> None: ...


def _members(value: object) -> list[GroupMember]:
    """Members as ``["1001", {"number": "1002", "timeout": 15}, ...]`` -> `GroupMember`s."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise GroupFieldError("members", "must be a list of user numbers")
    out: list[GroupMember] = []
    for i, item in enumerate(value):
        number: object
        timeout: object
        if isinstance(item, GroupMember):
            number, timeout = item.number, item.timeout
        elif isinstance(item, str):
            number, timeout = item, None
        elif isinstance(item, Mapping):
            number, timeout = item.get("number"), item.get("timeout")
        else:
            raise GroupFieldError(f"members[{i}]", "must be a number or {number, timeout}")
        if not isinstance(number, str):
            raise GroupFieldError(f"members[{i}]", "needs a user number")
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int)
            or not 1 <= timeout <= _MAX_TIMEOUT
        ):
            raise GroupFieldError(f"members[{i}].timeout", f"must be 1-{_MAX_TIMEOUT} seconds")
        if any(m.number == number for m in out):
            raise GroupFieldError(f"members[{i}]", f"{number!r} is listed twice")
        out.append(GroupMember(number, timeout))
    if len(out) > MAX_MEMBERS:
        raise GroupFieldError("members", f"at most {MAX_MEMBERS} members, got {len(out)}")
    return out


class GroupAdmin:
    """Create, update and delete groups with validation and cache refresh (cheap to build)."""

    def __init__(self, store: Store, cache: GroupCachePort | None = None) -> None:
        self._store = store
        self._cache = cache

    async def create(self, fields: Mapping[str, Any]) -> Group:
        """Store a new group; `AlreadyExists` if the number is a group's or a user's."""
        unknown = set(fields) - _FIELDS
        if unknown:
            raise GroupFieldError(sorted(unknown)[0], "is not a group field")
        number = self._number(fields.get("number"))
        await self._not_a_user(number)
        values = await self._checked(number, fields)
        members = values.pop("members", [])
        group = await self._store.create_group(
            number,
            name=values.get("name", ""),
            strategy=values.get("strategy", "ring-all"),
            ring_timeout=values.get("ring_timeout"),
            no_answer_destination=values.get("no_answer_destination"),
            completed_elsewhere=values.get("completed_elsewhere", True),
            members=members,
            settings_=values.get("settings", {}),
        )
        await self._refresh(number)
        return group

    async def update(self, number: str, changes: Mapping[str, Any]) -> Group:
        """Change only the fields given (``members`` replaces the list); `NotFound`."""
        unknown = set(changes) - _FIELDS
        if unknown:
            raise GroupFieldError(sorted(unknown)[0], "is not a group field")
        current = await self.get(number)
        new_number = number
        if "number" in changes and changes["number"] != number:
            new_number = self._number(changes["number"])
            await self._not_a_user(new_number)
        values = await self._checked(new_number, changes, current)
        members = values.pop("members", None)
        values.pop("number", None)
        if new_number != number:
            values["number"] = new_number
        group = await self._store.update_group(number, values, members)
        if new_number != number and self._cache is not None:
            self._cache.forget(number)
        await self._refresh(new_number)
        return group

    async def add_member(
        self, number: str, member: str, timeout: int | None = None, position: int | None = None
    ) -> Group:
        """Add one member (at the end, or at `position`); 422 if already a member."""
        current = await self.get(number)
        members: list[Any] = list(current.members)
        entry = GroupMember(member, timeout)
        members.insert(len(members) if position is None else max(0, position), entry)
        return await self.update(number, {"members": members})

    async def remove_member(self, number: str, member: str) -> Group:
        """Remove one member; `NotFound` if it is not one."""
        current = await self.get(number)
        if all(m.number != member for m in current.members):
            raise NotFound(f"{member!r} is not a member of group {number!r}")
        return await self.update(
            number, {"members": [m for m in current.members if m.number != member]}
        )

    async def delete(self, number: str) -> Group:
        current = await self.get(number)
        await self._store.delete_group(number)
        if self._cache is not None:
            self._cache.forget(number)
        return current

    async def get(self, number: str) -> Group:
        group = await self._store.get_group_by_number(number)
        if group is None:
            raise NotFound(f"group {number!r} does not exist")
        return group

    # -- validation ---------------------------------------------------------------------------
    def _number(self, value: object) -> str:
        try:
            return check_number(value)
        except InvalidValue:
            raise GroupFieldError(
                "number", f"{value!r} is not a valid group number (e.g. 600)"
            ) from None

    async def _not_a_user(self, number: str) -> None:
        if await self._store.get_user_by_number(number) is not None:
            raise AlreadyExists(f"{number!r} is a user's number")

    async def _checked(
        self, number: str, fields: Mapping[str, Any], current: Group | None = None
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "name" in fields:
            name = fields["name"]
            if not isinstance(name, str) or len(name) > 255:
                raise GroupFieldError("name", "must be text of at most 255 characters")
            values["name"] = name
        if "strategy" in fields:
            if fields["strategy"] not in GROUP_STRATEGIES:
                raise GroupFieldError("strategy", f"must be one of {sorted(GROUP_STRATEGIES)}")
            values["strategy"] = fields["strategy"]
        if "ring_timeout" in fields:
            timeout = fields["ring_timeout"]
            if timeout is not None and (
                isinstance(timeout, bool)
                or not isinstance(timeout, int)
                or not 1 <= timeout <= _MAX_TIMEOUT
            ):
                raise GroupFieldError("ring_timeout", f"must be 1-{_MAX_TIMEOUT} seconds or null")
            values["ring_timeout"] = timeout
        if "completed_elsewhere" in fields:
            if not isinstance(fields["completed_elsewhere"], bool):
                raise GroupFieldError("completed_elsewhere", "must be true or false")
            values["completed_elsewhere"] = fields["completed_elsewhere"]
        if "no_answer_destination" in fields:
            values["no_answer_destination"] = await self._destination(
                number, fields["no_answer_destination"]
            )
        if "members" in fields:
            members = _members(fields["members"])
            for i, member in enumerate(members):
                if await self._store.get_user_by_number(member.number) is None:
                    raise GroupFieldError(f"members[{i}]", f"user {member.number!r} does not exist")
            values["members"] = members
        settings = dict(current.settings) if current is not None else {}
        for key in SETTINGS_FIELDS:
            if key in fields:
                if not isinstance(fields[key], bool):
                    raise GroupFieldError(key, "must be true or false")
                settings[key] = fields[key]
        if current is None or any(key in fields for key in SETTINGS_FIELDS):
            values["settings"] = settings
        return values

    async def _destination(self, number: str, value: object) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise GroupFieldError("no_answer_destination", "must be a user or group number")
        if value == number:
            raise GroupFieldError("no_answer_destination", "cannot be the group itself")
        if (
            await self._store.get_user_by_number(value) is None
            and await self._store.get_group_by_number(value) is None
        ):
            raise GroupFieldError(
                "no_answer_destination", f"{value!r} is neither a user nor a group"
            )
        return value

    async def _refresh(self, number: str) -> None:
        if self._cache is not None:
            await self._cache.refresh(number)
