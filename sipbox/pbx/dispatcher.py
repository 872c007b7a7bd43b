"""The PBX's front door: every SIP event from the endpoint arrives here first.

It applies the checks every request gets before any feature sees it (RFC 3261 §8.2): the
Request-URI scheme (416), unsupported `Require` option tags (420 with `Unsupported`),
Max-Forwards exhausted on a request we would relay (483), a method nobody handles (501) or one
we know but do not allow (405) — both with `Allow`. It answers out-of-dialog OPTIONS itself
(statelessly, a 200 with Allow/Accept/Supported), then hands the request to the feature that
registered for its method (registrar, calls...). Features register handlers, so `Allow` always
tells the truth about what this server does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sipbox.sip.message import Request, Response
from sipbox.sip.replies import make_response
from sipbox.sip.uri import AbsoluteUri

from .port import SipPort

log = logging.getLogger("sipbox.pbx")

# Methods of RFC 3261 and its common extensions: a request with one of these that no feature
# handles gets 405 (known, not allowed here); anything else gets 501 (RFC 4475 §3.1.1.2).
KNOWN_METHODS = frozenset(
    {
        "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO",
        "MESSAGE", "REFER", "NOTIFY", "SUBSCRIBE", "PUBLISH",
    }
)  # fmt: skip

# Requests we answer as the target (never relayed), so Max-Forwards 0 is not an error for them.
_TERMINATED_HERE = frozenset({"OPTIONS", "REGISTER", "ACK", "CANCEL"})

ACCEPT = "application/sdp"


@dataclass(slots=True)
class RequestContext:
    """A received request with what the PBX knows of where it came from."""

    request: Request
    peer: Any  # sipbox.sip.address.Peer (Any, not object: mypyc's dataclasses reject `object`)
    transaction: object | None = None
    # Set by the guard's screen (`pbx/security.py`) once it inspected the scanner signature:
    # (the guard, the From display name it checked), so auth does not inspect it again.
    signature: tuple[object, str | None] | None = None


RequestHandler = Callable[[RequestContext], None]
EventHandler = Callable[[object], None]


@dataclass(slots=True)
class Dispatcher:
    """Routes endpoint events to features; answers what no feature needs to see."""

    port: SipPort
    user_agent: str = "sipbox"
    supported: set[str] = field(default_factory=set)
    handlers: dict[str, RequestHandler] = field(default_factory=dict)
    event_handlers: dict[type, EventHandler] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    # Requests that passed the screen, by method (read by /metrics at scrape time).
    requests: dict[str, int] = field(default_factory=dict)
    # The anti-scanning hook (issue 6, `pbx/security.py`): asked first for every request; False
    # drops it without any response (a source just banned or flood-blocked gets no feedback).
    screen: Callable[[RequestContext], bool] | None = None
    # allow_header() for the handlers it was computed from (OPTIONS and 405/501 ask every time).
    _allow: tuple[frozenset[str], str] | None = field(default=None, init=False, repr=False)
    # The stateless OPTIONS 200's lines after To..CSeq, for (handlers, Supported, Server).
    _options_tail: tuple[tuple[frozenset[str], frozenset[str], str], str] | None = field(
        default=None, init=False, repr=False
    )

    def __post_init__(self) -> None:
        # Out-of-dialog OPTIONS are answered without a server transaction (issue 2): the
        # endpoint calls `answer_stateless` before it would create one. A port without the
        # hook (tests' fakes) keeps the transaction path; both give the same answers.
        hook = getattr(self.port, "answer_statelessly", None)
        if hook is not None:
            hook(("OPTIONS",), self.answer_stateless)

    def allow_header(self) -> str:
        cached = self._allow
        if cached is not None and cached[0] == self.handlers.keys():
            return cached[1]
        methods = {"OPTIONS", *self.handlers}
        if "INVITE" in methods:
            methods |= {"ACK", "CANCEL"}
        order = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "PRACK", "UPDATE"]
        ordered = [m for m in order if m in methods] + sorted(m for m in methods if m not in order)
        value = ", ".join(ordered)
        self._allow = (frozenset(self.handlers), value)
        return value

    def on_request(self, method: str, handler: RequestHandler) -> None:
        """A feature takes every request of `method` that passed the common checks."""
        self.handlers[method] = handler

    def on_event(self, event_type: type, handler: EventHandler) -> None:
        """A feature takes every endpoint event of `event_type` (responses, timeouts...)."""
        self.event_handlers[event_type] = handler

    # -- entry points --------------------------------------------------------------------
    def handle_event(self, event: object) -> None:
        """Called by the shell for every event the endpoint produces."""
        request = getattr(event, "request", None)
        if type(event).__name__ == "RequestReceived" and isinstance(request, Request):
            self.handle_request(
                RequestContext(request, getattr(event, "peer", None), _transaction_of(event))
            )
            return
        handler = self.event_handlers.get(type(event))
        if handler is not None:
            handler(event)
        else:
            self._count("events_unhandled." + type(event).__name__)

    def handle_request(self, ctx: RequestContext) -> None:
        screen = self.screen
        if screen is not None and not screen(ctx):
            self._count("screened")
            return
        request = ctx.request
        method = request.method
        requests = self.requests
        requests[method] = requests.get(method, 0) + 1
        if method == "ACK":
            handler = self.handlers.get("ACK")
            if handler is not None:
                handler(ctx)
            return  # an ACK is never answered
        if isinstance(request.uri, AbsoluteUri):
            self.reply(ctx, 416)
            return
        unsupported = [t for t in request.option_tags("require") if t not in self.supported]
        if unsupported and method != "CANCEL":
            self.reply(ctx, 420, headers=[("Unsupported", ", ".join(unsupported))])
            return
        max_forwards = request.max_forwards
        if max_forwards == 0 and method not in _TERMINATED_HERE:
            self.reply(ctx, 483)
            return
        handler = self.handlers.get(method)
        if handler is not None:
            handler(ctx)
            return
        if method == "OPTIONS":
            self.answer_options(ctx)
        elif method in KNOWN_METHODS:
            self.reply(ctx, 405, headers=[("Allow", self.allow_header())])
        else:
            self.reply(ctx, 501, headers=[("Allow", self.allow_header())])

    def answer_stateless(self, request: Request, peer: object) -> bytes | None:
        """The endpoint's stateless hook for an out-of-dialog OPTIONS: the same checks and
        counters as `handle_request` (screen, 416, 420; Max-Forwards 0 is no error for a
        request answered here), but the answer comes back as bytes and no transaction exists.
        None: a feature took OPTIONS, so it goes the stateful way; b"": screened (no answer)."""
        if "OPTIONS" in self.handlers:
            return None
        screen = self.screen
        if screen is not None and not screen(RequestContext(request, peer, None)):
            self._count("screened")
            return b""
        requests = self.requests
        requests["OPTIONS"] = requests.get("OPTIONS", 0) + 1
        if isinstance(request.uri, AbsoluteUri):
            return self._stateless_reply(request, 416, [])
        unsupported = [t for t in request.option_tags("require") if t not in self.supported]
        if unsupported:
            return self._stateless_reply(request, 420, [("Unsupported", ", ".join(unsupported))])
        counters = self.counters
        counters["responses.200"] = counters.get("responses.200", 0) + 1
        # The 200 of `answer_options`, byte for byte, written without a Response object (the
        # endpoint's check_request saw every one of these headers exactly once; Via may repeat).
        index = request.headers.index()
        vias = index["via"]
        call_id = index["call-id"][0][2]
        to = index["to"][0][2]
        if ";tag=" not in to.replace(" ", ""):
            to = f"{to};tag={_tag_of(call_id, vias[0][2])}"
        via = vias[0][2] if len(vias) == 1 else "\r\nVia: ".join([entry[2] for entry in vias])
        return (
            f"SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {index['from'][0][2]}\r\nTo: {to}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {index['cseq'][0][2]}\r\n{self._options_lines()}"
            "\r\n\r\n"
        ).encode("utf-8", "surrogateescape")

    def _options_lines(self) -> str:
        cached = self._options_tail
        if cached is not None:  # the common case: compare, build nothing (a ping is per second)
            (handlers, supported, user_agent), text = cached
            if (
                user_agent == self.user_agent
                and supported == self.supported
                and handlers == self.handlers.keys()
            ):
                return text
        allow = self.allow_header()
        key = (frozenset(self.handlers), frozenset(self.supported), self.user_agent)
        lines = [f"Allow: {allow}", f"Accept: {ACCEPT}"]
        if self.supported:
            lines.append(f"Supported: {', '.join(sorted(self.supported))}")
        lines.append(f"Server: {self.user_agent}")
        lines.append("Content-Length: 0")
        text = "\r\n".join(lines)
        self._options_tail = (key, text)
        return text

    def _stateless_reply(
        self, request: Request, status: int, headers: list[tuple[str, str]]
    ) -> bytes:
        """What `reply` + the endpoint would send, as bytes (the Server header included)."""
        self._count(f"responses.{status}")
        if self.user_agent:
            headers.append(("Server", self.user_agent))
        response = make_response(request, status, to_tag=_tag_for(request), headers=headers)
        return response.to_bytes()

    def answer_options(self, ctx: RequestContext) -> None:
        """§11.2: a 200 listing what we do; cheap because monitoring systems poll it."""
        headers = [("Allow", self.allow_header()), ("Accept", ACCEPT)]
        if self.supported:
            headers.append(("Supported", ", ".join(sorted(self.supported))))
        headers.append(("Server", self.user_agent))
        self.reply(ctx, 200, headers=headers)

    def reply(
        self,
        ctx: RequestContext,
        status: int,
        reason: str | None = None,
        *,
        headers: list[tuple[str, str]] | None = None,
        to_tag: str | None = None,
    ) -> Response:
        """Answer a request through its server transaction."""
        response = make_response(
            ctx.request,
            status,
            reason,
            to_tag=to_tag or _tag_for(ctx.request),
            headers=headers or [],
        )
        self._count(f"responses.{status}")
        self.port.send_response(response, ctx.transaction)
        return response

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1


def _transaction_of(event: object) -> object | None:
    return getattr(event, "transaction", None)


def _tag_for(request: Request) -> str:
    """A stable To-tag for locally generated final responses: retransmitted requests that reach
    us again (after the transaction ended) get the same tag. Derived from Call-ID and branch."""
    return _tag_of(request.call_id, request.headers.get("via") or "")


def _tag_of(call_id: str, top_via: str) -> str:
    seed = f"{call_id}|{top_via}".encode("utf-8", "surrogateescape")
    return hashlib.blake2s(seed, digest_size=6).hexdigest()
