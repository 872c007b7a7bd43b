"""The location service: live bindings and where to send a request for a user (RFC 3261 §10,
RFC 3581, RFC 5626), including the NAT decision.

A `LiveBinding` is the in-memory form of a registrar binding (`__slots__`: 100,000 of them
must fit in well under 300 MB). It remembers the Contact as registered *and* where the REGISTER
really came from (source transport/host/port, the local listener, the stream connection id),
because a phone behind NAT advertises an address nobody can reach.

NAT decision (issue 3), per binding, overridable per user with ``nat = yes|no``:

* ``auto``: behind NAT when the Contact host is a private address (RFC 1918, RFC 6598 shared
  space, IPv6 ULA, link-local) that differs from the source address, or when the client
  registered with RFC 5626 outbound (``reg-id``: it asked us to use its flow). Otherwise the
  Contact is used as registered, so third-party registrations keep working;
* ``yes``: always the source address (phones behind a SIP ALG that rewrites the address but
  not the port);
* ``no``: always the Contact.

Stream (TCP/TLS) bindings sent to the source reuse the connection they registered on while it
lives (RFC 5626 §5.3; the transport falls back to a new connection when the id is gone).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sipbox.sip.address import DEFAULT_PORTS, Address
from sipbox.sip.errors import RemoteProtocolError
from sipbox.sip.uri import SipUri, parse_sip_uri
from sipbox.storage.interface import Binding, User

_PRIVATE_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # RFC 6598 carrier-grade NAT
        "169.254.0.0/16",  # IPv4 link-local
        "fc00::/7",  # IPv6 unique local
        "fe80::/10",  # IPv6 link-local
    )
]

_TRANSPORTS = {"udp", "tcp", "tls", "ws", "wss"}


def is_private(host: str) -> bool:
    """Whether `host` is an IP literal in a private/NAT/link-local range (names are not)."""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return any(addr.version == net.version and addr in net for net in _PRIVATE_NETS)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def contact_address(uri: SipUri) -> Address:
    """Where the Contact URI itself points (§19.1.1 default ports; sips means TLS)."""
    transport = uri.transport or ("tls" if uri.secure else "udp")
    if transport not in _TRANSPORTS:
        transport = "udp"
    if uri.secure and transport == "tcp":
        transport = "tls"
    port = uri.port or DEFAULT_PORTS[transport]
    return Address(transport, uri.host_bare, port)  # type: ignore[arg-type]


class _Domain:
    """The domain of AORs of the form ``sip:<number>@<domain>`` (every local user's): a
    binding holds this shared object instead of its own AOR text (~70 bytes each)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_DOMAINS: dict[str, _Domain] = {}


def _aor_form(aor: str, number: str) -> str | _Domain:
    """What a binding stores for `aor`: the shared domain when the AOR is exactly
    ``sip:<number>@<domain>``, else the text itself."""
    at = 4 + len(number)
    if aor.startswith("sip:") and aor.startswith("@", at) and aor[4:at] == number:
        name = aor[at + 1 :]
        shared = _DOMAINS.get(name)
        if shared is None:
            if len(_DOMAINS) >= 64 or not name:
                return aor
            shared = _DOMAINS[name] = _Domain(name)
        return shared
    return aor


class LiveBinding:
    """One registered contact of one AOR, as the registrar holds it in memory.

    `match_key` is the registrar's contact key (`registrar.contact_key`), set when the binding
    is installed: an AOR with one binding holds the binding itself, not a dict by key."""

    __slots__ = (
        "_aor",
        "call_id",
        "connection_id",
        "contact_uri",
        "cseq",
        "expires_at",
        "instance_id",
        "local",
        "match_key",
        "path",
        "q",
        "reg_id",
        "source",
        "updated_at",
        "user_agent",
        "user_number",
    )

    def __init__(
        self,
        *,
        aor: str,
        user_number: str,
        contact_uri: str,
        uri: SipUri,
        call_id: str,
        cseq: int,
        expires_at: float,
        source: Address,
        local: Address | None = None,
        connection_id: int | None = None,
        instance_id: str | None = None,
        reg_id: int | None = None,
        user_agent: str | None = None,
        q: float | None = None,
        path: tuple[str, ...] = (),
        updated_at: float = 0.0,
    ) -> None:
        self.user_number = user_number
        self._aor = _aor_form(aor, user_number)
        self.match_key = ""
        # Only the text is kept: the parsed URI (≈400 bytes with its parameters) is parsed again
        # when a request is routed (`uri`; the parser's memo makes that cheap for hot contacts).
        # `uri` is accepted so callers that parsed it need not care.
        self.contact_uri = contact_uri
        self.call_id = call_id
        self.cseq = cseq
        self.expires_at = expires_at
        self.source = source
        self.local = local
        self.connection_id = connection_id
        self.instance_id = instance_id
        self.reg_id = reg_id
        self.user_agent = user_agent
        self.q = q
        self.path = path
        self.updated_at = updated_at

    @property
    def aor(self) -> str:
        """The address-of-record (``sip:<number>@<domain>`` for a local user)."""
        aor = self._aor
        return aor if type(aor) is str else f"sip:{self.user_number}@{aor.name}"

    @aor.setter
    def aor(self, value: str) -> None:
        self._aor = _aor_form(value, self.user_number)

    @property
    def uri(self) -> SipUri:
        """The Contact URI, parsed (from `contact_uri`, which is its canonical text)."""
        return parse_sip_uri(self.contact_uri)

    @uri.setter
    def uri(self, value: SipUri) -> None:
        self.contact_uri = str(value)

    # Names the API's `BindingView` reads.
    @property
    def contact(self) -> str:
        """The Contact URI as registered (text); `uri` is the parsed form."""
        return self.contact_uri

    @property
    def number(self) -> str:
        return self.user_number

    @property
    def source_transport(self) -> str:
        return self.source.transport

    @property
    def source_host(self) -> str:
        return self.source.host

    @property
    def source_port(self) -> int:
        return self.source.port

    def expires_in(self, now: float) -> int:
        """Seconds left, rounded, never negative (what the 200 OK lists, §10.3 step 8)."""
        left = self.expires_at - now
        return int(left + 0.5) if left > 0 else 0

    def to_record(self) -> Binding:
        """The stored form (restart recovery)."""
        local = self.local
        return Binding(
            aor=self.aor,
            contact_uri=self.contact_uri,
            user_number=self.user_number,
            call_id=self.call_id,
            cseq=self.cseq,
            expires_at=self.expires_at,
            instance_id=self.instance_id,
            reg_id=self.reg_id,
            received_transport=self.source.transport,
            received_host=self.source.host,
            received_port=self.source.port,
            local_transport=local.transport if local else "udp",
            local_host=local.host if local else "",
            local_port=local.port if local else 0,
            connection_hint=str(self.connection_id) if self.connection_id is not None else None,
            path=self.path,
            user_agent=self.user_agent,
            q=self.q,
        )

    @classmethod
    def from_record(cls, record: Binding) -> LiveBinding | None:
        """A binding restored from the store (connection ids do not survive a restart)."""
        try:
            contact = parse_sip_uri(record.contact_uri)
        except RemoteProtocolError:
            return None
        local = (
            Address(record.local_transport, record.local_host, record.local_port)  # type: ignore[arg-type]
            if record.local_host
            else None
        )
        return cls(
            aor=record.aor,
            user_number=record.user_number,
            contact_uri=record.contact_uri,
            uri=contact,
            call_id=record.call_id,
            cseq=record.cseq,
            expires_at=record.expires_at,
            source=Address(
                record.received_transport,  # type: ignore[arg-type]
                record.received_host,
                record.received_port,
            ),
            local=local,
            connection_id=None,
            instance_id=record.instance_id,
            reg_id=record.reg_id,
            user_agent=record.user_agent,
            q=record.q,
            path=tuple(record.path),
            updated_at=0.0,
        )

    def __repr__(self) -> str:
        return f"<LiveBinding {self.aor} {self.contact_uri} via {self.source}>"


def behind_nat(binding: LiveBinding, nat_mode: str = "auto") -> bool:
    """The NAT decision described in the module docstring."""
    if nat_mode == "yes":
        return True
    if nat_mode == "no":
        return False
    if binding.reg_id is not None:
        return True
    host = binding.uri.host_bare
    if not is_ip_literal(host):
        # A name we would have to resolve on the SIP path: the source is the safe choice
        # for a phone, and a third-party registrar names a public host rarely seen here.
        return False
    source = binding.source.host
    return is_private(host) and _canon(host) != _canon(source)


def _canon(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host.lower()


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send a request for a user: the Request-URI to write, the transport address to
    send it to, the stream connection to reuse, and the binding it came from (None for an
    IP-authorized user's static contact)."""

    request_uri: str
    destination: Address
    connection_id: int | None = None
    binding: LiveBinding | None = None
    nat: bool = False


def binding_target(binding: LiveBinding, nat_mode: str = "auto") -> Target:
    """The target of a registered contact (§16.5: the Request-URI is the contact)."""
    nat = behind_nat(binding, nat_mode)
    if nat or not is_ip_literal(binding.uri.host_bare):
        destination = binding.source
        connection_id = binding.connection_id if destination.is_stream else None
    else:
        destination = contact_address(binding.uri)
        same_flow = destination == binding.source
        connection_id = binding.connection_id if same_flow and destination.is_stream else None
    return Target(str(binding.uri), destination, connection_id, binding, nat)


def parse_static_contact(text: str) -> Address | None:
    """``host:port[;transport=tcp]`` (or a ``sip:`` URI) as an address, None if malformed."""
    text = text.strip()
    if not text:
        return None
    if not text.lower().startswith(("sip:", "sips:")):
        hostport, _, params = text.partition(";")
        if "@" in hostport:
            hostport = hostport.rsplit("@", 1)[1]
        text = f"sip:{hostport}" + (f";{params}" if params else "")
    try:
        uri = parse_sip_uri(text)
    except RemoteProtocolError:
        return None
    return contact_address(uri)


def static_target(user: User, last_source: Address | None = None) -> Target | None:
    """The target of an IP-authorized user: its static contact, else the last source address
    it sent from; Request-URI ``sip:<number>@<host:port>`` (issue 3)."""
    destination = None
    if user.static_contact:
        destination = parse_static_contact(user.static_contact)
    if destination is None:
        destination = last_source
    if destination is None:
        return None
    uri = f"sip:{user.number}@{destination.hostport()}"
    if destination.transport != "udp":
        uri += f";transport={destination.transport}"
    return Target(uri, destination, None, None, False)
