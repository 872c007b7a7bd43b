"""Bodies of ``/lines``, ``/trunks``, ``/prefixes``, ``/inbound-routes`` (issue 5) for the
OpenAPI document, with examples.

Why response models here rather than the ``dict`` the admin layer builds: the document must say
what a client gets back, schemathesis checks answers against it, and a response model is a
whitelist - a write-only secret (``password``) or a key added to the stored JSON by mistake
cannot reach a client because FastAPI keeps only the declared fields. Defaults are those of
`sipbox.pbx.lines.line.LineConfig`/`TrunkConfig`, so a field not stored is shown with the value
in force. Field meanings: docs/lines.md.

Input models stay open (``extra="allow"``): the fields are validated by the same code the SIP
side uses (`line_from_config`), whose messages name the field.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "IMS_LINE_IN",
    "LineChanges",
    "LineIn",
    "LineList",
    "LineOut",
    "LineStatusOut",
    "LineTestIn",
    "LineTestOut",
    "LineTryOut",
    "PrefixChanges",
    "PrefixIn",
    "PrefixList",
    "PrefixOut",
    "RouteChanges",
    "RouteIn",
    "RouteList",
    "RouteOut",
    "TrunkChanges",
    "TrunkIn",
    "TrunkList",
    "TrunkOut",
    "TrunkStatusOut",
]

Transport = Literal["udp", "tcp", "tls"]
DidSource = Literal["request-uri", "to", "p-called-party-id"]

# -- examples (also used by tests, which check each validates against its schema) -----------

#: A China Telecom IMS-style line: logical domain (never resolved: the proxy is set), the SBC
#: by address, digest username ``account@domain`` (ZTE softswitches refuse the short form).
IMS_LINE_IN: Final[dict[str, Any]] = {
    "name": "ct-ims",
    "domain": "ims.example.cn",
    "proxy": "192.0.2.10:5060",
    "account": "+8675512345678",
    "password": "secret-from-the-carrier",
    "auth_id_with_domain": True,
    "uri_params": "user=phone",
    "identity_header": "pai",
    "did_source": "p-called-party-id",
    "keepalive": 30,
}
_TRUNK_IN: Final[dict[str, Any]] = {
    "name": "sbc-office",
    "addresses": ["192.0.2.20:5060", "192.0.2.21:5060"],
    "transport": "udp",
    "keepalive": 30,
}
_LINE_STATUS: Final[dict[str, Any]] = {
    "state": "registered",
    "registered_until": 1_767_229_200.0,
    "last_status": 200,
    "last_reason": "OK",
    "last_attempt": 1_767_225_600.0,
    "next_attempt": 1_767_227_400.0,
    "failures": 0,
    "target": "udp:192.0.2.10:5060",
    "service_route": ["<sip:orig@scscf.ims.example.cn;lr>"],
    "associated_uris": ["<sip:+8675512345678@ims.example.cn>", "<tel:+8675512345678>"],
    "calls_in": 0,
    "calls_out": 1,
    "reachable": True,
    "last_keepalive": 1_767_225_630.0,
    "last_test": None,
}
_LINE_OUT: Final[dict[str, Any]] = {
    "id": 1,
    "name": "ct-ims",
    "enabled": True,
    "position": 0,
    "domain": "ims.example.cn",
    "account": "+8675512345678",
    "proxy": "192.0.2.10:5060",
    "proxy_mode": "destination",
    "auth_id": None,
    "auth_id_with_domain": True,
    "realm": None,
    "register": True,
    "expires": 3600,
    "from_user": None,
    "from_domain": None,
    "display": None,
    "transport": "udp",
    "keepalive": 30.0,
    "max_calls_in": None,
    "max_calls_out": None,
    "uri_params": "user=phone",
    "new_call_id": False,
    "identity_header": "pai",
    "present_caller": False,
    "tls_verify": True,
    "tls_server_name": None,
    "did_source": "p-called-party-id",
    "ims_empty_auth": False,
    "contact_user": "sbx3f9a0c1d2e4b",
    "has_password": True,
    "created_at": 1_767_225_000.0,
    "updated_at": 1_767_225_000.0,
    "status": _LINE_STATUS,
}
_TRUNK_OUT: Final[dict[str, Any]] = {
    "id": 1,
    "name": "sbc-office",
    "enabled": True,
    "position": 0,
    "addresses": ["192.0.2.20:5060", "192.0.2.21:5060"],
    "transport": "udp",
    "domain": None,
    "keepalive": 30.0,
    "max_calls_in": None,
    "max_calls_out": None,
    "uri_params": "",
    "from_domain": None,
    "present_caller": True,
    "did_source": "request-uri",
    "tls_verify": True,
    "tls_server_name": None,
    "has_password": False,
    "created_at": 1_767_225_000.0,
    "updated_at": 1_767_225_000.0,
    "status": {
        "state": "up",
        "addresses": ["udp:192.0.2.20:5060", "udp:192.0.2.21:5060"],
        "last_change": 1_767_225_030.0,
        "calls_in": 0,
        "calls_out": 0,
    },
}
_PREFIX_OUT: Final[dict[str, Any]] = {
    "id": 1,
    "pattern": "9",
    "min_length": None,
    "max_length": None,
    "strip": 1,
    "prepend": "",
    "targets": ["line:ct-ims", "trunk:sbc-office"],
    "caller_id": None,
    "caller_prefix": None,
    "class_of_service": None,
    "implicit": False,
}
_ROUTE_OUT: Final[dict[str, Any]] = {
    "id": 1,
    "source": "ct-ims",
    "did": "+8675512345678",
    "destination": "1001",
}
_TRY_OUT: Final[dict[str, Any]] = {
    "username": "+8675512345678@ims.example.cn",
    "via": "192.0.2.10:5060",
    "with_domain": True,
    "use_proxy": True,
    "accepted": True,
    "status": 200,
    "reason": "OK",
    "released": True,
}
_TEST_OUT: Final[dict[str, Any]] = {
    "line": "ct-ims",
    "tries": [_TRY_OUT],
    "accepted": _TRY_OUT,
    "summary": 'The carrier accepts username "+8675512345678@ims.example.cn" via '
    "192.0.2.10:5060. The test registration was withdrawn again (Expires: 0).",
    "finished_at": 1_767_225_700.0,
}


def _examples(*values: dict[str, Any]) -> dict[str, Any]:
    return {"examples": list(values)}


# -- inputs ---------------------------------------------------------------------------------


class PeerIn(BaseModel):
    """A line or trunk: `name` plus the fields of docs/lines.md."""

    model_config = ConfigDict(extra="allow")
    name: str
    enabled: bool = True


class LineIn(PeerIn):
    """A line: `name`, `domain`, `account`, `password` (write-only: stored encrypted, never
    answered) and any field of docs/lines.md (proxy, auth_id_with_domain, ...)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_examples(IMS_LINE_IN))


class TrunkIn(PeerIn):
    """A trunk: `name`, `addresses` (host[:port], one or more) and the trunk fields of
    docs/lines.md (transport, keepalive, domain, ...)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_examples(_TRUNK_IN))


class ChangesIn(BaseModel):
    """Fields to change; null removes an optional field (back to its default)."""

    model_config = ConfigDict(extra="allow")


class LineChanges(ChangesIn):
    """Line fields to change (``password`` sets a new one); null = back to the default."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra=_examples(
            {"proxy": "192.0.2.11:5060;transport=tcp", "auth_id_with_domain": True},
            {"enabled": False},
        ),
    )


class TrunkChanges(ChangesIn):
    """Trunk fields to change; null = back to the default."""

    model_config = ConfigDict(
        extra="allow", json_schema_extra=_examples({"addresses": ["192.0.2.22:5060"]})
    )


class PrefixIn(BaseModel):
    """A call prefix: pattern, strip, prepend, targets (``line:NAME``/``trunk:NAME``),
    min_length/max_length, caller_id, caller_prefix, class_of_service."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra=_examples({"pattern": "9", "strip": 1, "targets": ["line:ct-ims"]}),
    )
    pattern: str


class PrefixChanges(ChangesIn):
    """Prefix fields to change."""

    model_config = ConfigDict(
        extra="allow", json_schema_extra=_examples({"targets": ["line:ct-ims", "trunk:sbc"]})
    )


class RouteIn(BaseModel):
    """An inbound route: source ("" = any), did ("" = default), destination."""

    model_config = ConfigDict(
        json_schema_extra=_examples(
            {"source": "ct-ims", "did": "+8675512345678", "destination": "1001"}
        )
    )
    source: str = ""
    did: str = ""
    destination: str


class RouteChanges(ChangesIn):
    """Inbound route fields to change (source, did, destination)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_examples({"destination": "600"}))


class LineTestIn(BaseModel):
    """Options of a line test: `spacing` seconds between tries (default ``[lines]
    test_spacing``)."""

    model_config = ConfigDict(json_schema_extra=_examples({"spacing": 2.0}, {}))
    spacing: float | None = None


# -- answers --------------------------------------------------------------------------------


class LineTryOut(BaseModel):
    """One registration form tried by the line test."""

    model_config = ConfigDict(json_schema_extra=_examples(_TRY_OUT))
    username: str
    via: str
    with_domain: bool | None = None
    use_proxy: bool | None = None
    accepted: bool
    status: int | None = None
    reason: str | None = None
    released: bool = False


class LineTestOut(BaseModel):
    """What the line test found, in plain words (`summary`) and per try."""

    model_config = ConfigDict(json_schema_extra=_examples(_TEST_OUT))
    line: str
    tries: list[LineTryOut]
    accepted: LineTryOut | None = None
    summary: str
    finished_at: float | None = Field(None, description="When the test ended (epoch seconds)")


class LineStatusOut(BaseModel):
    """A line's live registration state (docs/lines.md, Registration)."""

    model_config = ConfigDict(json_schema_extra=_examples(_LINE_STATUS))
    state: str = Field(
        description="registered, registering, unregistering, failed, disabled or unregistered"
    )
    registered_until: float | None = None
    last_status: int | None = Field(None, description="The carrier's last answer (403, 200)")
    last_reason: str | None = None
    last_attempt: float | None = None
    next_attempt: float | None = None
    failures: int = 0
    target: str | None = Field(None, description="transport:host:port in use")
    service_route: list[str] = Field(default_factory=list)
    associated_uris: list[str] = Field(default_factory=list)
    calls_in: int = 0
    calls_out: int = 0
    reachable: bool | None = Field(None, description="OPTIONS keep-alive answer (null: not probed)")
    last_keepalive: float | None = None
    last_test: LineTestOut | None = Field(
        None, description="The last Test result since the server started (kept in memory)"
    )


class LineOut(BaseModel):
    """A line with its live status; never its password (``has_password`` says if one is set)."""

    model_config = ConfigDict(json_schema_extra=_examples(_LINE_OUT))
    id: int
    name: str
    enabled: bool
    position: int
    domain: str
    account: str
    proxy: str | None = None
    proxy_mode: Literal["destination", "route"] = "destination"
    auth_id: str | None = None
    auth_id_with_domain: bool = False
    realm: str | None = None
    # "register" would shadow ABCMeta.register on the model class: aliased.
    register_: bool = Field(True, alias="register", description="Off: calls only")
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
    did_source: DidSource = "to"
    ims_empty_auth: bool = False
    contact_user: str = ""
    has_password: bool
    created_at: float
    updated_at: float
    status: LineStatusOut


class TrunkStatusOut(BaseModel):
    """A trunk's live state from its OPTIONS keep-alive."""

    model_config = ConfigDict(json_schema_extra=_examples(_TRUNK_OUT["status"]))
    state: str = Field(description="up, down, disabled or unknown")
    addresses: list[str] = Field(default_factory=list)
    last_change: float | None = None
    calls_in: int = 0
    calls_out: int = 0


class TrunkOut(BaseModel):
    """A trunk with its live status."""

    model_config = ConfigDict(json_schema_extra=_examples(_TRUNK_OUT))
    id: int
    name: str
    enabled: bool
    position: int
    addresses: list[str]
    transport: Transport = "udp"
    domain: str | None = None
    keepalive: float = 30.0
    max_calls_in: int | None = None
    max_calls_out: int | None = None
    uri_params: str = ""
    from_domain: str | None = None
    present_caller: bool = True
    did_source: DidSource = "request-uri"
    tls_verify: bool = True
    tls_server_name: str | None = None
    has_password: bool
    created_at: float
    updated_at: float
    status: TrunkStatusOut


class LineList(BaseModel):
    """Every line, in the order they are tried."""

    model_config = ConfigDict(json_schema_extra=_examples({"total": 1, "lines": [_LINE_OUT]}))
    total: int
    lines: list[LineOut]


class TrunkList(BaseModel):
    """Every trunk, in the order they are tried."""

    model_config = ConfigDict(json_schema_extra=_examples({"total": 1, "trunks": [_TRUNK_OUT]}))
    total: int
    trunks: list[TrunkOut]


class PrefixOut(BaseModel):
    """A call prefix rule; `implicit` marks the built-in ``9`` rule (id 0, not stored)."""

    model_config = ConfigDict(json_schema_extra=_examples(_PREFIX_OUT))
    id: int
    pattern: str
    min_length: int | None = None
    max_length: int | None = None
    strip: int = 0
    prepend: str = ""
    targets: list[str] = Field(default_factory=list)
    caller_id: str | None = None
    caller_prefix: str | None = None
    class_of_service: str | None = None
    implicit: bool = False


class PrefixList(BaseModel):
    """Prefix rules, longest match first."""

    model_config = ConfigDict(json_schema_extra=_examples({"total": 1, "prefixes": [_PREFIX_OUT]}))
    total: int
    prefixes: list[PrefixOut]


class RouteOut(BaseModel):
    """An inbound route: calls from `source` ("" = any) to `did` ("" = default) ring
    `destination` (a user or group number)."""

    model_config = ConfigDict(json_schema_extra=_examples(_ROUTE_OUT))
    id: int
    source: str
    did: str
    destination: str


class RouteList(BaseModel):
    """Every inbound route."""

    model_config = ConfigDict(json_schema_extra=_examples({"total": 1, "routes": [_ROUTE_OUT]}))
    total: int
    routes: list[RouteOut]
