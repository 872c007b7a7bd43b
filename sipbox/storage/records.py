"""The records the store hands out: frozen dataclasses, one per table, plus their value domains.

Records are immutable snapshots so that a cached copy can be shared across tasks without anyone
changing it behind the cache's back (the multi-node cache invalidation described in
ARCHITECTURE.md needs exactly one place where data changes: the store). List-valued fields are
tuples for the same reason; JSON object fields are plain dicts by necessity and must be treated
as read-only. Timestamps are floats, seconds since the epoch, like every `now` in sipbox.

Input records (`NewUser`) carry defaults so callers only name what they mean; `validate_user_fields`
is shared by create and update so both paths accept exactly the same values.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final, Literal, NamedTuple, get_args

from sipbox.storage.errors import InvalidValue

NatMode = Literal["auto", "yes", "no"]
ClassOfService = Literal["none", "local", "national", "international"]
TokenRole = Literal["admin", "read-only"]
AddressListKind = Literal["whitelist", "blacklist"]

NAT_MODES: Final[frozenset[str]] = frozenset(get_args(NatMode))
CLASSES_OF_SERVICE: Final[frozenset[str]] = frozenset(get_args(ClassOfService))
TOKEN_ROLES: Final[frozenset[str]] = frozenset(get_args(TokenRole))
ADDRESS_LIST_KINDS: Final[frozenset[str]] = frozenset(get_args(AddressListKind))

#: Longest user number accepted; matches the column width in `schema.py`.
MAX_NUMBER_LENGTH: Final = 64


# --------------------------------------------------------------------------------------- users


@dataclass(frozen=True, slots=True)
class NewUser:
    """What a caller supplies to create a user; the store adds id and timestamps.

    `ha1_md5` / `ha1_sha256` are the RFC 7616 HA1 values ``H(number:realm:password)`` for
    `realm`; the clear password is never stored. `realm` is kept with the hashes so that a change
    of the server's domain can be detected (the hashes then no longer verify anything).
    """

    number: str
    display_name: str = ""
    ha1_md5: str | None = None
    ha1_sha256: str | None = None
    realm: str | None = None
    enabled: bool = True
    max_contacts: int | None = None
    ip_auth: tuple[str, ...] = ()
    static_contact: str | None = None
    nat: NatMode = "auto"
    ring_timeout: int | None = None
    max_calls: int | None = None
    class_of_service: ClassOfService = "local"
    settings: Mapping[str, Any] = field(default_factory=dict)


#: Keys in `User.settings` holding the HA1 of the ``number@realm`` username form (see
#: `sipbox.pbx.users.password_fields`); `User` keeps them packed like the other two HA1s.
HA1B_MD5: Final = "ha1b_md5"
HA1B_SHA256: Final = "ha1b_sha256"

_NO_HA1: Final[tuple[str | None, str | None]] = (None, None)


def _digest(value: object, size: int) -> bytes | None:
    """`value` as `size` raw bytes when it is exactly the lowercase hex of them (what
    `compute_ha1` produces), else None: only values whose text comes back unchanged from
    ``bytes.hex()`` are packed."""
    if type(value) is not str or len(value) != 2 * size:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if len(raw) == size and raw.hex() == value else None


def _shared_text(value: Any) -> Any:
    """One string object per distinct value for the fields 100,000 users repeat."""
    return sys.intern(value) if type(value) is str and value else value


@dataclass(frozen=True, init=False)
class User:
    """A stored user (extension): identity, digest credentials and per-user policy.

    The in-memory directory holds every user (100,000 of them must fit in well under 300 MB
    with their bindings), so the record is stored compactly behind the same fields:

    * the four HA1 values (``ha1_md5``, ``ha1_sha256`` and the ``number@realm`` forms
      ``settings["ha1b_md5"]`` / ``settings["ha1b_sha256"]``) are one bytes object of raw
      digests (96 bytes instead of ~420 as four hex strings), turned back into hex when read.
      Only lowercase hex of the right length is packed; anything else is kept as given;
    * ``settings`` keeps only the other keys (None when there are none); reading it builds a
      new dict, the HA1 keys first as `password_fields` writes them. Treat it as read-only,
      as every record's JSON fields;
    * realm, NAT mode, class of service, the settings keys and the display name are shared
      strings; ``updated_at`` is the same float object as ``created_at`` when they are equal.
    """

    __slots__ = (
        "_ha1",
        "_settings",
        "class_of_service",
        "created_at",
        "display_name",
        "enabled",
        "id",
        "ip_auth",
        "max_calls",
        "max_contacts",
        "nat",
        "number",
        "realm",
        "ring_timeout",
        "static_contact",
        "updated_at",
    )

    id: int
    number: str
    display_name: str
    ha1_md5: str | None
    ha1_sha256: str | None
    realm: str | None
    enabled: bool
    max_contacts: int | None
    ip_auth: tuple[str, ...]
    static_contact: str | None
    nat: NatMode
    ring_timeout: int | None
    max_calls: int | None
    class_of_service: ClassOfService
    settings: Mapping[str, Any]
    created_at: float
    updated_at: float

    def __init__(
        self,
        id: int,
        number: str,
        display_name: str,
        ha1_md5: str | None,
        ha1_sha256: str | None,
        realm: str | None,
        enabled: bool,
        max_contacts: int | None,
        ip_auth: tuple[str, ...],
        static_contact: str | None,
        nat: NatMode,
        ring_timeout: int | None,
        max_calls: int | None,
        class_of_service: ClassOfService,
        settings: Mapping[str, Any],
        created_at: float,
        updated_at: float,
    ) -> None:
        put = object.__setattr__
        put(self, "id", id)
        put(self, "number", number)
        put(self, "display_name", _shared_text(display_name))
        put(self, "realm", _shared_text(realm))
        put(self, "enabled", enabled)
        put(self, "max_contacts", max_contacts)
        put(self, "ip_auth", ip_auth)
        put(self, "static_contact", static_contact)
        put(self, "nat", _shared_text(nat))
        put(self, "ring_timeout", ring_timeout)
        put(self, "max_calls", max_calls)
        put(self, "class_of_service", _shared_text(class_of_service))
        put(self, "created_at", created_at)
        put(self, "updated_at", created_at if updated_at == created_at else updated_at)

        packed: bytes | tuple[str | None, str | None] = (
            _NO_HA1 if ha1_md5 is None and ha1_sha256 is None else (ha1_md5, ha1_sha256)
        )
        md5 = _digest(ha1_md5, 16)
        sha = _digest(ha1_sha256, 32) if md5 is not None else None
        rest: Mapping[str, Any] | None = settings
        if md5 is not None and sha is not None:
            packed = md5 + sha
            if type(settings) is dict and len(settings) >= 2:
                keys = iter(settings)
                if next(keys) == HA1B_MD5 and next(keys) == HA1B_SHA256:
                    b_md5 = _digest(settings[HA1B_MD5], 16)
                    b_sha = _digest(settings[HA1B_SHA256], 32)
                    if b_md5 is not None and b_sha is not None:
                        packed += b_md5 + b_sha
                        rest = {k: v for k, v in settings.items() if k not in _HA1B_KEYS}
        if type(rest) is dict:
            intern = sys.intern
            rest = {intern(k) if type(k) is str else k: v for k, v in rest.items()} or None
        put(self, "_ha1", packed)
        put(self, "_settings", rest)

    # The packed fields are read through these properties, installed under the field names
    # below the class (inside it, @dataclass would take them for the fields' defaults).
    @property
    def _ha1_md5(self) -> str | None:
        ha1 = self._ha1
        return ha1[:16].hex() if type(ha1) is bytes else ha1[0]

    @property
    def _ha1_sha256(self) -> str | None:
        ha1 = self._ha1
        return ha1[16:48].hex() if type(ha1) is bytes else ha1[1]

    @property
    def _settings_view(self) -> Mapping[str, Any]:
        ha1, rest = self._ha1, self._settings
        if type(ha1) is bytes and len(ha1) == 96:
            out = {HA1B_MD5: ha1[48:64].hex(), HA1B_SHA256: ha1[64:].hex()}
            if rest:
                out.update(rest)
            return out
        return {} if rest is None else rest

    def __reduce__(self) -> tuple[type[User], tuple[Any, ...]]:
        return type(self), tuple(getattr(self, f.name) for f in fields(self))


User.ha1_md5 = User._ha1_md5  # type: ignore[assignment, method-assign]
User.ha1_sha256 = User._ha1_sha256  # type: ignore[assignment, method-assign]
User.settings = User._settings_view  # type: ignore[assignment, method-assign]

_HA1B_KEYS: Final = frozenset((HA1B_MD5, HA1B_SHA256))


#: Fields `Store.update_user` accepts: everything a `NewUser` has.
USER_FIELDS: Final[frozenset[str]] = frozenset(f.name for f in fields(NewUser))

_OPTIONAL_COUNTS: Final = ("max_contacts", "ring_timeout", "max_calls")
_OPTIONAL_TEXT: Final = ("ha1_md5", "ha1_sha256", "realm", "static_contact")


def validate_user_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check user field values (all or a subset) and return them normalised for storage.

    Normalisation: `ip_auth` becomes a tuple of strings, `settings` a dict. Unknown field names
    and out-of-domain values raise `InvalidValue` naming the field, so an API can report it.
    """
    unknown = set(values) - USER_FIELDS
    if unknown:
        raise InvalidValue(f"unknown user field(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name == "number":
            if (
                not isinstance(value, str)
                or not value
                or len(value) > MAX_NUMBER_LENGTH
                or any(ch.isspace() or ch in "@:;<>\"'" for ch in value)
            ):
                raise InvalidValue(f"user number {value!r} is not a SIP user token")
        elif name == "display_name":
            if not isinstance(value, str):
                raise InvalidValue(f"display_name must be a string, not {value!r}")
        elif name == "enabled":
            if not isinstance(value, bool):
                raise InvalidValue(f"enabled must be a bool, not {value!r}")
        elif name in _OPTIONAL_COUNTS:
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise InvalidValue(f"{name} must be a non-negative int or None, not {value!r}")
        elif name in _OPTIONAL_TEXT:
            if value is not None and not isinstance(value, str):
                raise InvalidValue(f"{name} must be a string or None, not {value!r}")
        elif name == "nat":
            if value not in NAT_MODES:
                raise InvalidValue(f"nat must be one of {sorted(NAT_MODES)}, not {value!r}")
        elif name == "class_of_service":
            if value not in CLASSES_OF_SERVICE:
                raise InvalidValue(
                    f"class_of_service must be one of {sorted(CLASSES_OF_SERVICE)}, not {value!r}"
                )
        elif name == "ip_auth":
            if isinstance(value, str):
                raise InvalidValue("ip_auth must be a list of addresses/CIDRs, not a string")
            value = tuple(value)
            for item in value:
                _check_network("ip_auth", item)
        elif name == "settings":
            if not isinstance(value, Mapping):
                raise InvalidValue(f"settings must be a mapping, not {value!r}")
            value = dict(value)
        out[name] = value
    return out


def _check_network(field_name: str, value: object) -> None:
    """Reject anything that is not an IP address or network (host bits allowed)."""
    if not isinstance(value, str):
        raise InvalidValue(f"{field_name}: {value!r} is not an address or CIDR")
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise InvalidValue(f"{field_name}: {value!r} is not an address or CIDR") from exc


def normalise_network(value: str) -> str:
    """Canonical text of an address or network (``10.1.2.3`` -> ``10.1.2.3/32``).

    Address lists store the canonical form so that the unique (kind, network) key means what it
    says: ``10.0.0.0/8`` and ``10.0.0.0/08`` are the same entry.
    """
    _check_network("network", value)
    return str(ipaddress.ip_network(value, strict=False))


# ------------------------------------------------------------------------------------ bindings


class BindingKey(NamedTuple):
    """Identity of a registrar binding (RFC 3261 §10.3): the AOR and the contact URI."""

    aor: str
    contact_uri: str


@dataclass(frozen=True, slots=True)
class Binding:
    """One registrar binding, persisted only so that a restart does not lose registrations.

    The registrar keeps bindings in memory and writes them through in the background; on start it
    loads the unexpired ones. `received_*` is where the REGISTER came from (RFC 3581 / RFC 5626
    flow), `local_*` the listener it arrived on, `connection_hint` an opaque transport handle.
    `path` (RFC 3327) and `node_id` (multi-node) are here now so later issues add no column.
    """

    aor: str
    contact_uri: str
    user_number: str
    call_id: str
    cseq: int
    expires_at: float
    instance_id: str | None = None
    reg_id: int | None = None
    received_transport: str = "udp"
    received_host: str = ""
    received_port: int = 0
    local_transport: str = "udp"
    local_host: str = ""
    local_port: int = 0
    connection_hint: str | None = None
    path: tuple[str, ...] = ()
    user_agent: str | None = None
    q: float | None = None
    node_id: str | None = None

    @property
    def key(self) -> BindingKey:
        """The primary key, as accepted by `Store.apply_binding_changes` deletes."""
        return BindingKey(self.aor, self.contact_uri)


# ------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A REST API bearer token; only its SHA-256 hex digest is stored."""

    id: int
    name: str
    token_hash: str
    role: TokenRole
    created_at: float
    last_used_at: float | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class WebAdmin:
    """A web admin account (issue 7): a person who logs in to the admin pages.

    Kept apart from `User` on purpose: SIP users authenticate with digest HA1 values that any
    holder of the database could replay, while web admins need a slow, salted hash (argon2 PHC
    string in `password_hash`) and are never SIP identities.
    """

    id: int
    username: str
    password_hash: str
    created_at: float
    updated_at: float


# ------------------------------------------------------------------------------------ security


@dataclass(frozen=True, slots=True)
class Ban:
    """A source banned by the anti-scanning guard (or by hand, ``manual=True``).

    `until` None means permanent. `offence_count` lets the guard escalate ban lengths for repeat
    offenders across restarts; `hit_count` counts packets dropped while banned.
    """

    source: str
    reason: str
    since: float
    until: float | None
    detail: Mapping[str, Any] = field(default_factory=dict)
    hit_count: int = 0
    manual: bool = False
    offence_count: int = 1


@dataclass(frozen=True, slots=True)
class AddressListEntry:
    """A whitelist/blacklist entry; `network` is the canonical CIDR text."""

    id: int
    kind: AddressListKind
    network: str
    note: str
    created_at: float


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """An audit record of a security decision (ban, unban, ...), newest listed first."""

    id: int
    at: float
    kind: str
    source: str
    reason: str
    detail: Mapping[str, Any]


# -------------------------------------------------------------------------------- call records

CdrDisposition = Literal[
    "answered", "busy", "no-answer", "cancelled", "failed", "rejected", "interrupted"
]
CDR_DISPOSITIONS: Final[frozenset[str]] = frozenset(get_args(CdrDisposition))
HangupParty = Literal["caller", "callee", "system", "session-timer"]


@dataclass(frozen=True, slots=True)
class Cdr:
    """One call record (issue 4): written open when the call is set up (`end_time` None), then
    completed when it ends, so a call in progress at a crash can be closed as `interrupted`.

    `duration` is end - start (the whole call, ringing included) and `billable` end - answer
    (0 when unanswered), both whole seconds rounded up as carriers bill. `destination` is what
    answered (``1002`` or ``1002 sip:1002@10.0.0.5:5060``) or, unanswered, what was rung.
    `a_call_id`/`b_call_id` are the SIP Call-IDs of the caller's leg and of the answering (or
    last) B leg; `line` is the external line used (later issue).
    """

    id: str
    start_time: float
    caller_number: str
    dialed_number: str
    a_call_id: str
    caller_display: str | None = None
    caller_source: str | None = None
    caller_transport: str | None = None
    destination: str | None = None
    answer_time: float | None = None
    end_time: float | None = None
    duration: int | None = None
    billable: int | None = None
    disposition: CdrDisposition | None = None
    status: int | None = None
    reason: str | None = None
    hangup_by: HangupParty | None = None
    b_call_id: str | None = None
    line: str | None = None


def billable_seconds(start: float, end: float) -> int:
    """Whole seconds, rounded up (a 0.2 s call bills 1 s; exactly 0 bills 0)."""
    span = max(0.0, end - start)
    whole = int(span)
    return whole + (1 if span - whole > 1e-6 else 0)


def finish_cdr(
    record: Cdr,
    *,
    end_time: float,
    disposition: CdrDisposition,
    answer_time: float | None = None,
    status: int | None = None,
    reason: str | None = None,
    hangup_by: HangupParty | None = None,
    destination: str | None = None,
    b_call_id: str | None = None,
) -> Cdr:
    """The completed record: end fields set, duration and billable seconds computed."""
    answer = answer_time if answer_time is not None else record.answer_time
    return replace(
        record,
        end_time=end_time,
        answer_time=answer,
        duration=billable_seconds(record.start_time, end_time),
        billable=billable_seconds(answer, end_time) if answer is not None else 0,
        disposition=disposition,
        status=status,
        reason=reason,
        hangup_by=hangup_by,
        destination=destination if destination is not None else record.destination,
        b_call_id=b_call_id if b_call_id is not None else record.b_call_id,
    )


@dataclass(frozen=True, slots=True)
class CdrFilter:
    """`Store.list_cdrs` filters: start time in [since, until), a number that is the caller,
    the dialed number or the destination's user, and a disposition."""

    since: float | None = None
    until: float | None = None
    number: str | None = None
    disposition: str | None = None


# -------------------------------------------------------------------------------------- groups

GroupStrategy = Literal["ring-all", "sequential", "circular"]
GROUP_STRATEGIES: Final[frozenset[str]] = frozenset(get_args(GroupStrategy))


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A member of a ringing/hunting group: a user number, in order, with its own timeout."""

    number: str
    timeout: int | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """A ringing or hunting group (issue 4); the planner that rings it is `pbx` business.

    `no_answer_destination` is a user or group number, or None for "hang up with 480";
    `completed_elsewhere` puts ``Reason: SIP;cause=200`` on the CANCEL of losing legs.
    """

    id: int
    number: str
    name: str
    strategy: GroupStrategy
    ring_timeout: int | None
    no_answer_destination: str | None
    completed_elsewhere: bool
    members: tuple[GroupMember, ...]
    settings: Mapping[str, Any]
    created_at: float
    updated_at: float
