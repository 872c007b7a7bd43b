"""``/groups``: ringing and hunting groups (issue 4) — create, list, show, change, delete, and
their members.

Every write goes through `GroupAdmin` (validation, then the running server's in-memory group
cache is refreshed), so a change is live on the SIP side when the answer leaves. The web
admin's Groups page uses these same routes. ``last_answered`` (circular groups) is live state
from memory, absent when the calls service is not running.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from sipbox.api import examples as ex
from sipbox.api.deps import ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.examples import examples
from sipbox.api.routes.common import AUTH_ERRORS, error_responses
from sipbox.pbx.group_admin import MAX_MEMBERS, GroupAdmin
from sipbox.pbx.user_admin import NUMBER_PATTERN
from sipbox.storage import AlreadyExists, Group

router = APIRouter(prefix="/groups", tags=["groups"], responses=AUTH_ERRORS)

Strategy = Literal["ring-all", "sequential", "circular"]
Timeout = Annotated[int, Field(ge=1, le=3600)]


class MemberIn(BaseModel):
    """A member: a user number and, optionally, how long it rings (sequential/circular: its
    turn; ring-all: it stops ringing earlier than the group)."""

    model_config = ConfigDict(extra="forbid")

    number: str = Field(examples=["1001"])
    timeout: Timeout | None = Field(None, description="Seconds; null = the group's ring_timeout")


class MemberOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.MEMBER))
    number: str
    timeout: int | None


class GroupCreate(BaseModel):
    """A new ringing/hunting group."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=examples(ex.GROUP_CREATE))

    number: str = Field(examples=["600"], json_schema_extra={"pattern": NUMBER_PATTERN})
    name: str = Field("", max_length=255, examples=["Sales"])
    strategy: Strategy = "ring-all"
    ring_timeout: Timeout | None = Field(
        None, description="Seconds the group rings (ring-all) or each member's turn lasts "
        "(sequential/circular); null = [calls] ring_timeout",
    )  # fmt: skip
    no_answer_destination: str | None = Field(
        None, description="User or group that gets the call when nobody answers; null = 480"
    )
    completed_elsewhere: bool = Field(
        True, description='Losing legs get Reason: SIP;cause=200;text="Call completed elsewhere"'
    )
    skip_busy: bool = Field(True, description="Skip members already in a call")
    members: list[str | MemberIn] = Field(
        default_factory=list,
        max_length=MAX_MEMBERS,
        description="Users in ring order: numbers, or {number, timeout} objects",
        examples=[["1001", {"number": "1002", "timeout": 15}]],
    )


class GroupUpdate(BaseModel):
    """Changes to a group: only the fields present change (``members`` replaces the list)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=examples(ex.GROUP_UPDATE))

    number: str | None = Field(None, json_schema_extra={"pattern": NUMBER_PATTERN})
    name: str | None = Field(None, max_length=255)
    strategy: Strategy | None = None
    ring_timeout: Timeout | None = None
    no_answer_destination: str | None = None
    completed_elsewhere: bool | None = None
    skip_busy: bool | None = None
    members: list[str | MemberIn] | None = Field(None, max_length=MAX_MEMBERS)

    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if value is None and name in ("number", "name", "strategy", "completed_elsewhere",
                                          "skip_busy", "members"):  # fmt: skip
                raise ApiError(422, f"{name} may not be null", name)
            out[name] = _plain_members(value) if name == "members" else value
        return out


class MemberAdd(MemberIn):
    """One member to add; `position` 0 puts it first, absent appends it."""

    model_config = ConfigDict(json_schema_extra=examples(ex.MEMBER_ADD))

    position: int | None = Field(None, ge=0)


class GroupOut(BaseModel):
    """A group as stored, plus live state."""

    model_config = ConfigDict(json_schema_extra=examples(ex.GROUP))

    id: int
    number: str
    name: str
    strategy: Strategy
    ring_timeout: int | None
    no_answer_destination: str | None
    completed_elsewhere: bool
    skip_busy: bool
    members: list[MemberOut]
    last_answered: str | None = Field(
        None, description="Circular groups: the member that answered last (live, in memory)"
    )
    created_at: float
    updated_at: float


class GroupList(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.GROUP_LIST))
    total: int
    groups: list[GroupOut]


def _plain_members(value: list[str | MemberIn] | None) -> list[Any] | None:
    if value is None:
        return None
    return [m if isinstance(m, str) else m.model_dump() for m in value]


def _cache(services: ServicesDep) -> Any:
    return getattr(getattr(services.context, "calls", None), "groups", None)


def _admin(services: ServicesDep) -> GroupAdmin:
    return GroupAdmin(services.store, _cache(services))


def group_out(group: Group, cache: Any) -> GroupOut:
    last = getattr(cache, "last_answered", {}).get(group.number) if cache is not None else None
    return GroupOut(
        id=group.id,
        number=group.number,
        name=group.name,
        strategy=group.strategy,
        ring_timeout=group.ring_timeout,
        no_answer_destination=group.no_answer_destination,
        completed_elsewhere=group.completed_elsewhere,
        skip_busy=bool((group.settings or {}).get("skip_busy", True)),
        members=[MemberOut(number=m.number, timeout=m.timeout) for m in group.members],
        last_answered=last,
        created_at=group.created_at,
        updated_at=group.updated_at,
    )


@router.post(
    "", status_code=status.HTTP_201_CREATED, summary="Create a group",
    responses=error_responses(409),
)  # fmt: skip
async def create_group(body: GroupCreate, services: ServicesDep, response: Response) -> GroupOut:
    """Create a group; 409 if the number is taken by a group or a user, 422 naming the bad
    field (an unknown member: ``members[2]``)."""
    fields = body.model_dump(exclude={"members"})
    fields["members"] = _plain_members(body.members)
    try:
        group = await _admin(services).create(fields)
    except AlreadyExists as exc:
        raise ApiError(
            409, f"{body.number!r} is already a group or a user number", "number"
        ) from exc
    response.headers["Location"] = f"/groups/{group.number}"
    return group_out(group, _cache(services))


@router.get("", summary="List groups")
async def list_groups(services: ServicesDep) -> GroupList:
    """Every group with its members, by number."""
    groups = await services.store.list_groups()
    cache = _cache(services)
    return GroupList(total=len(groups), groups=[group_out(g, cache) for g in groups])


@router.get("/{number}", summary="Show a group", responses=error_responses(404))
async def get_group(number: str, services: ServicesDep) -> GroupOut:
    return group_out(await _admin(services).get(number), _cache(services))


@router.patch("/{number}", summary="Change a group", responses=error_responses(404, 409))
async def update_group(number: str, body: GroupUpdate, services: ServicesDep) -> GroupOut:
    """Change only the fields sent; ``members`` replaces the whole list, in its order."""
    try:
        group = await _admin(services).update(number, body.changes())
    except AlreadyExists as exc:
        raise ApiError(
            409, f"{body.number!r} is already a group or a user number", "number"
        ) from exc
    return group_out(group, _cache(services))


@router.delete(
    "/{number}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a group",
    responses=error_responses(404),
)  # fmt: skip
async def delete_group(number: str, services: ServicesDep) -> Response:
    await _admin(services).delete(number)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{number}/members", status_code=status.HTTP_201_CREATED, summary="Add a member",
    responses=error_responses(404),
)  # fmt: skip
async def add_member(number: str, body: MemberAdd, services: ServicesDep) -> GroupOut:
    """Add one user (at the end, or at `position`); 422 if it is already a member."""
    group = await _admin(services).add_member(number, body.number, body.timeout, body.position)
    return group_out(group, _cache(services))


@router.delete(
    "/{number}/members/{member}", summary="Remove a member", responses=error_responses(404)
)
async def remove_member(number: str, member: str, services: ServicesDep) -> GroupOut:
    group = await _admin(services).remove_member(number, member)
    return group_out(group, _cache(services))
