"""Calls in from lines and trunks: who is calling (by source address), which number was called
(the DID), and where it goes (inbound routes).

Precedence when one address serves several purposes (documented in docs/lines.md):

1. a **line**: the source is the line's carrier (its proxy or a resolved target) AND the
   Request-URI user is the line's random Contact user - several lines at one carrier share the
   address, the Contact user tells them apart, and a stranger would have to guess it;
2. a **trunk**: the source is one of the trunk's (resolved) addresses;
3. otherwise the ordinary rules: an IP-authorized user, then digest.

So a request from a carrier address that does not name a line's Contact user is *not* trusted
as that line (it may still be a trunk at that address). REGISTER is never matched here.

Inbound routes: for a DID from source S, the first found of (S, DID), (any, DID), (S, default),
(any, default); without a route the DID itself is dialed (a DID equal to a local number rings
it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sipbox.sip.errors import RemoteProtocolError
from sipbox.sip.headers import parse_name_addr
from sipbox.sip.message import Request
from sipbox.sip.uri import SipUri, TelUri, parse_uri
from sipbox.storage.interface import User

__all__ = ["InboundMatch", "InboundRoutes", "called_number", "calling_user", "uri_user"]


@dataclass(frozen=True, slots=True)
class InboundMatch:
    """A request from a line/trunk: which one, the DID, the local destination."""

    kind: str  # "line" | "trunk"
    name: str
    did: str
    destination: str


def uri_user(text: str | None) -> str | None:
    """The user part (or tel: number) of a URI / name-addr text."""
    if not text:
        return None
    try:
        value = text.strip()
        uri = parse_name_addr(value).uri if "<" in value else parse_uri(value)
    except (RemoteProtocolError, ValueError):
        return None
    if isinstance(uri, SipUri):
        return uri.user_decoded()
    if isinstance(uri, TelUri):
        return uri.digits()
    return None


def called_number(request: Request, source: str) -> str | None:
    """The DID: from the Request-URI, To, or P-Called-Party-ID (IMS, RFC 3455 §4.2), per
    the line's `did_source`; the others are fall-backs."""
    order = {
        "request-uri": ("uri", "to"),
        "to": ("to", "uri"),
        "p-called-party-id": ("pcpi", "to", "uri"),
    }[source]
    for where in order:
        if where == "uri":
            found = uri_user(request.uri_text)
        elif where == "to":
            found = uri_user(request.headers.get("to"))
        else:
            found = uri_user(request.headers.get("p-called-party-id"))
        if found:
            return found
    return None


def calling_user(request: Request, kind: str, name: str) -> User:
    """The caller of an inbound call as the B2BUA wants it: a `User` that exists only for this
    call, class of service ``none`` (an outsider cannot reach lines through us), numbered
    with the asserted identity (P-Asserted-Identity, RFC 3325) or the From user."""
    number = uri_user(request.headers.get("p-asserted-identity")) or uri_user(
        request.headers.get("from")
    )
    display = ""
    try:
        display = request.from_.display or ""
    except RemoteProtocolError:
        pass
    return User(
        id=0,
        number=number or "anonymous",
        display_name=display,
        ha1_md5=None,
        ha1_sha256=None,
        realm=None,
        enabled=True,
        max_contacts=None,
        ip_auth=(),
        static_contact=None,
        nat="auto",
        ring_timeout=None,
        max_calls=None,
        class_of_service="none",
        settings={"peer": f"{kind}:{name}"},
        created_at=0.0,
        updated_at=0.0,
    )


class InboundRoutes:
    """DID -> destination, per source (see the module doc)."""

    __slots__ = ("_routes",)

    def __init__(self, routes: Iterable[tuple[str, str, str]] = ()) -> None:
        self._routes: Mapping[tuple[str, str], str] = {(s, d): dest for s, d, dest in routes}

    def destination(self, source: str, did: str) -> str:
        routes = self._routes
        for key in ((source, did), ("", did), (source, ""), ("", "")):
            found = routes.get(key)
            if found:
                return found
        return did
