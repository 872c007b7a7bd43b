"""The two error types of the SIP core (after h11): whose fault, and what to answer.

`RemoteProtocolError` is the peer's fault: the message is malformed or not allowed. It carries
`status_hint`, the SIP status a server would answer (400 unless a more precise one applies), so
callers never guess. `LocalProtocolError` is our own misuse of the API: a bug, never a peer's.
The parser's fuzz invariant is that bad input raises `RemoteProtocolError` and nothing else.
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error the SIP core raises on purpose."""


class RemoteProtocolError(SipError):
    """The peer sent something we cannot accept; `status_hint` is the response to send."""

    def __init__(self, reason: str, status_hint: int = 400, partial: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint
        # A request whose start line was refused (bad version, stray spaces...) but whose
        # headers may still be good enough to answer it statelessly (RFC 4475 §3.1.2.16).
        self.partial = partial


class LocalProtocolError(SipError):
    """We tried to do something the protocol does not allow (a programming error)."""
