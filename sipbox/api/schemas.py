"""Request and response bodies of the REST API (pydantic models -> the OpenAPI document).

Why separate from the store records: the API promises a stable public shape (documented in
``/openapi.json``) while records may grow columns; and secrets must be impossible to leak, so
`UserOut` simply has no password or HA1 field. Input models forbid unknown fields, so a typo
(``"ipauth"``) is a 422 naming the field instead of a silently ignored setting.

Field rules that are not plain types (user number, IP-auth networks, static contact) are the
user service's validators (`sipbox.pbx.user_admin`), so the API and any other caller accept
exactly the same values with the same messages.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sipbox.api import examples as ex
from sipbox.api.examples import examples
from sipbox.pbx.user_admin import (
    MAX_IP_AUTH,
    NUMBER_PATTERN,
    check_number,
    normalise_ip_auth,
    normalise_static_contact,
)

__all__ = [
    "BulkCreated",
    "BulkUsersIn",
    "Counts",
    "ErrorOut",
    "FieldError",
    "ForwardingIn",
    "ForwardingOut",
    "Health",
    "Listener",
    "RegistrationList",
    "RegistrationOut",
    "RemovedOut",
    "StatusOut",
    "UserCreate",
    "UserList",
    "UserOut",
    "UserUpdate",
]

NatMode = Literal["auto", "yes", "no"]
ClassOfService = Literal["none", "local", "national", "international"]

MAX_BULK = 20_000
"""Most users one bulk request may create (a 20k-line provisioning file is ~5 MB of JSON)."""


# ------------------------------------------------------------------------------------ errors


class FieldError(BaseModel):
    """One problem with one field."""

    field: str | None = Field(None, description="Dotted path of the bad field: users[3].number")
    error: str = Field(description="What is wrong, for a person to read")


class ErrorOut(BaseModel):
    """Every error answer: a message, the field at fault when there is one, and for validation
    errors the list of every problem found (capped)."""

    error: str = Field(examples=["ip_auth: '10.0.0.300' is not an IP address or CIDR network"])
    field: str | None = Field(None, examples=["ip_auth"])
    errors: list[FieldError] | None = None


# ------------------------------------------------------------------------------------- users

_number_field = Field(
    description="Digits (1001) or a SIP user name (alice); the account phones register with.",
    examples=["1001"],
    json_schema_extra={"pattern": NUMBER_PATTERN},
)
_password_field = Field(
    None,
    min_length=1,
    max_length=256,
    description="Write-only. Stored only as digest HA1 hashes (MD5 and SHA-256) for the "
    "server's realm; never returned. Omit for an IP-authorized user without a password.",
    json_schema_extra={"writeOnly": True, "format": "password"},
)
_IP_AUTH_HELP = (
    "Addresses/CIDR networks whose requests claiming this user are accepted without a "
    "challenge (stored canonical: 10.0.0.5 -> 10.0.0.5/32)."
)
_contact_field = Field(
    None,
    description="Fixed contact for an IP-authorized user: host:port[;transport=udp|tcp|tls].",
    examples=["10.0.0.5:5060;transport=tcp"],
)


_TARGET_HELP = "Number to forward to (a user, a group, later an external number); null = off"


class ForwardingIn(BaseModel):
    """Call forwarding and do-not-disturb (issue 4); on a change only the keys sent change,
    ``null`` switches that forwarding off. Phones set the same with feature codes
    (``*90*1002#``...). See docs/calls.md, Forwarding."""

    model_config = ConfigDict(extra="forbid")

    unconditional: str | None = Field(None, description=_TARGET_HELP, examples=["1003"])
    busy: str | None = Field(None, description=_TARGET_HELP)
    no_answer: str | None = Field(None, description=_TARGET_HELP + " (after the ring timeout)")
    unreachable: str | None = Field(None, description=_TARGET_HELP + " (offline, no response)")
    dnd: bool | None = Field(
        None, description="Do not disturb: callers get 486, or the busy target when set"
    )

    def changes(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.model_fields_set}
        if out.get("dnd", False) is None:
            out["dnd"] = False
        return out


class ForwardingOut(BaseModel):
    """A user's forwarding targets (null = off) and DND flag."""

    model_config = ConfigDict(json_schema_extra=examples(ex.FORWARDING))

    unconditional: str | None = None
    busy: str | None = None
    no_answer: str | None = None
    unreachable: str | None = None
    dnd: bool = False


class _UserFields(BaseModel):
    """Validators shared by create and update."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("ip_auth", check_fields=False)
    @classmethod
    def _ip_auth(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(normalise_ip_auth(value))

    @field_validator("static_contact", check_fields=False)
    @classmethod
    def _static_contact(cls, value: str | None) -> str | None:
        return None if value is None else normalise_static_contact(value)


class UserCreate(_UserFields):
    """A new user (extension)."""

    model_config = ConfigDict(json_schema_extra=examples(ex.USER_CREATE, ex.USER_CREATE_IP))

    number: str = _number_field
    display_name: str = Field("", max_length=128, examples=["Alice"])
    password: str | None = _password_field
    enabled: bool = True
    max_contacts: int | None = Field(
        None, ge=0, le=1000, description="Most simultaneous registrations; null = server default"
    )
    ip_auth: list[str] = Field(
        default_factory=list,
        max_length=MAX_IP_AUTH,
        description=_IP_AUTH_HELP,
        examples=[["10.0.0.5/32"]],
    )
    static_contact: str | None = _contact_field
    nat: NatMode = "auto"
    class_of_service: ClassOfService = "local"
    ring_timeout: int | None = Field(None, ge=0, le=3600, description="Seconds; null = default")
    max_calls: int | None = Field(None, ge=0, le=1000, description="null = no limit")
    forwarding: ForwardingIn | None = None

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        return check_number(value)

    def settable(self) -> dict[str, Any]:
        """The fields for `UserAdmin.create` (everything but the number)."""
        out = self.model_dump(exclude={"number", "forwarding"})
        if self.forwarding is not None:
            out["forwarding"] = self.forwarding.changes()
        return out


class UserUpdate(_UserFields):
    """Changes to a user: only the fields present are changed.

    ``"password": null`` removes the password (the user then authenticates by IP address
    only); ``null`` also resets the optional numbers and the static contact. The number cannot
    be changed (the password hashes and the phones' configuration are bound to it).
    """

    model_config = ConfigDict(json_schema_extra=examples(ex.USER_UPDATE))

    display_name: str | None = Field(None, max_length=128)
    password: str | None = _password_field
    enabled: bool | None = None
    max_contacts: int | None = Field(None, ge=0, le=1000)
    ip_auth: list[str] | None = Field(None, max_length=MAX_IP_AUTH, description=_IP_AUTH_HELP)
    static_contact: str | None = _contact_field
    nat: NatMode | None = None
    class_of_service: ClassOfService | None = None
    ring_timeout: int | None = Field(None, ge=0, le=3600)
    max_calls: int | None = Field(None, ge=0, le=1000)
    forwarding: ForwardingIn | None = Field(
        None, description="Only the keys sent change; null switches every forwarding and DND off"
    )

    @model_validator(mode="after")
    def _not_null(self) -> UserUpdate:
        for name in ("display_name", "enabled", "nat", "class_of_service"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self

    def changes(self) -> dict[str, Any]:
        """Only the fields the client sent (``ip_auth: null`` means an empty list)."""
        out = {name: getattr(self, name) for name in self.model_fields_set}
        if "ip_auth" in out and out["ip_auth"] is None:
            out["ip_auth"] = []
        if "forwarding" in out:
            fwd = out["forwarding"]
            out["forwarding"] = ForwardingOut().model_dump() if fwd is None else fwd.changes()
        return out


class UserOut(BaseModel):
    """A user as the API shows it: never the password or its hashes."""

    model_config = ConfigDict(json_schema_extra=examples(ex.USER))

    id: int
    number: str = Field(examples=["1001"])
    display_name: str
    enabled: bool
    has_password: bool = Field(description="Whether digest credentials are stored")
    password_stale: bool = Field(
        description="The stored hashes were made for another SIP domain: set a new password"
    )
    max_contacts: int | None
    ip_auth: list[str]
    static_contact: str | None
    nat: NatMode
    class_of_service: ClassOfService
    ring_timeout: int | None
    max_calls: int | None
    forwarding: ForwardingOut = Field(default_factory=ForwardingOut)
    registrations: int | None = Field(
        None, description="Live registrations (null when the registrar is not running)"
    )
    reachable: bool | None = Field(
        None, description="Calls can reach the user now (null when the registrar is not running)"
    )
    created_at: float
    updated_at: float


class UserList(BaseModel):
    """One page of users, ordered by number."""

    model_config = ConfigDict(json_schema_extra=examples(ex.USER_LIST))

    total: int = Field(description="Users stored in all")
    limit: int
    offset: int
    users: list[UserOut]


class BulkUsersIn(BaseModel):
    """Many users to create at once, all or nothing."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=examples(ex.BULK_IN))

    users: list[UserCreate] = Field(min_length=1, max_length=MAX_BULK)


class BulkCreated(BaseModel):
    """The result of a bulk create."""

    model_config = ConfigDict(json_schema_extra=examples(ex.BULK_CREATED))

    created: int
    numbers: list[str]


# ----------------------------------------------------------------------------- registrations


class RegistrationOut(BaseModel):
    """One live registration (binding)."""

    model_config = ConfigDict(json_schema_extra=examples(ex.REGISTRATION))

    number: str
    aor: str = Field(examples=["sip:1001@pbx.example.com"])
    contact: str = Field(examples=["sip:1001@192.168.1.20:5060"])
    source: str = Field(
        description="transport:host:port the REGISTER came from", examples=["udp:203.0.113.7:41234"]
    )
    source_transport: str
    source_host: str
    source_port: int
    user_agent: str | None
    expires_at: float
    expires_in: int = Field(description="Seconds left")


class RegistrationList(BaseModel):
    """Live registrations, ordered by number then contact."""

    model_config = ConfigDict(json_schema_extra=examples(ex.REGISTRATION_LIST))

    total: int
    registrations: list[RegistrationOut]


class RemovedOut(BaseModel):
    """How many registrations an unregister removed."""

    model_config = ConfigDict(json_schema_extra=examples(ex.REMOVED))

    removed: int


# ------------------------------------------------------------------------------------ status


class Health(BaseModel):
    """Liveness: the process answers."""

    model_config = ConfigDict(json_schema_extra=examples(ex.HEALTH))

    status: Literal["ok"] = "ok"


class Listener(BaseModel):
    """A SIP listening socket."""

    transport: str
    host: str
    port: int


class Counts(BaseModel):
    """Headline numbers."""

    users: int
    registrations: int | None = None
    reachable: int | None = None
    calls: int | None = Field(None, description="Calls in progress (null without calls)")
    bans: int | None = Field(None, description="Sources banned now (null without the guard)")


class StatusOut(BaseModel):
    """What `sipbox status` shows."""

    model_config = ConfigDict(json_schema_extra=examples(ex.STATUS))

    version: str
    started_at: float
    uptime_seconds: float
    domain: str
    listeners: list[Listener]
    counts: Counts
    sip_counters: dict[str, int | float] | None = Field(
        None, description="SIP endpoint counters, when the endpoint keeps them"
    )
