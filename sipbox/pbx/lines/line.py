"""External lines and trunks as the PBX holds them: validated, typed, with the secret decrypted.

A *line* is an account at a carrier (or an IMS network) that sipbox registers to and sends
calls through; a *trunk* is an IP peer trusted by address, without registration. Both are
stored as a JSON `config` (see `sipbox.storage.lines`); this module is the one place that
knows the fields, their defaults and their meaning (documented in docs/lines.md), so the API,
the CLI and the SIP code cannot disagree.

Secrets: a line must answer digest challenges for realms it learns only at run time, so its
password cannot be stored as a hash. It is encrypted with Fernet (AES-128-CBC + HMAC) under a
key kept in ``state_dir/line-secret.key`` (mode 0600): a database dump or export alone never
reveals it, and the API never returns it.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, Literal

from sipbox.sip.address import DEFAULT_PORTS, Address

__all__ = [
    "LINE_FIELDS",
    "TRUNK_FIELDS",
    "LineConfig",
    "ProxySpec",
    "SecretBox",
    "TrunkConfig",
    "parse_hostport",
    "parse_proxy",
]

KEY_FILE: Final = "line-secret.key"

Transport = Literal["udp", "tcp", "tls"]
_TRANSPORTS: Final = ("udp", "tcp", "tls")
_HOST: Final = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$")


@dataclass(frozen=True, slots=True)
class ProxySpec:
    """``host[:port][;transport=udp|tcp|tls]`` as written; `host` may be a name."""

    host: str
    port: int | None
    transport: Transport

    def address(self, host: str | None = None) -> Address:
        """The transport address, with `host` replaced by its resolved IP when given."""
        return Address(
            self.transport, host or self.host, self.port or DEFAULT_PORTS[self.transport]
        )

    def uri(self) -> str:
        """As a loose-routing URI for a Route header (RFC 3261 §16.12, ``;lr``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        transport = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"<sip:{host}{port}{transport};lr>"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"{host}{port}" + ("" if self.transport == "udp" else f";transport={self.transport}")


def parse_hostport(text: str) -> tuple[str, int | None]:
    match = _HOST.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not host[:port]")
    host = match.group(1).strip("[]")
    port = int(match.group(2)) if match.group(2) else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    return host, port


def parse_proxy(text: str, default_transport: str = "udp") -> ProxySpec:
    """``host[:port][;transport=x]`` (a leading ``sip:`` is tolerated)."""
    value = text.strip()
    if value.lower().startswith("sip:"):
        value = value[4:]
    transport = default_transport
    main, _, params = value.partition(";")
    for param in params.split(";") if params else ():
        name, _, val = param.partition("=")
        if name.strip().lower() == "transport":
            transport = val.strip().lower()
        elif name.strip().lower() != "lr":
            raise ValueError(f"proxy parameter {param!r} not understood (only transport=)")
    if transport not in _TRANSPORTS:
        raise ValueError(f"transport {transport!r}: udp, tcp or tls")
    host, port = parse_hostport(main)
    return ProxySpec(host, port, transport)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class LineConfig:
    """One external line. Field meanings (with carrier/IMS examples) are in docs/lines.md."""

    name: str
    domain: str
    account: str
    enabled: bool = True
    proxy: str | None = None
    proxy_mode: Literal["destination", "route"] = "destination"
    auth_id: str | None = None
    auth_id_with_domain: bool = False
    realm: str | None = None
    register: bool = True
    expires: int = 3600
    from_user: str | None = None
    from_domain: str | None = None
    display: str | None = None
    transport: Transport = "udp"
    keepalive: float = 0.0
    max_calls_in: int | None = None
    max_calls_out: int | None = None
    uri_params: str = ""
    new_call_id: bool = False
    identity_header: Literal["none", "ppi", "pai"] = "none"
    present_caller: bool = False
    tls_verify: bool = True
    tls_server_name: str | None = None
    did_source: Literal["request-uri", "to", "p-called-party-id"] = "to"
    ims_empty_auth: bool = False
    contact_user: str = ""
    password: str = field(default="", repr=False)

    @property
    def kind(self) -> str:
        return "line"

    @property
    def proxy_spec(self) -> ProxySpec | None:
        return parse_proxy(self.proxy, self.transport) if self.proxy else None

    @property
    def aor(self) -> str:
        """The line's address of record: ``sip:account@domain``."""
        return f"sip:{self.account}@{self.domain}"

    def auth_username(self, with_domain: bool | None = None) -> str:
        """The digest username: `auth_id` (or `account`), as ``user@domain`` when
        `auth_id_with_domain` is on (ZTE IMS softswitches answer 403 to the short form)."""
        user = self.auth_id or self.account
        use_domain = self.auth_id_with_domain if with_domain is None else with_domain
        if use_domain and "@" not in user:
            return f"{user}@{self.domain}"
        if not use_domain and "@" in user and self.auth_id is None:
            return user.split("@", 1)[0]
        return user

    def from_identity(self) -> tuple[str, str]:
        """(user, host) for From on calls and REGISTER."""
        return self.from_user or self.account, self.from_domain or self.domain

    def public(self) -> dict[str, Any]:
        """Every field except the password (what the API, exports and logs may show)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "password"}
        out["has_password"] = bool(self.password)
        return out


@dataclass(frozen=True, slots=True)
class TrunkConfig:
    """An IP peer (another PBX, an SBC): trusted by source address, no registration."""

    name: str
    addresses: tuple[str, ...]
    enabled: bool = True
    transport: Transport = "udp"
    domain: str | None = None
    keepalive: float = 30.0
    max_calls_in: int | None = None
    max_calls_out: int | None = None
    uri_params: str = ""
    from_domain: str | None = None
    present_caller: bool = True
    did_source: Literal["request-uri", "to", "p-called-party-id"] = "request-uri"
    tls_verify: bool = True
    tls_server_name: str | None = None

    @property
    def kind(self) -> str:
        return "trunk"

    def public(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["addresses"] = list(self.addresses)
        return out

    def targets(self) -> list[tuple[str, int]]:
        """(host, port) of each address, in order (port defaulted by transport)."""
        out = []
        for item in self.addresses:
            host, port = parse_hostport(item)
            out.append((host, port or DEFAULT_PORTS[self.transport]))
        return out


LINE_FIELDS: Final = frozenset(f.name for f in fields(LineConfig)) - {"name", "enabled"}
TRUNK_FIELDS: Final = frozenset(f.name for f in fields(TrunkConfig)) - {"name", "enabled"}
_LINE_INTS: Final = ("expires", "max_calls_in", "max_calls_out")


def line_from_config(
    name: str, enabled: bool, config: Mapping[str, Any], password: str = ""
) -> LineConfig:
    """Validate a stored/submitted config; `ValueError` names the bad field."""
    values = {k: v for k, v in config.items() if k in LINE_FIELDS and k != "password"}
    unknown = set(config) - LINE_FIELDS
    if unknown:
        raise ValueError(f"unknown line field(s): {', '.join(sorted(unknown))}")
    for required in ("domain", "account"):
        if not values.get(required) or not isinstance(values[required], str):
            raise ValueError(f"{required} is required")
    if values.get("proxy"):
        parse_proxy(str(values["proxy"]), str(values.get("transport", "udp")))
    else:
        values["proxy"] = None
    for key in _LINE_INTS:
        value = values.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ValueError(f"{key} must be a non-negative integer")
    if values.get("expires", 3600) < 1:
        raise ValueError("expires must be at least 1")
    line = LineConfig(name=name, enabled=enabled, password=password, **values)
    _check_choice("proxy_mode", line.proxy_mode, ("destination", "route"))
    _check_choice("transport", line.transport, _TRANSPORTS)
    _check_choice("identity_header", line.identity_header, ("none", "ppi", "pai"))
    _check_choice("did_source", line.did_source, ("request-uri", "to", "p-called-party-id"))
    return line


def trunk_from_config(name: str, enabled: bool, config: Mapping[str, Any]) -> TrunkConfig:
    unknown = set(config) - TRUNK_FIELDS
    if unknown:
        raise ValueError(f"unknown trunk field(s): {', '.join(sorted(unknown))}")
    values = dict(config)
    addresses = values.pop("addresses", None)
    if isinstance(addresses, str):
        addresses = [a for a in addresses.replace(",", " ").split() if a]
    if not addresses:
        raise ValueError("addresses is required (host[:port], one or more)")
    trunk = TrunkConfig(name=name, enabled=enabled, addresses=tuple(addresses), **values)
    _check_choice("transport", trunk.transport, _TRANSPORTS)
    trunk.targets()  # validates every address
    return trunk


def new_contact_user() -> str:
    """The random user part a line registers as its Contact: inbound INVITEs are sent to it,
    which tells apart several lines at one carrier address (and strangers guessing)."""
    return "sbx" + secrets.token_hex(6)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}")


class SecretBox:
    """Encrypts line/trunk passwords with a Fernet key kept in `state_dir` (mode 0600)."""

    __slots__ = ("_fernet",)

    def __init__(self, state_dir: Path) -> None:
        from cryptography.fernet import Fernet

        path = Path(state_dir) / KEY_FILE
        try:
            key = path.read_bytes().strip()
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Fernet.generate_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, key)
            finally:
                os.close(fd)
        os.chmod(path, 0o600)
        self._fernet = Fernet(key)

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def decrypt(self, token: str | None) -> str:
        if not token:
            return ""
        return self._fernet.decrypt(token.encode("ascii")).decode()
