"""What crosses between the legs of a call: a policy, not a copy (issue 4).

A B2BUA is two UAs back to back, so nothing of one leg's transport or dialog state may appear
on the other: Via, Contact, Record-Route, Route, Call-ID, tags and CSeq are always our own, and
so are Max-Forwards (the caller's minus one, RFC 3261 §16.6 step 3 by analogy, which is what
stops a B2BUA loop) and the caller's identity: `P-Asserted-Identity` is written from the
authenticated user and any PAI/PPI a phone sent is dropped (RFC 3325 §9.1: only trusted hosts
may assert). Everything else is copied only if it is on an allow-list: headers that describe
the session or the message and are meaningful end to end. Unknown headers stay on their leg.

`Supported` is filtered to the extensions this B2BUA implements on both legs (none of 100rel,
timer, replaces yet: see docs/calls.md), so a phone never negotiates an extension with the far
end that we would then fail to carry across.
"""

from __future__ import annotations

from sipbox.sip.headers import Headers, header_key

__all__ = [
    "IN_DIALOG_HEADERS",
    "INVITE_HEADERS",
    "RESPONSE_HEADERS",
    "copy_allowed",
    "supported_value",
]

_COMMON = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "allow",
        "allow-events",
        "call-info",
        "content-disposition",
        "content-encoding",
        "content-language",
        "mime-version",
        "reason",  # RFC 3326: why a request or a failure happened
        "user-to-user",
        "warning",
    }
)

#: Copied from the caller's INVITE to each B leg's INVITE.
INVITE_HEADERS = _COMMON | {"alert-info", "subject", "priority", "privacy", "organization", "date"}

#: Copied on in-dialog requests (re-INVITE, UPDATE, INFO, MESSAGE, NOTIFY, BYE).
IN_DIALOG_HEADERS = _COMMON | {
    "event",
    "subscription-state",
    "info-package",  # RFC 6086
    "recv-info",
    "subject",
    "priority",
    "date",
    "in-reply-to",
}

#: Copied from a response on one leg to the response we send on the other.
RESPONSE_HEADERS = _COMMON | {
    "alert-info",
    "error-info",
    "retry-after",  # 486/480/503: when to try again
    "unsupported",
    "recv-info",
    "server",
}

#: Extensions we carry across legs; every other option tag is removed from Supported.
SUPPORTED_HERE: frozenset[str] = frozenset()

_SKIP = frozenset({"supported", "content-type", "content-length"})


def copy_allowed(source: Headers, allowed: frozenset[str]) -> list[tuple[str, str]]:
    """The (name, value) lines of `source` whose header is in `allowed`, in order."""
    out: list[tuple[str, str]] = []
    for name, value in source:
        key = header_key(name)
        if key in allowed and key not in _SKIP:
            out.append((name, value))
    supported = supported_value(source)
    if supported:
        out.append(("Supported", supported))
    return out


def supported_value(source: Headers) -> str:
    """The caller's Supported option tags that we also implement, comma-separated."""
    if not SUPPORTED_HERE or "supported" not in source:
        return ""
    tags = [t.strip() for t in source.values("supported")]
    return ", ".join(t for t in tags if t.lower() in SUPPORTED_HERE)
