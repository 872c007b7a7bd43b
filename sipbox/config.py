"""Settings: one TOML file plus ``SIPBOX_<SECTION>_<KEY>`` environment overrides.

Why this module exists: every layer needs a few tunables, and an administrator needs one place to
look them up and one set of rules (duration syntax, limits, error messages) for all of them. The
result is a tree of frozen pydantic models, one per section, so a typo or a wrong type is caught at
start-up with a message that names the key (``sip.t1: expected a duration ...``) instead of as a
``KeyError`` deep inside the PBX an hour later.

This module only parses and validates: it performs no network look-ups, creates no files and
derives nothing (the empty ``sip.domain`` is resolved by ``app.py``, not here). Each layer receives
its own section object, so ``sip``/``transport``/``pbx`` never import this module for defaults.

The reference for every key is ``docs/configuration.md``; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sipbox import __version__

__all__ = [
    "ENV_PREFIX",
    "NON_SETTING_VARIABLES",
    "ApiSettings",
    "AuthSettings",
    "ConfigError",
    "DatabaseSettings",
    "GuardSettings",
    "ListenSpec",
    "RegistrarSettings",
    "ServerSettings",
    "Settings",
    "SipSettings",
    "TlsSettings",
    "load_settings",
    "parse_duration",
]

ENV_PREFIX = "SIPBOX_"

#: Variables with the ``SIPBOX_`` prefix that are not settings (used by the CLI and the test
#: suite). They are skipped so that, e.g., ``SIPBOX_API_URL`` is not mistaken for ``api.url``.
NON_SETTING_VARIABLES = frozenset({"SIPBOX_API_URL", "SIPBOX_TOKEN", "SIPBOX_CONFIG"})


class ConfigError(Exception):
    """The configuration cannot be used; the message names the offending key.

    ``key`` is the dotted key of the first problem (``"sip.t1"``), or ``None`` when the problem is
    the file itself (missing, not TOML). ``str(error)`` is ready to show to an administrator and
    lists every problem found, one per line.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


# --------------------------------------------------------------------------------------------
# Value syntaxes shared by every section
# --------------------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_DURATION_HINT = 'expected a duration like "500ms" or "30s"'


def _show(value: object) -> str:
    """Render a user-supplied value the way it would be written in TOML, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def parse_duration(value: object) -> float:
    """Parse ``500ms``, ``30s``, ``5m``, ``3h``, ``1d`` or a bare number of seconds to seconds.

    One syntax for every duration in the file, so nobody has to remember whether a key is in
    milliseconds (SIP timers) or seconds (bans). Negative and non-finite values are rejected.

    Raises:
        ValueError: with a message that quotes the offending value (pydantic turns it into a
            validation error that ``load_settings`` prefixes with the key).
    """
    if isinstance(value, bool):
        raise ValueError(f"{_DURATION_HINT}, got {_show(value)}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(f"{_DURATION_HINT}, got {_show(value)}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ValueError(f"{_DURATION_HINT}, got {_show(value)}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{_DURATION_HINT} (not negative), got {_show(value)}")
    return seconds


def _parse_limit(value: object) -> object:
    """Accept ``"unlimited"`` (or ``"none"``/``""``) as ``None``; numbers go on to int checks."""
    if isinstance(value, str) and value.strip().lower() in {"unlimited", "none", ""}:
        return None
    return value


def _parse_network(value: object) -> object:
    """Validate an address or network (``10.0.0.0/8``, ``2001:db8::/32``, ``192.0.2.7``).

    ``strict`` parsing: ``10.0.0.1/8`` is refused rather than silently widened, because a typo in
    a trust list is worth a start-up error.
    """
    if not isinstance(value, str):
        return value  # let the str type check report it
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(
            f'expected an IP address or network like "10.0.0.0/8", got {_show(value)} ({exc})'
        ) from None


def _parse_host_port(value: object) -> object:
    """Validate ``host:port`` (IPv6 as ``[::1]:8080``); keeps the text as written."""
    if not isinstance(value, str):
        return value
    _split_host_port(value, what='"host:port" like "127.0.0.1:8080"')
    return value


def _split_host_port(text: str, *, what: str) -> tuple[str, int]:
    """Split ``host:port`` or ``[v6]:port`` and check both parts (``ValueError`` names ``what``)."""
    problem = f"expected {what}, got {_show(text)}"
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(problem)
        host, port_text = text[1:end], text[end + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{problem} (bad IPv6 address)") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(problem)
        if ":" in host:
            raise ValueError(f"{problem} (write IPv6 addresses in brackets: [::1])")
        if not _HOSTNAME_RE.match(host):
            raise ValueError(f"{problem} (bad host)")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{problem} (port must be 0-65535)")
    return host, int(port_text)


_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """One listening socket: ``transport:host:port``, e.g. ``udp:0.0.0.0:5060``, ``tls:[::]:5061``.

    ``host`` is stored without brackets (ready for ``bind``); ``str()`` gives back the written
    form. Port 0 asks the OS for a free port, which is what tests use.
    """

    transport: Literal["udp", "tcp", "tls"]
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenSpec:
        """Parse ``transport:host:port``; raise ``ValueError`` with the accepted syntax."""
        transport, sep, rest = text.strip().partition(":")
        transport = transport.lower()
        if not sep or transport not in ("udp", "tcp", "tls"):
            raise ValueError(
                'expected "transport:host:port" with transport udp, tcp or tls '
                f'(e.g. "udp:0.0.0.0:5060", "tcp:[::1]:5060"), got {_show(text)}'
            )
        host, port = _split_host_port(
            rest, what='"transport:host:port" like "udp:0.0.0.0:5060" or "udp:[::1]:5060"'
        )
        return cls(transport, host, port)  # type: ignore[arg-type]

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def _to_listen_spec(value: object) -> object:
    if isinstance(value, str):
        return ListenSpec.parse(value)
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds as float, written with the one duration syntax (see :func:`parse_duration`)."""

PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
"""A duration that must be greater than zero (a timer of 0 would spin)."""

Limit = Annotated[Annotated[int, Field(ge=1)] | None, BeforeValidator(_parse_limit)]
"""A cap: a whole number, or ``"unlimited"`` (``None``) for no cap at all."""

Network = Annotated[str, BeforeValidator(_parse_network)]
HostPort = Annotated[str, BeforeValidator(_parse_host_port)]
Listen = Annotated[ListenSpec, BeforeValidator(_to_listen_spec)]


class _Section(BaseModel):
    """Base of every section: immutable and strict about unknown keys (typos fail loudly)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------

LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class ServerSettings(_Section):
    """Process-wide settings: where state lives and how we log."""

    state_dir: Path = Path("var")
    log_level: LogLevel = "info"
    log_format: Literal["text", "json"] = "text"
    sip_trace: bool = False
    # The last N calls keep their SIP messages in memory for the web admin's ladder diagram
    # (`sipbox/sip/capture.py`); 0 turns the per-call trace off.
    trace_calls: int = Field(default=200, ge=0, le=100_000)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


_DEFAULT_LOCAL_NETWORKS = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "100.64.0.0/10",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
)


class SipSettings(_Section):
    """The SIP endpoint: sockets, identity, RFC 3261 timers and per-message/connection bounds."""

    listen: tuple[Listen, ...] = (
        ListenSpec("udp", "0.0.0.0", 5060),
        ListenSpec("tcp", "0.0.0.0", 5060),
        ListenSpec("tls", "0.0.0.0", 5061),
    )
    domain: str = ""
    aliases: tuple[str, ...] = ()
    external_address: str | None = None
    local_networks: tuple[Network, ...] = _DEFAULT_LOCAL_NETWORKS
    t1: PositiveDuration = 0.5
    t2: PositiveDuration = 4.0
    t4: PositiveDuration = 5.0
    max_message_size: int = Field(default=65536, ge=1024, le=1_048_576)
    max_headers: int = Field(default=256, ge=16)
    user_agent: str = f"sipbox/{__version__}"
    tcp_connect_timeout: PositiveDuration = 5.0
    max_connections_per_source: Limit = 32
    tcp_idle_timeout: Duration = 600.0

    @field_validator("external_address", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _timers_ordered(self) -> Self:
        # RFC 3261 §17.1.2.2: T2 caps the doubling of T1; T2 < T1 would make retransmissions
        # shrink instead of backing off.
        if self.t2 < self.t1:
            raise ValueError(f"t2: must be at least t1 ({self.t1}s), got {self.t2}s")
        if not self.listen:
            raise ValueError("listen: needs at least one transport:host:port")
        return self


class TlsSettings(_Section):
    """Certificate for ``tls:`` listeners; both unset = a self-signed pair for development."""

    cert: Path | None = None
    key: Path | None = None

    @field_validator("cert", "key", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.cert is None) != (self.key is None):
            missing = "key" if self.key is None else "cert"
            raise ValueError(f"{missing}: set both tls.cert and tls.key, or neither")
        return self


class ApiSettings(_Section):
    """The REST API / web admin HTTP listener."""

    listen: HostPort = "127.0.0.1:8080"
    # Web admin sessions end this long after login (the administrator logs in again).
    session_lifetime: PositiveDuration = 43200.0
    # Serve /metrics without a token (for a Prometheus on a trusted management network).
    metrics_public: bool = False
    # miniSipServer-style GET /openapi/localuser (password in the URL: insecure, migration only).
    mss_compat: bool = False


DigestAlgorithm = Literal["MD5", "SHA-256"]


class AuthSettings(_Section):
    """Digest authentication (RFC 7616/8760) offered in 401/407 challenges."""

    algorithms: tuple[DigestAlgorithm, ...] = ("MD5",)
    qop: Literal["auth"] = "auth"
    nonce_lifetime: PositiveDuration = 300.0

    @field_validator("algorithms", mode="before")
    @classmethod
    def _canonical_names(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            spelled = {"MD5": "MD5", "SHA-256": "SHA-256", "SHA256": "SHA-256"}
            return tuple(
                spelled.get(item.strip().upper(), item) if isinstance(item, str) else item
                for item in value
            )
        return value

    @model_validator(mode="after")
    def _md5_first(self) -> Self:
        # Challenges are sent in this order. Some deployed clients only cope when MD5 comes
        # first (see docs/configuration.md, "auth.algorithms"), so the order is enforced.
        if not self.algorithms:
            raise ValueError('algorithms: needs at least one of "MD5", "SHA-256"')
        if len(set(self.algorithms)) != len(self.algorithms):
            raise ValueError(f"algorithms: listed twice in {list(self.algorithms)}")
        if len(self.algorithms) > 1 and self.algorithms[0] != "MD5":
            raise ValueError(
                'algorithms: "MD5" must come before "SHA-256" '
                "(clients such as baresip and SIPp fail otherwise), got "
                f"{json.dumps(list(self.algorithms))}"
            )
        return self


class DatabaseSettings(_Section):
    """Where configuration and state are stored."""

    url: str = ""

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.partition(":")[0].partition("+")[0].lower()
        if value and (":" not in value or scheme not in {"sqlite", "postgresql", "postgres"}):
            raise ValueError(
                'expected "" (SQLite under server.state_dir), "sqlite:///path/file.db" or '
                f'"postgresql://user@host/db", got {_show(value)}'
            )
        return value


class RegistrarSettings(_Section):
    """REGISTER handling (RFC 3261 §10.3) and NAT keep-alive of registered contacts."""

    min_expires: int = Field(default=60, ge=1)
    max_expires: int = Field(default=7200, ge=1)
    default_expires: int = Field(default=3600, ge=1)
    keepalive_interval: Duration = 60.0

    @model_validator(mode="after")
    def _expires_ordered(self) -> Self:
        if self.max_expires < self.min_expires:
            raise ValueError(
                f"max_expires: must be at least min_expires ({self.min_expires}), "
                f"got {self.max_expires}"
            )
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError(
                f"default_expires: must lie between min_expires ({self.min_expires}) and "
                f"max_expires ({self.max_expires}), got {self.default_expires}"
            )
        return self


class GuardSettings(_Section):
    """Anti-scanning: fail-to-ban, flood limits, black/white lists. On by default."""

    enabled: bool = True
    max_failures: int = Field(default=5, ge=0)
    window: PositiveDuration = 60.0
    ban_time: PositiveDuration = 3 * 3600.0
    max_ban_time: PositiveDuration = 24 * 3600.0
    flood_rate: int = Field(default=100, ge=0)
    flood_block: PositiveDuration = 300.0
    ipv6_prefix: int = Field(default=64, ge=1, le=128)
    whitelist: tuple[Network, ...] = ()
    blacklist: tuple[Network, ...] = ()
    scanner_user_agents: tuple[str, ...] = (
        "friendly-scanner",
        "sipvicious",
        "sundayddr",
        "iWar",
        "sip-scan",
        "smap",
    )

    @model_validator(mode="after")
    def _ban_times_ordered(self) -> Self:
        if self.max_ban_time < self.ban_time:
            raise ValueError(
                f"max_ban_time: must be at least ban_time ({self.ban_time:g}s), "
                f"got {self.max_ban_time:g}s"
            )
        return self


class CallSettings(_Section):
    """Calls between users (issue 4): ring timeout default and the optional call length cap."""

    ring_timeout: PositiveDuration = 30.0
    max_duration: Duration = 0.0
    # Session timers (RFC 4028) run on each leg; 0 turns them off. RFC 4028 §4 wants Min-SE
    # of at least 90 s: smaller values are for tests.
    session_expires: Duration = 1800.0
    min_se: PositiveDuration = 90.0

    @model_validator(mode="after")
    def _session_timer_order(self) -> Self:
        if self.session_expires and self.session_expires < self.min_se:
            raise ValueError(
                f"session_expires: must be 0 or at least min_se ({self.min_se:g}s), "
                f"got {self.session_expires:g}s"
            )
        return self


class LinesSettings(_Section):
    """External lines, trunks and call prefixes (issue 5): timing and toll-fraud policy."""

    # Registration retry after a failure: `backoff_base` doubling up to `backoff_cap`.
    backoff_base: PositiveDuration = 60.0
    backoff_cap: PositiveDuration = 1800.0
    # Ring timeout of calls leaving through a line or trunk.
    ring_timeout: PositiveDuration = 120.0
    # Numbers that always route (any class of service, no prefix), through `emergency_route`
    # (line/trunk names in order; empty: every line, then every trunk).
    emergency_numbers: tuple[str, ...] = ("110", "112", "119", "120", "911", "999")
    emergency_route: tuple[str, ...] = ()
    # How a dialed external number is classified for class of service.
    national_prefix: str = "0"
    international_prefix: str = "00"
    # Concurrent calls out through lines/trunks per user (0: no limit).
    max_outbound_per_user: int = Field(default=0, ge=0)
    # `line test`: pause between two tries (the carrier's own fail-to-ban).
    test_spacing: Duration = 5.0
    # Re-resolve trunk and proxy host names this often.
    resolve_interval: PositiveDuration = 300.0


class DnsSettings(_Section):
    """Resolvers for RFC 3263 look-ups of line domains (empty: those of /etc/resolv.conf)."""

    servers: tuple[str, ...] = ()
    timeout: PositiveDuration = 2.0


FeatureCode = Annotated[str, Field(pattern=r"^([*#][0-9*#]{1,7})?$")]
"""A feature code prefix dialed from a phone (``*90``); empty disables that code."""


class FeatureSettings(_Section):
    """Feature codes dialed from phones (issue 4): forwarding and do-not-disturb."""

    enabled: bool = True
    forward_busy: FeatureCode = "*90"
    forward_unreachable: FeatureCode = "*91"
    forward_no_answer: FeatureCode = "*92"
    forward_unconditional: FeatureCode = "*93"
    dnd_on: FeatureCode = "*78"
    dnd_off: FeatureCode = "*79"
    # The final status confirming a change (there is no media server to play a tone yet).
    answer_status: int = Field(480, ge=400, le=699)


class Settings(BaseModel):
    """All settings, one attribute per TOML section. Build with :func:`load_settings`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    SECTIONS: ClassVar[tuple[str, ...]] = (
        "server",
        "sip",
        "tls",
        "api",
        "auth",
        "database",
        "registrar",
        "guard",
        "calls",
        "features",
        "lines",
        "dns",
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    sip: SipSettings = Field(default_factory=SipSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    registrar: RegistrarSettings = Field(default_factory=RegistrarSettings)
    guard: GuardSettings = Field(default_factory=GuardSettings)
    calls: CallSettings = Field(default_factory=CallSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    lines: LinesSettings = Field(default_factory=LinesSettings)
    dns: DnsSettings = Field(default_factory=DnsSettings)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_settings(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (TOML; ``None`` = defaults only), apply environment overrides, validate.

    Environment variables ``SIPBOX_<SECTION>_<KEY>`` (``SIPBOX_SIP_DOMAIN``,
    ``SIPBOX_GUARD_BAN_TIME``) win over the file, so a container or a test can change one value
    without writing a file. ``environ`` defaults to no overrides (pass ``os.environ`` from the
    entry point) so that library callers and tests are not affected by the caller's shell.

    Raises:
        ConfigError: the file is missing or not TOML, or a value is invalid or unknown; the
            message names every offending key (``sip.t1: ...``).
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read configuration file: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None

    env_sources = _apply_environment(data, environ or {})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, env_sources) from None


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Merge ``SIPBOX_<SECTION>_<KEY>`` variables into ``data``; return key -> variable name.

    Variables whose section is unknown (``SIPBOX_REQUIRE_INTEROP``) are left alone, since the
    prefix is shared with the test suite; an unknown *key* in a known section is kept so that
    validation reports it as a typo.
    """
    sources: dict[str, str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in NON_SETTING_VARIABLES:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section not in Settings.SECTIONS or not key:
            continue
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            continue  # the file's own wrong type is reported by validation
        table[key] = _env_value(section, key, environ[name])
        sources[f"{section}.{key}"] = name
    return sources


def _env_value(section: str, key: str, raw: str) -> object:
    """Turn an environment string into what the TOML file would hold for that key.

    Lists accept a TOML inline array (``["a", "b"]``) or comma separated text (``a,b``).
    Scalars stay strings; pydantic converts ``"60"``/``"true"`` in its lax mode.
    """
    model = Settings.model_fields[section].annotation
    is_model = isinstance(model, type) and issubclass(model, BaseModel)
    field = model.model_fields.get(key) if is_model else None  # type: ignore[union-attr]
    if field is None or not _is_sequence(field.annotation):
        return raw
    text = raw.strip()
    if text.startswith("["):
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return raw  # reported by validation as "expected a list"
    return [item.strip() for item in text.split(",") if item.strip()]


def _is_sequence(annotation: object) -> bool:
    return get_origin(annotation) is tuple or any(_is_sequence(a) for a in get_args(annotation))


_FRIENDLY = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "tuple_type": "expected a list",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "dataclass_type": "expected a string",
    "path_type": "expected a path",
}


def _config_error(exc: ValidationError, env_sources: Mapping[str, str]) -> ConfigError:
    """Rewrite pydantic's errors as ``section.key: problem`` lines an administrator can act on."""
    lines: list[str] = []
    first_key: str | None = None
    for error in exc.errors(include_url=False):
        loc = [part for part in error["loc"] if isinstance(part, str)]
        indexes = "".join(f"[{part}]" for part in error["loc"] if isinstance(part, int))
        message = str(error["msg"])
        kind = error["type"]
        if kind == "value_error":
            message = message.removeprefix("Value error, ")
            # Cross-field checks (model validators) say "field: problem"; attach the section.
            head, sep, rest = message.partition(": ")
            if len(loc) == 1 and sep and re.fullmatch(r"[a-z_0-9]+", head):
                loc.append(head)
                message = rest
        elif kind == "extra_forbidden":
            message = "unknown section" if len(loc) == 1 else "unknown setting"
        else:
            friendly = _FRIENDLY.get(kind)
            if friendly is None:  # e.g. "Input should be greater than 0" -> "must be ..."
                friendly = message.replace("Input should be", "must be", 1)
                friendly = friendly[:1].lower() + friendly[1:]
            message = f"{friendly}, got {_show(error['input'])}"
        key = ".".join(loc) or "settings"
        origin = env_sources.get(key)
        suffix = f" (from environment variable {origin})" if origin else ""
        lines.append(f"{key}{indexes}: {message}{suffix}")
        first_key = first_key or key
    return ConfigError("\n".join(lines), key=first_key)
