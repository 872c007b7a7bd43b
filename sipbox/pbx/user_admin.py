"""User administration: the one place where users are created, changed and deleted.

Why a service between the API and the store: a user change has three consequences that must
happen together and identically whoever asks (REST API, CLI through the API, a later YAML
import): the input is validated with the same rules, the clear password is turned into digest
HA1 hashes for the *current* realm and then forgotten, and the in-memory directory the SIP path
reads is told at once (`directory.refresh(number)`), so a phone can register a second after its
user was created and a disabled user stops authenticating without a restart.

The validators here (`check_number`, `normalise_ip_auth`, `normalise_static_contact`) are plain
functions so the API schemas can call them too: one rule, two callers, the same message. Every
problem raises `UserFieldError`, an `InvalidValue` (hence a `ValueError`) that names the field.

A realm change (``[sip] domain``) makes every stored hash useless, because HA1 is
``H(number:realm:password)`` (RFC 7616 §3.4.2). The store keeps the realm next to the hashes so
`stale_realm_users` can list who needs a new password; `warn_stale_realm_users` logs it at start-up.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from sipbox.pbx.users import HA1B_MD5, HA1B_SHA256, password_fields
from sipbox.storage import InvalidValue, NewUser, NotFound, Store, User

__all__ = [
    "MAX_IP_AUTH",
    "NUMBER_PATTERN",
    "BindingRemover",
    "DirectoryPort",
    "UserAdmin",
    "UserFieldError",
    "check_number",
    "has_password",
    "normalise_forwarding",
    "hash_password",
    "normalise_ip_auth",
    "normalise_static_contact",
    "password_is_stale",
    "stale_realm_users",
    "warn_stale_realm_users",
]

log = logging.getLogger("sipbox.pbx.user_admin")

#: A user number: digits as on most PBXs (``1001``, ``+4930123``) or a SIP user token
#: (``alice``, ``front.desk``). Deliberately narrower than RFC 3261 §25 ``user``: no ``/ ? ; &
#: = , $`` or escapes, because the number is also a URL path segment (``/users/{number}``), a
#: CLI argument and a log field, and must read the same in all of them. Starts with a letter,
#: digit or ``+`` so that ``.``/``..`` can never be a number.
NUMBER_PATTERN: Final = r"^[A-Za-z0-9+][A-Za-z0-9+._~!*-]{0,63}$"
_NUMBER_RE: Final = re.compile(NUMBER_PATTERN)

#: Most addresses/networks one user may list for IP authorization (a PBX trunk-like device has
#: a handful; hundreds would be a configuration mistake and slow the per-request match).
MAX_IP_AUTH: Final = 64

_TRANSPORTS: Final = ("udp", "tcp", "tls")
_DEFAULT_PORTS: Final = {"udp": 5060, "tcp": 5060, "tls": 5061}
_HOSTNAME_RE: Final = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


class UserFieldError(InvalidValue):
    """A user field value is not acceptable; `field` names it so the API can point at it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


# ------------------------------------------------------------------------------- validators


def check_number(value: object) -> str:
    """Return `value` if it is an acceptable user number (see `NUMBER_PATTERN`)."""
    if not isinstance(value, str) or not _NUMBER_RE.fullmatch(value):
        raise UserFieldError(
            "number",
            f"{value!r} is not a valid user number: use digits (e.g. 1001) or a SIP user name "
            "(letters, digits and + . _ ~ ! * -), at most 64 characters",
        )
    return value


def normalise_ip_auth(values: Iterable[object]) -> tuple[str, ...]:
    """Canonical, de-duplicated CIDR texts for IP authorization (``10.0.0.5`` -> ``10.0.0.5/32``).

    Host bits are allowed (``10.0.0.5/24`` means ``10.0.0.0/24``) because people paste a
    phone's address with its netmask; the canonical form is what is stored and shown, so the
    administrator sees exactly what will match.
    """
    if isinstance(values, str | bytes):
        raise UserFieldError("ip_auth", "must be a list of addresses or CIDR networks")
    out: list[str] = []
    for item in values:
        if not isinstance(item, str):
            raise UserFieldError("ip_auth", f"{item!r} is not an IP address or CIDR network")
        try:
            network = ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise UserFieldError(
                "ip_auth", f"{item!r} is not an IP address or CIDR network (e.g. 10.0.0.5/32)"
            ) from None
        text = str(network)
        if text not in out:
            out.append(text)
    if len(out) > MAX_IP_AUTH:
        raise UserFieldError("ip_auth", f"at most {MAX_IP_AUTH} entries, got {len(out)}")
    return tuple(out)


def normalise_static_contact(value: object) -> str:
    """Canonical ``host:port[;transport=tcp|tls]`` for an IP-authorized user's fixed contact.

    The host is an IPv4 address, a bracketed IPv6 address or a DNS name; the port defaults to
    5060 (5061 for TLS) and is always written out; ``transport=udp`` is the default and omitted,
    so two spellings of the same contact compare equal. Calls to the user are sent to
    ``sip:<number>@<host:port>`` with this transport.
    """
    if not isinstance(value, str) or not value.strip():
        raise UserFieldError("static_contact", "must be host:port[;transport=udp|tcp|tls]")
    text = value.strip()
    if text.lower().startswith("sip:"):
        text = text[4:]
    hostport, *params = text.split(";")
    transport = "udp"
    for param in params:
        name, _, param_value = param.partition("=")
        if name.strip().lower() != "transport" or param_value.strip().lower() not in _TRANSPORTS:
            raise UserFieldError(
                "static_contact",
                f"{value!r}: only ;transport=udp, ;transport=tcp or ;transport=tls may follow "
                "host:port",
            )
        transport = param_value.strip().lower()
    host, port = _split_hostport(value, hostport, _DEFAULT_PORTS[transport])
    shown = f"[{host}]" if ":" in host else host
    suffix = "" if transport == "udp" else f";transport={transport}"
    return f"{shown}:{port}{suffix}"


def _split_hostport(original: str, hostport: str, default_port: int) -> tuple[str, int]:
    problem = UserFieldError(
        "static_contact",
        f"{original!r} is not host:port[;transport=udp|tcp|tls] (e.g. 10.0.0.5:5060)",
    )
    port_text: str | None
    if hostport.startswith("["):
        host, sep, rest = hostport[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise problem
        port_text = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise problem from None
    else:
        if hostport.count(":") > 1:
            raise problem  # a bare IPv6 address is ambiguous with a port: brackets required
        host, sep, tail = hostport.partition(":")
        port_text = tail if sep else None
        if not _HOSTNAME_RE.fullmatch(host):
            raise problem
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise problem from None
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise problem
    return host, int(port_text)


def hash_password(number: str, realm: str, password: str) -> dict[str, Any]:
    """The store fields for a password: HA1 MD5 and SHA-256 for `realm`, the realm itself, and
    a ``settings`` fragment with the ``number@realm`` username variants.

    Both algorithms are always stored so that switching ``auth.algorithms`` needs no new
    passwords (RFC 8760 clients pick SHA-256, older ones MD5). The hashing itself is the
    directory's `password_fields`, so the API stores exactly what the authenticator verifies.
    """
    if not password:
        raise UserFieldError("password", "must not be empty (omit it for no password)")
    return password_fields(number, realm, password)


# ---------------------------------------------------------------------------------- service


class DirectoryPort(Protocol):
    """What the service needs of the in-memory user directory the SIP path reads.

    A directory may also offer ``async refresh_many(numbers: Sequence[str])`` (one store query
    for many users); `UserAdmin.create_many` uses it when present, because thousands of
    one-row reloads after a bulk create cost more than the insert itself.
    """

    async def refresh(self, number: str) -> None:
        """Reload this user from the store (or drop it when it is gone)."""
        ...

    def forget(self, number: str) -> None:
        """Drop this user from memory."""
        ...


class BindingRemover(Protocol):
    """What the service needs of the registrar: dropping a deleted user's live bindings."""

    async def remove(self, number: str, contact_uri: str | None = None) -> int:
        """Unregister one contact or, with None, all of them; how many went."""
        ...


#: Fields a caller may set; `password` is turned into hashes, the rest go to the store as is.
_SETTABLE: Final = frozenset(
    {
        "display_name",
        "password",
        "enabled",
        "max_contacts",
        "ip_auth",
        "static_contact",
        "nat",
        "class_of_service",
        "ring_timeout",
        "max_calls",
        "settings",
        "forwarding",
    }
)

#: Keys of ``settings["forwarding"]`` (issue 4): a target number per condition, and DND.
FORWARDING_TARGETS: Final = ("unconditional", "busy", "no_answer", "unreachable")


def normalise_forwarding(
    value: Mapping[str, Any], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Merge a forwarding change into the current settings (only the keys given change; a
    ``None`` target clears it) and check it: targets are numbers (`check_number` rules, not a
    feature code), ``dnd`` is a boolean. Returns every key, as stored in
    ``settings["forwarding"]`` and read by `sipbox.pbx.calls.forwarding.Forwarding`."""
    if not isinstance(value, Mapping):
        raise UserFieldError("forwarding", "must be an object")
    out: dict[str, Any] = {key: None for key in FORWARDING_TARGETS}
    out["dnd"] = False
    for key, item in (current or {}).items():
        if key in out:
            out[key] = item
    for key, item in value.items():
        if key == "dnd":
            if not isinstance(item, bool):
                raise UserFieldError("forwarding.dnd", "must be true or false")
        elif key in FORWARDING_TARGETS:
            if item == "":
                item = None
            if item is not None and (
                not isinstance(item, str) or not _NUMBER_RE.fullmatch(item) or item[0] == "*"
            ):
                raise UserFieldError(f"forwarding.{key}", f"{item!r} is not a number to forward to")
        else:
            raise UserFieldError(f"forwarding.{key}", "is not a forwarding setting")
        out[key] = item
    return out


class UserAdmin:
    """Create, update and delete users with validation, hashing and directory refresh.

    Cheap to construct (it holds references only), so callers may build one per request.
    `directory` and `registrar` are optional so the service also works before the SIP side runs
    (e.g. a provisioning tool against the store alone).
    """

    def __init__(
        self,
        store: Store,
        realm: str,
        directory: DirectoryPort | None = None,
        registrar: BindingRemover | None = None,
    ) -> None:
        self._store = store
        self._realm = realm
        self._directory = directory
        self._registrar = registrar

    @property
    def realm(self) -> str:
        """The digest realm new hashes are computed for (the server's SIP domain)."""
        return self._realm

    def new_user(self, number: str, fields: Mapping[str, Any]) -> NewUser:
        """Validate and hash one user's fields into a `NewUser` (no store access)."""
        number = check_number(number)
        values = self._store_values(number, fields, {})
        return NewUser(number=number, **values)

    async def create(self, number: str, fields: Mapping[str, Any]) -> User:
        """Store a new user; `AlreadyExists` if the number is taken."""
        user = await self._store.create_user(self.new_user(number, fields))
        await self._refresh(user.number)
        return user

    async def create_many(self, users: Sequence[tuple[str, Mapping[str, Any]]]) -> list[User]:
        """Store many users at once, all or nothing (`AlreadyExists` names every duplicate).

        Every entry is validated before anything is written; a `UserFieldError` is re-raised
        with the entry's index in its field (``users[12].ip_auth``) so a provisioning file with
        thousands of lines can be fixed at the right place.
        """
        prepared: list[NewUser] = []
        for index, (number, fields) in enumerate(users):
            try:
                prepared.append(self.new_user(number, fields))
            except UserFieldError as exc:
                raise UserFieldError(f"users[{index}].{exc.field}", exc.reason) from None
        created = await self._store.create_users(prepared)
        numbers = [user.number for user in created]
        refresh_many = getattr(self._directory, "refresh_many", None)
        if refresh_many is not None:
            await refresh_many(numbers)
        else:
            for number in numbers:
                await self._refresh(number)
        return created

    async def update(self, number: str, changes: Mapping[str, Any]) -> User:
        """Change the given fields only; ``password=None`` removes the password.

        Raises `NotFound` for an unknown number. The number itself cannot change: the hashes
        are bound to it, and phones are provisioned with it.
        """
        current = await self._get(number)
        values = self._store_values(number, changes, current.settings)
        user = await self._store.update_user(current.id, values) if values else current
        await self._refresh(number)
        return user

    async def set_password(self, number: str, password: str | None) -> User:
        """Set (or with None remove) a user's password, hashed for the current realm."""
        return await self.update(number, {"password": password})

    async def delete(self, number: str) -> User:
        """Delete the user, drop it from the directory and unregister its live bindings."""
        current = await self._get(number)
        await self._store.delete_user(current.id)
        if self._directory is not None:
            self._directory.forget(number)
        if self._registrar is not None:
            await self._registrar.remove(number)
        return current

    async def _get(self, number: str) -> User:
        user = await self._store.get_user_by_number(number)
        if user is None:
            raise NotFound(f"user {number!r} does not exist")
        return user

    async def _refresh(self, number: str) -> None:
        if self._directory is not None:
            await self._directory.refresh(number)

    def _store_values(
        self, number: str, fields: Mapping[str, Any], current_settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Validated store fields; `current_settings` is merged when the password changes,
        because the ``number@realm`` hashes live in ``settings`` next to other keys."""
        unknown = set(fields) - _SETTABLE
        if unknown:
            name = sorted(unknown)[0]
            raise UserFieldError(name, "is not a user field that can be set")
        values = dict(fields)
        if "password" in values:
            password = values.pop("password")
            settings = {**current_settings, **(values.get("settings") or {})}
            if password is None:
                values.update(ha1_md5=None, ha1_sha256=None, realm=None)
                settings.pop(HA1B_MD5, None)
                settings.pop(HA1B_SHA256, None)
            elif not isinstance(password, str):
                raise UserFieldError("password", "must be a string")
            else:
                hashed = hash_password(number, self._realm, password)
                settings.update(hashed.pop("settings"))
                values.update(hashed)
            values["settings"] = settings
        if "forwarding" in values:
            forwarding = values.pop("forwarding") or {}
            settings = dict(values.get("settings") or current_settings)
            settings["forwarding"] = normalise_forwarding(forwarding, settings.get("forwarding"))
            for key in FORWARDING_TARGETS:
                if settings["forwarding"][key] == number:
                    raise UserFieldError(f"forwarding.{key}", "a user cannot forward to itself")
            values["settings"] = settings
        if "ip_auth" in values:
            values["ip_auth"] = normalise_ip_auth(values["ip_auth"] or ())
        if values.get("static_contact") is not None:
            values["static_contact"] = normalise_static_contact(values["static_contact"])
        return values


# ------------------------------------------------------------------------------ realm change


def has_password(user: User) -> bool:
    """True when the user has digest credentials stored."""
    return bool(user.ha1_md5 or user.ha1_sha256)


def password_is_stale(user: User, realm: str) -> bool:
    """True when the user's hashes were computed for another realm and so verify nothing."""
    return has_password(user) and user.realm != realm


async def stale_realm_users(store: Store, realm: str, *, page: int = 1000) -> list[User]:
    """Users whose stored hashes belong to a realm other than `realm` (need a new password).

    Reads the users page by page so the check stays cheap in memory with many users.
    """
    stale: list[User] = []
    offset = 0
    while True:
        batch = await store.list_users(limit=page, offset=offset)
        stale.extend(user for user in batch if password_is_stale(user, realm))
        if len(batch) < page:
            return stale
        offset += page


async def warn_stale_realm_users(
    store: Store, realm: str, logger: logging.Logger = log, *, show: int = 20
) -> list[str]:
    """Log one warning naming the users who need a new password; return all their numbers.

    Called at start-up: the administrator changed ``[sip] domain`` and must learn that these
    phones will get 403 until their passwords are set again (``sipbox user passwd N``).
    """
    numbers = [user.number for user in await stale_realm_users(store, realm)]
    if numbers:
        listed = ", ".join(numbers[:show])
        more = f" and {len(numbers) - show} more" if len(numbers) > show else ""
        logger.warning(
            "%d user(s) have passwords hashed for another realm than the current SIP domain "
            "%r and cannot authenticate until their password is set again "
            "(sipbox user passwd NUMBER): %s%s",
            len(numbers),
            realm,
            listed,
            more,
        )
    return numbers
