"""The SIP endpoint: transport-facing façade of the transaction layer (RFC 3261 §17, §18).

An `Endpoint` is sans-IO, like aioquic's connection: the asyncio shell feeds it datagrams
(`receive(data, peer, now)`) and timer expiries (`handle_timer(now)`), then drains
`datagrams_to_send()` and `next_event()` and re-arms one timer handle at `get_timer()`. The TU
(the PBX) answers events with `send_response`, and starts requests with `send_request`.

What it does for each received message, in order:

1. one parse (`parse_message`); failure -> `MessageDiscarded`;
2. `check_request` / `check_response`; a bad request gets a stateless error response with the
   parser's status hint and reason (so the sender reads e.g. "Bad CSeq header: ...") when its
   Via, From, To, Call-ID and CSeq lines exist to copy; a bad response is dropped;
3. matching by one dict probe: requests by §17.2.3 (branch + sent-by + method, ACK as INVITE;
   without the magic cookie the RFC 2543 fields), responses by §17.1.3 (branch + CSeq
   method); live transactions first, then the compact store of completed ones;
4. for a new request: `received`/`rport` filled in the top Via (§18.2.1, RFC 3581), the
   response destination fixed once (§18.2.2), a server transaction created, `RequestReceived`
   queued, and for INVITE a 100 Trying sent at once.

The state machines and their timers are in `transaction.py`; the compact store and the heap
in `timers.py`. The endpoint keeps no reference to a transaction it no longer needs: completed
transactions that only absorb retransmissions become `(bytes | None, destination, connection)`
tuples in a wheel (see `transaction.py`, "COMPACT").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from .address import DEFAULT_PORTS, Address, Peer, TransportName
from .errors import LocalProtocolError, RemoteProtocolError
from .events import (
    AckReceived,
    ClientTransactionId,
    Event,
    MessageDiscarded,
    Outgoing,
    RequestReceived,
    ResponseReceived,
    ServerTransactionId,
    ServerTransactionTimedOut,
    TransactionTimedOut,
    TransportError,
)
from .headers import Headers, Via
from .ids import MAGIC_COOKIE, IdSource
from .message import Message, Request, Response, reason_phrase
from .parser import check_request, check_response, parse_message
from .timers import DeadlineHeap, Wheel
from .transaction import (
    Action,
    ClientTransaction,
    Input,
    Kind,
    ServerTransaction,
    State,
    TimerConfig,
    Transaction,
    classify_response,
)

__all__ = ["Endpoint", "EndpointStats", "Outgoing", "StatelessAnswer"]

# A completed transaction kept only to absorb retransmissions: what to send again (if
# anything) and where.
CompactEntry = tuple[bytes, Address, int | None] | None

# The TU's stateless answer to a request (see `Endpoint.answer_statelessly`).
StatelessAnswer = Callable[[Request, Peer], bytes | None]

_RESPONSE_COPY = ("from", "to", "call-id", "cseq")


class EndpointStats:
    """Counters for metrics (monotonic ints)."""

    __slots__ = (
        "absorbed",
        "discarded",
        "evicted",
        "overloaded",
        "received",
        "retransmissions",
        "sent",
        "stateless_answers",
        "stateless_responses",
        "timeouts",
        "wire",
    )

    def __init__(self) -> None:
        self.received = 0  # datagrams / frames given to receive()
        self.sent = 0  # Outgoing queued, retransmissions included
        self.retransmissions = 0  # requests, responses and ACKs sent again
        self.discarded = 0  # MessageDiscarded events
        self.absorbed = 0  # retransmissions swallowed by a transaction
        self.stateless_responses = 0  # error responses sent without a transaction
        self.stateless_answers = 0  # TU answers sent without a transaction (OPTIONS pings)
        self.overloaded = 0  # requests refused with 503 because of the transaction cap
        self.evicted = 0  # completed transactions dropped early: the compact store was full
        self.timeouts = 0  # client and server transaction timeouts
        # Messages on the wire by (direction, kind, method or status), e.g.
        # ("in", "request", "INVITE") or ("out", "response", "200"); retransmissions included.
        # Bounded: unknown methods count as "other", status codes are 100-699.
        self.wire: dict[tuple[str, str, str], int] = {}

    def as_dict(self) -> dict[str, int]:
        """The scalar counters by name (explicit: a compiled class has no `__slots__`)."""
        return {
            "absorbed": self.absorbed,
            "discarded": self.discarded,
            "evicted": self.evicted,
            "overloaded": self.overloaded,
            "received": self.received,
            "retransmissions": self.retransmissions,
            "sent": self.sent,
            "stateless_answers": self.stateless_answers,
            "stateless_responses": self.stateless_responses,
            "timeouts": self.timeouts,
        }

    def count_in(self, message: Request | Response) -> None:
        if isinstance(message, Request):
            method = message.method
            key = ("in", "request", method if method in _COUNTED_METHODS else "other")
        else:
            key = ("in", "response", str(message.status))
        wire = self.wire
        wire[key] = wire.get(key, 0) + 1

    def count_out(self, data: bytes) -> None:
        """From the start line of bytes we send (no parsing: a slice and a set look-up)."""
        if data[:8] == b"SIP/2.0 ":
            key = ("out", "response", data[8:11].decode("ascii", "replace"))
        else:
            method = data[: data.find(b" ", 0, 24)].decode("ascii", "replace")
            key = ("out", "request", method if method in _COUNTED_METHODS else "other")
        wire = self.wire
        wire[key] = wire.get(key, 0) + 1


_COUNTED_METHODS = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO",
        "MESSAGE", "REFER", "NOTIFY", "SUBSCRIBE", "PUBLISH",
    }
)  # fmt: skip


class Endpoint:
    """Transaction layer + transport-facing message handling, without I/O."""

    __slots__ = (
        "_by_destination",
        "_client_store",
        "_clients",
        "_config",
        "_events",
        "_force_rport",
        "_guards",
        "_heap",
        "_id_source",
        "_local_address",
        "_max_compact",
        "_max_headers",
        "_max_message_size",
        "_max_transactions",
        "_outgoing",
        "_retry_after",
        "_send_100",
        "_server_store",
        "_servers",
        "_stateless",
        "_stateless_methods",
        "_user_agent",
        "stats",
    )

    def __init__(
        self,
        *,
        id_source: IdSource,
        local_address: Callable[[Address], Address],
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        max_message_size: int = 65536,
        max_headers: int = 256,
        user_agent: str | None = None,
        send_100_trying: bool = True,
        max_transactions: int = 100_000,
        max_compact: int | None = None,
        retry_after: int = 5,
        timer_c: float = 180.0,
        timer_d: float = 32.0,
        wheel_resolution: float = 0.125,
        force_rport: bool = True,
    ) -> None:
        """`force_rport` (the default, like Asterisk's and Kamailio's `force_rport()`) treats
        every UDP request as if its Via had `rport`, so responses go back to the source port
        even for clients behind NAT that do not implement RFC 3581. Set it to False for the
        letter of §18.2.2 (received + sent-by port).

        `max_transactions` caps the live server transactions (beyond it a new request gets 503
        with Retry-After). Completed transactions kept only to absorb retransmissions (Timer
        J/I/K, the compact key -> last response entries) are bounded apart by `max_compact`
        (default: `max_transactions`): when that store is full the entry closest to its expiry
        is dropped instead of refusing new requests, so a registration storm faster than
        `max_compact / 32 s` keeps being served; only a retransmission arriving after its entry
        was dropped is handled again as a new request."""
        self._id_source = id_source
        self._local_address = local_address
        self._config = TimerConfig(t1, t2, t4, timer_c=timer_c, timer_d=timer_d)
        self._max_message_size = max_message_size
        self._max_headers = max_headers
        self._user_agent = user_agent
        self._send_100 = send_100_trying
        self._max_transactions = max_transactions
        self._max_compact = max_transactions if max_compact is None else max_compact
        self._retry_after = retry_after
        self._force_rport = force_rport
        self._clients: dict[str, ClientTransaction] = {}
        self._servers: dict[str, ServerTransaction] = {}
        self._by_destination: dict[Address, set[str]] = {}
        self._client_store: Wheel[str, CompactEntry] = Wheel(wheel_resolution)
        self._server_store: Wheel[str, CompactEntry] = Wheel(wheel_resolution)
        self._guards: Wheel[str, ServerTransaction] = Wheel(wheel_resolution)
        self._heap: DeadlineHeap[Transaction] = DeadlineHeap()
        self._events: deque[Event] = deque()
        self._outgoing: list[Outgoing] = []
        self._stateless_methods: frozenset[str] = frozenset()
        self._stateless: StatelessAnswer | None = None
        self.stats = EndpointStats()

    def answer_statelessly(self, methods: Iterable[str], answer: StatelessAnswer | None) -> None:
        """Let the TU answer out-of-dialog requests of `methods` without a server transaction.

        For such a request (no To tag) that passed `check_request`, with `received`/`rport`
        already filled in its top Via, the endpoint calls ``answer(request, peer)`` at once
        instead of creating a transaction and queueing `RequestReceived`:

        * bytes -> a complete response, sent to the §18.2.2 destination of the top Via
          (counted in `stats.stateless_answers`);
        * ``b""`` -> nothing is sent (the TU dropped the request on purpose);
        * None -> the request goes the normal way (transaction + `RequestReceived`).

        A retransmission finds no transaction and is simply answered again, which is right for
        a stateless answer (§8.2.7, §17.2: OPTIONS out of dialog, e.g. keep-alive pings). The
        callback must not call back into the endpoint. ``answer=None`` switches this off.
        """
        self._stateless_methods = frozenset(methods) if answer is not None else frozenset()
        self._stateless = answer

    # == outputs ===================================================================================
    def next_event(self) -> Event | None:
        """The oldest pending event, or None."""
        events = self._events
        return events.popleft() if events else None

    def datagrams_to_send(self) -> list[Outgoing]:
        """Everything queued for the transport since the last call (drains the queue)."""
        out = self._outgoing
        self._outgoing = []
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline: call `handle_timer` then (one timer handle is enough)."""
        best: float | None = None
        for deadline in (
            self._heap.next_deadline(),
            self._server_store.next_deadline(),
            self._client_store.next_deadline(),
            self._guards.next_deadline(),
        ):
            if deadline is not None and (best is None or deadline < best):
                best = deadline
        return best

    @property
    def transactions_live(self) -> int:
        """Transactions not yet terminated, compact ones included."""
        return (
            len(self._clients)
            + len(self._servers)
            + len(self._client_store)
            + len(self._server_store)
        )

    @property
    def transactions_compact(self) -> int:
        return len(self._client_store) + len(self._server_store)

    # == input: messages ===========================================================================
    def receive(self, data: bytes, peer: Peer, now: float) -> None:
        """One datagram (or one framed message from a stream) from `peer`."""
        self.stats.received += 1
        try:
            message = parse_message(
                data,
                stream=peer.remote.is_stream,
                max_size=self._max_message_size,
                max_headers=self._max_headers,
            )
        except RemoteProtocolError as exc:
            if isinstance(exc.partial, Request):
                # The start line was refused (e.g. SIP/7.0 -> 505) but the headers may be good
                # enough to answer statelessly (RFC 4475 §3.1.2.16).
                self._reject(exc.partial, peer, exc)
            else:
                self._discard(peer, exc.reason, exc.status_hint)
            return
        self.stats.count_in(message)  # type: ignore[arg-type]
        try:
            if isinstance(message, Request):
                self._receive_request(message, peer, now)
            elif isinstance(message, Response):
                self._receive_response(message, peer, now)
        except RemoteProtocolError as exc:  # defensive: checks passed, so this is unexpected
            self._discard(peer, exc.reason, exc.status_hint)

    def _receive_request(self, request: Request, peer: Peer, now: float) -> None:
        method = request.method
        is_ack = method == "ACK"
        # Fast path for retransmissions (the bulk of traffic under loss or attack): with an
        # RFC 3261 branch the key needs only the top Via, so a known transaction is found
        # before the full check_request() of every mandatory header.
        try:
            via: Via | None = request.top_via
            call_id = request.headers.get("call-id")
        except RemoteProtocolError:
            via = call_id = None
        fast_key: str | None = None
        if via is not None and call_id is not None and _has_cookie(via):
            fast_key = _key_3261(via, "INVITE" if is_ack else method, call_id.strip())
            if self._match_request(fast_key, request, is_ack, now, checked=False):
                return
        try:
            check_request(request)
        except RemoteProtocolError as exc:
            self._reject(request, peer, exc)
            return
        via = request.top_via
        if not _has_cookie(via):
            key = _server_key(request, via, "INVITE" if is_ack else method)
            if self._match_request(key, request, is_ack, now, checked=True):
                return
        else:
            # The same top Via and Call-ID as the fast path's (parsed once, cached): same key.
            key = fast_key or _key_3261(via, "INVITE" if is_ack else method, request.call_id)
            if is_ack and self._match_request(key, request, is_ack, now, checked=True):
                return  # an ACK the Accepted state passes up (RFC 6026)
        invite_key = _server_key(request, via, "INVITE") if method == "CANCEL" else None
        via = _fix_via(request, via, peer, self._force_rport)
        if is_ack:
            self._events.append(AckReceived(request, peer))
            return
        if method in self._stateless_methods and request.to.tag is None:
            answer = self._stateless
            assert answer is not None
            data = answer(request, peer)
            if data is not None:
                if data:
                    destination, connection_id = _response_destination(via, peer)
                    self.stats.stateless_answers += 1
                    self._send(data, destination, connection_id)
                return
        if len(self._servers) >= self._max_transactions:
            self.stats.overloaded += 1
            self._respond_stateless(
                request, peer, 503, "Service Unavailable", (f"Retry-After: {self._retry_after}",)
            )
            return
        destination, connection_id = _response_destination(via, peer)
        tx = ServerTransaction(key, request, peer, destination, connection_id, self._config)
        actions = tx.start(now)
        self._servers[key] = tx
        if Action.START_NO_ANSWER_GUARD in actions:
            self._guards.add(key, tx, now + self._config.timeout)
        cancelled: ServerTransactionId | None = None
        if invite_key is not None and (
            invite_key in self._servers or invite_key in self._server_store
        ):
            cancelled = ServerTransactionId(invite_key)
        self._events.append(RequestReceived(request, peer, ServerTransactionId(key), cancelled))
        if method == "INVITE" and self._send_100:
            trying = self._build_response(request, 100, "Trying")
            if trying is not None:
                tx.last_response = trying
                self._send(trying, destination, connection_id)

    def _match_request(
        self, key: str, request: Request, is_ack: bool, now: float, *, checked: bool
    ) -> bool:
        """Feed `request` to the transaction `key` names, live or compact; False if none."""
        tx = self._servers.get(key)
        if tx is not None:
            if is_ack and not checked and tx.state is State.ACCEPTED:
                return False  # this ACK goes to the TU: check it first
            self._server_input(tx, Input.ACK if is_ack else Input.REQUEST, now, ack=request)
            return True
        found, entry = self._server_store.lookup(key)
        if not found:
            return False
        # Completed non-INVITE (J): send the final response again; Confirmed INVITE (I):
        # absorb. An ACK never gets a response.
        if entry is not None and not is_ack:
            self._resend(entry)
        else:
            self.stats.absorbed += 1
        return True

    def _receive_response(self, response: Response, peer: Peer, now: float) -> None:
        try:
            key = f"{response.top_via.branch or ''} {response.cseq.method}"
        except RemoteProtocolError as exc:
            self._discard(peer, f"bad response: {exc.reason}", None)
            return
        found, entry = self._client_store.lookup(key)
        if found:
            # Completed INVITE (D): a final response again gets the ACK again; Completed
            # non-INVITE (K): absorb. Nothing reaches the TU, so no full check is needed.
            if entry is not None and response.status >= 300:
                self._resend(entry)
            else:
                self.stats.absorbed += 1
            return
        try:
            check_response(response)
        except RemoteProtocolError as exc:
            self._discard(peer, f"bad response: {exc.reason}", None)
            return
        method = response.cseq.method
        tx = self._clients.get(key)
        if tx is not None:
            self._client_input(
                tx, classify_response(response.status), now, response=response, peer=peer
            )
            return
        if method == "INVITE" and 200 <= response.status < 300:
            # A 2xx retransmission after the transaction ended: the TU must ACK it (§13.2.2.4).
            self._events.append(ResponseReceived(response, None, peer))
            return
        self._discard(peer, "response matches no transaction", None)

    # == input: timers =============================================================================
    def handle_timer(self, now: float) -> None:
        """Fire every timer due at `now` (call at or after `get_timer()`)."""
        heap = self._heap
        while True:
            tx = heap.pop_due(now)
            if tx is None:
                break
            due = tx.due(now)
            while due is not None:
                if isinstance(tx, ClientTransaction):
                    self._client_input(tx, due, now)
                elif isinstance(tx, ServerTransaction):
                    self._server_input(tx, due, now)
                if not self._is_live(tx):
                    break  # terminated or compacted
                due = tx.due(now)
            if tx.scheduled is None and self._is_live(tx):
                heap.schedule(tx, tx.next_deadline)
        self._server_store.expire(now)
        self._client_store.expire(now)
        for key, server in self._guards.expire(now):
            if self._servers.get(key) is server:
                self._server_input(server, Input.TIMER_TIMEOUT, now)

    def _is_live(self, tx: Transaction) -> bool:
        table: dict[str, ClientTransaction] | dict[str, ServerTransaction] = (
            self._clients if isinstance(tx, ClientTransaction) else self._servers
        )
        return table.get(tx.id) is tx

    # == TU commands ===============================================================================
    def send_request(
        self,
        request: Request,
        destination: Address,
        now: float,
        *,
        connection_id: int | None = None,
    ) -> ClientTransactionId:
        """Start a client transaction (§17.1) for `request`, sent to `destination`.

        Pushes our Via (`branch=z9hG4bK...;rport`, sent-by from `local_address(destination)`),
        adds Max-Forwards: 70 and User-Agent when missing; Content-Length is always set.
        A request object is sent once: build a new one (new CSeq) to send again.
        """
        method = request.method
        if method == "ACK":
            raise LocalProtocolError("an ACK has no transaction: use send_ack_2xx()")
        if method == "CANCEL":
            raise LocalProtocolError("use send_cancel(), which follows §9.1")
        branch = MAGIC_COOKIE + self._id_source()
        key = f"{branch} {method}"
        if key in self._clients:
            raise LocalProtocolError("id_source returned an id already in use")
        via = self._via(destination, branch)
        request.headers.add_first("Via", via)
        self._complete_request(request)
        tx = ClientTransaction(
            key, request, request.to_bytes(), via, destination, connection_id, self._config
        )
        self._start_client(tx, now)
        return ClientTransactionId(key)

    def send_cancel(
        self, transaction: ClientTransactionId, now: float, reason: str | None = None
    ) -> ClientTransactionId | None:
        """CANCEL the INVITE of client transaction `transaction` (§9.1).

        The CANCEL copies the INVITE's Request-URI, top Via (same branch), Call-ID, From, To,
        CSeq number and Route headers; `reason` is a Reason header value (RFC 3326). If no
        provisional response has arrived yet it is held and sent with the first one, and
        dropped if a final response comes first. Once sent, the INVITE transaction gives up
        64*T1 later if still without a final response. Returns the CANCEL's transaction id,
        or None when there is nothing to cancel (unknown id, or a final response was received).
        """
        invite = self._clients.get(transaction)
        if invite is None or invite.kind is not Kind.INVITE_CLIENT:
            return None
        if invite.state not in (State.CALLING, State.PROCEEDING):
            return None
        key = f"{transaction.split(' ', 1)[0]} CANCEL"
        if invite.cancel is not None or key in self._clients or key in self._client_store:
            return ClientTransactionId(key)
        original = invite.request.headers
        headers = Headers()
        headers.add("Via", invite.via)
        for route in original.get_all("route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            value = original.get(name)
            if value is not None:
                headers.add(name, value)
        headers.add("CSeq", f"{invite.request.cseq.seq} CANCEL")
        if reason:
            headers.add("Reason", reason)
        if self._user_agent:
            headers.add("User-Agent", self._user_agent)
        cancel = Request("CANCEL", invite.request.uri_text, headers)
        if invite.state is State.CALLING:
            invite.cancel = cancel
        else:
            self._send_cancel(invite, cancel, now)
        return ClientTransactionId(key)

    def send_ack_2xx(
        self, ack: Request, destination: Address, *, connection_id: int | None = None
    ) -> None:
        """Send the ACK for a 2xx, which is outside any transaction (§13.2.2.4, §17.1.1.3).

        Adds a Via with a new branch if the ACK has none, so calling this again with the same
        object (for a retransmitted 2xx) sends an identical ACK.
        """
        if ack.method != "ACK":
            raise LocalProtocolError("send_ack_2xx() sends ACKs only")
        headers = ack.headers
        if "via" not in headers:
            headers.add_first("Via", self._via(destination, MAGIC_COOKIE + self._id_source()))
        self._complete_request(ack)
        self._send(ack.to_bytes(), destination, connection_id)

    def send_response(
        self,
        response: Response,
        now: float,
        transaction: ServerTransactionId | None = None,
    ) -> None:
        """Send the TU's response through its server transaction.

        The transaction is `transaction` if given (do give it: it saves parsing the Via, and it
        is the only way to reach a transaction of an RFC 2543 peer); otherwise it is found by
        the response's top Via branch + sent-by and CSeq method. A response for which no
        transaction exists any more (a 2xx retransmitted by the UAS core after Timer L, or an
        answer after the guard timer) is sent statelessly to the address its Via names
        (§18.2.2). A response the transaction's state does not allow (a second final response)
        is a `LocalProtocolError`.
        """
        if transaction is None:
            via = response.top_via
            transaction = ServerTransactionId(
                _key_3261(via, response.cseq.method, response.call_id) if _has_cookie(via) else ""
            )
        if self._user_agent and "server" not in response.headers:
            response.headers.add("Server", self._user_agent)
        tx = self._servers.get(transaction)
        if tx is None:
            if transaction in self._server_store:
                raise LocalProtocolError(
                    f"transaction already completed, cannot send {response.status}"
                )
            destination, connection_id = _route_by_via(response.top_via)
            self.stats.stateless_responses += 1
            self._send(response.to_bytes(), destination, connection_id)
            return
        status = response.status
        event = Input.TU_1XX if status < 200 else Input.TU_2XX if status < 300 else Input.TU_FINAL
        state = tx.state
        data = response.to_bytes()
        actions = tx.handle(event, now)
        if actions is None:
            raise LocalProtocolError(f"cannot send a {status} response in state {state}")
        tx.last_response = data
        self._server_actions(tx, actions, now, data=data)

    def send_stateless(
        self,
        message: Message | bytes,
        destination: Address,
        connection_id: int | None = None,
    ) -> None:
        """Send bytes or a message outside any transaction (keep-alives, proxied messages)."""
        data = message if isinstance(message, bytes) else message.to_bytes()
        self._send(data, destination, connection_id)

    def transport_failed(self, destination: Address, data: bytes | None, now: float) -> None:
        """The transport could not send `data` to `destination` (§17.1.4, §17.2.4).

        With the failed bytes, the one transaction that sent them fails; without them (a
        connection that could not be opened), every client transaction to `destination` fails.
        Each failure is a `TransportError` event (the TU treats it as a 503, §8.1.3.1).
        """
        message: Message | None = None
        if data is not None:
            try:
                message = parse_message(data, stream=False, max_size=len(data) + 1)
                if isinstance(message, Request):
                    key = f"{message.top_via.branch or ''} {message.method}"
                    client = self._clients.get(key)
                    if client is not None:
                        self._client_input(client, Input.TRANSPORT_ERROR, now)
                    return
                if isinstance(message, Response):
                    via = message.top_via
                    if _has_cookie(via):
                        key = _key_3261(via, message.cseq.method, message.call_id)
                        server = self._servers.get(key)
                        if server is not None:
                            self._server_input(server, Input.TRANSPORT_ERROR, now)
                    return
            except RemoteProtocolError:
                pass
        for key in list(self._by_destination.get(destination, ())):
            client = self._clients.get(key)
            if client is not None:
                self._client_input(client, Input.TRANSPORT_ERROR, now)

    # == client transactions =======================================================================
    def _start_client(self, tx: ClientTransaction, now: float) -> None:
        tx.start(now)
        key = tx.id
        self._clients[key] = tx
        keys = self._by_destination.get(tx.destination)
        if keys is None:
            keys = self._by_destination[tx.destination] = set()
        keys.add(key)
        self._send(tx.data, tx.destination, tx.connection_id)
        self._heap.schedule(tx, tx.next_deadline)

    def _send_cancel(self, invite: ClientTransaction, cancel: Request, now: float) -> None:
        key = f"{invite.id.split(' ', 1)[0]} CANCEL"
        tx = ClientTransaction(
            key,
            cancel,
            cancel.to_bytes(),
            invite.via,
            invite.destination,
            invite.connection_id,
            self._config,
        )
        self._start_client(tx, now)
        # §9.1: without a final response 64*T1 after the CANCEL, give the INVITE up.
        deadline = now + self._config.timeout
        if invite.end_at is None or invite.end_at > deadline:
            invite.end_at = deadline
            invite.end_input = Input.TIMER_TIMEOUT
            self._heap.schedule(invite, invite.next_deadline)

    def _client_input(
        self,
        tx: ClientTransaction,
        event: Input,
        now: float,
        *,
        response: Response | None = None,
        peer: Peer | None = None,
    ) -> None:
        actions = tx.handle(event, now)
        if actions is None:
            self.stats.absorbed += 1
            self._heap.schedule(tx, tx.next_deadline)
            return
        ack: bytes | None = None
        for action in actions:
            if action is Action.PASS_RESPONSE:
                assert response is not None and peer is not None
                self._events.append(ResponseReceived(response, ClientTransactionId(tx.id), peer))
            elif action is Action.RETRANSMIT:
                self.stats.retransmissions += 1
                self._send(tx.data, tx.destination, tx.connection_id)
            elif action is Action.SEND_ACK:
                assert response is not None
                ack = _build_ack(tx, response)
                self._send(ack, tx.destination, tx.connection_id)
            elif action is Action.RELEASE_CANCEL:
                cancel = tx.cancel
                if cancel is not None:
                    tx.cancel = None
                    self._send_cancel(tx, cancel, now)
            elif action is Action.DROP_CANCEL:
                tx.cancel = None
            elif action is Action.REPORT_TIMEOUT:
                self.stats.timeouts += 1
                self._events.append(TransactionTimedOut(ClientTransactionId(tx.id), tx.request))
            elif action is Action.REPORT_TRANSPORT_ERROR:
                self._events.append(TransportError(ClientTransactionId(tx.id), tx.request))
            elif action is Action.COMPACT:
                entry: CompactEntry = None
                if ack is not None:
                    entry = (ack, tx.destination, tx.connection_id)
                self._forget_client(tx)
                if tx.end_at is not None and tx.end_at > now:
                    self._keep_compact(self._client_store, tx.id, entry, tx.end_at)
                return
        if tx.state is State.TERMINATED:
            self._forget_client(tx)
        else:
            self._heap.schedule(tx, tx.next_deadline)

    def _forget_client(self, tx: ClientTransaction) -> None:
        self._heap.schedule(tx, None)
        if self._clients.get(tx.id) is tx:
            del self._clients[tx.id]
        keys = self._by_destination.get(tx.destination)
        if keys is not None:
            keys.discard(tx.id)
            if not keys:
                del self._by_destination[tx.destination]

    # == server transactions =======================================================================
    def _server_input(
        self,
        tx: ServerTransaction,
        event: Input,
        now: float,
        *,
        ack: Request | None = None,
    ) -> None:
        actions = tx.handle(event, now)
        if actions is None:
            self.stats.absorbed += 1
            self._heap.schedule(tx, tx.next_deadline)
            return
        self._server_actions(tx, actions, now, ack=ack)

    def _server_actions(
        self,
        tx: ServerTransaction,
        actions: tuple[Action, ...],
        now: float,
        *,
        data: bytes | None = None,
        ack: Request | None = None,
    ) -> None:
        for action in actions:
            if action is Action.SEND_RESPONSE:
                assert data is not None
                self._send(data, tx.destination, tx.connection_id)
            elif action is Action.RESEND_RESPONSE:
                if tx.last_response is not None:
                    self.stats.retransmissions += 1
                    self._send(tx.last_response, tx.destination, tx.connection_id)
                else:
                    self.stats.absorbed += 1
            elif action is Action.PASS_ACK:
                assert ack is not None
                self._events.append(AckReceived(ack, tx.peer))
            elif action is Action.REPORT_NO_ACK:
                self.stats.timeouts += 1
                self._events.append(
                    ServerTransactionTimedOut(ServerTransactionId(tx.id), tx.request, "H")
                )
            elif action is Action.REPORT_NO_ANSWER:
                self.stats.timeouts += 1
                self._events.append(
                    ServerTransactionTimedOut(ServerTransactionId(tx.id), tx.request, "guard")
                )
            elif action is Action.REPORT_TRANSPORT_ERROR:
                self._events.append(
                    TransportError(ServerTransactionId(tx.id), tx.request, server=True)
                )
            elif action is Action.COMPACT:
                entry: CompactEntry = None
                if tx.kind is Kind.NON_INVITE_SERVER and tx.last_response is not None:
                    entry = (tx.last_response, tx.destination, tx.connection_id)
                self._forget_server(tx)
                if tx.end_at is not None and tx.end_at > now:
                    self._keep_compact(self._server_store, tx.id, entry, tx.end_at)
                return
        if tx.state is State.TERMINATED:
            self._forget_server(tx)
        else:
            self._heap.schedule(tx, tx.next_deadline)

    def _keep_compact(
        self, store: Wheel[str, CompactEntry], key: str, entry: CompactEntry, until: float
    ) -> None:
        """Keep a completed transaction's entry until `until` (Timer J/K), within the
        `max_compact` bound: when full, the entry closest to expiry makes room."""
        if len(store) >= self._max_compact and store.evict_oldest() is not None:
            self.stats.evicted += 1
        store.add(key, entry, until)

    def _forget_server(self, tx: ServerTransaction) -> None:
        self._heap.schedule(tx, None)
        if self._servers.get(tx.id) is tx:
            del self._servers[tx.id]
        if tx.kind is Kind.NON_INVITE_SERVER:
            self._guards.discard(tx.id)

    # == building and sending ======================================================================
    def _send(self, data: bytes, destination: Address, connection_id: int | None) -> None:
        stats = self.stats
        stats.sent += 1
        stats.count_out(data)
        self._outgoing.append(Outgoing(data, destination, connection_id))

    def _resend(self, entry: tuple[bytes, Address, int | None]) -> None:
        stats = self.stats
        stats.retransmissions += 1
        stats.sent += 1
        stats.count_out(entry[0])
        self._outgoing.append(Outgoing(*entry))

    def _discard(self, peer: Peer | None, reason: str, status_hint: int | None) -> None:
        self.stats.discarded += 1
        self._events.append(MessageDiscarded(peer, reason, status_hint))

    def _via(self, destination: Address, branch: str) -> str:
        local = self._local_address(destination)
        return f"SIP/2.0/{destination.transport.upper()} {local.hostport()};branch={branch};rport"

    def _complete_request(self, request: Request) -> None:
        headers = request.headers
        if "max-forwards" not in headers:
            headers.add("Max-Forwards", "70")
        if self._user_agent and "user-agent" not in headers:
            headers.add("User-Agent", self._user_agent)

    def _reject(self, request: Request, peer: Peer, exc: RemoteProtocolError) -> None:
        """A request failed `check_request`: answer it statelessly if we can, and report it."""
        if request.method != "ACK":  # an ACK is never answered (§17)
            try:
                via = request.top_via
                request.headers.pop_first("via")
                via = _fix_via_value(via, peer, self._force_rport)
                request.headers.add_first("Via", str(via))
            except RemoteProtocolError:
                via = None
            self._respond_stateless(
                request, peer, exc.status_hint, _safe_reason(exc.reason), (), via
            )
        self._discard(peer, exc.reason, exc.status_hint)

    def _respond_stateless(
        self,
        request: Request,
        peer: Peer,
        status: int,
        reason: str,
        extra: Iterable[str],
        via: Via | None = None,
    ) -> None:
        to_tag: str | None = None
        try:
            if request.to.tag is None:
                to_tag = self._id_source()
        except RemoteProtocolError:
            pass
        try:
            data = self._build_response(request, status, reason, to_tag, extra)
        except RemoteProtocolError:
            data = None  # the header section itself is broken
        if data is None:
            return
        if peer.remote.is_stream or via is None:
            destination, connection_id = peer.remote, peer.connection_id
        else:
            destination, connection_id = _response_destination(via, peer)
        self.stats.stateless_responses += 1
        self._send(data, destination, connection_id)

    def _build_response(
        self,
        request: Request,
        status: int,
        reason: str,
        to_tag: str | None = None,
        extra: Iterable[str] = (),
    ) -> bytes | None:
        """A response made of the request's raw Via/From/To/Call-ID/CSeq lines (§8.2.6.2), or
        None without a Via to send it by. A missing From/To/Call-ID/CSeq is left out: RFC 4475
        §3.3.15 (insuf) asks for a 400 even then."""
        headers = request.headers
        vias = headers.get_all("via")
        if not vias:
            return None
        lines = [f"SIP/2.0 {status} {reason or reason_phrase(status)}"]
        lines.extend(f"Via: {v}" for v in vias)
        for key in _RESPONSE_COPY:
            value = headers.get(key)
            if value is None:
                continue
            if key == "to" and to_tag:
                value = f"{value};tag={to_tag}"
            lines.append(f"{_NAMES[key]}: {value}")
        lines.extend(extra)
        if self._user_agent:
            lines.append(f"Server: {self._user_agent}")
        lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


_NAMES = {"from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq"}


def _has_cookie(via: Via) -> bool:
    branch = via.branch
    return branch is not None and branch.startswith(MAGIC_COOKIE)


def _key_3261(via: Via, method: str, call_id: str) -> str:
    """§17.2.3: branch + sent-by + method (the ACK's method is INVITE's).

    The Call-ID is added: every request that legitimately matches (a retransmission, the ACK
    for a non-2xx, a CANCEL, §9.1, §17.1.1.3) has the same Call-ID, so this only separates
    requests from broken senders that reuse a branch for unrelated requests (constant branches
    exist in the wild, and the RFC 4475 torture messages share some)."""
    port = via.port
    return f"{via.branch} {via.host.lower()}:{'' if port is None else port} {method} {call_id}"


def _server_key(request: Request, via: Via, method: str) -> str:
    """The server transaction key of `request`, looked up as `method`'s transaction."""
    if _has_cookie(via):
        return _key_3261(via, method, request.call_id)
    # RFC 2543 (§17.2.3): Request-URI, To tag, From tag, Call-ID, CSeq, top Via. The To tag is
    # left out for INVITE (and its ACK and CANCEL look-ups): our response adds one.
    to_tag = "" if method == "INVITE" else (request.to.tag or "")
    return "\x00".join(
        (
            "2543",
            request.uri_text,
            to_tag,
            request.from_.tag or "",
            request.call_id,
            str(request.cseq.seq),
            method,
            str(via),
        )
    )


def _fix_via_value(via: Via, peer: Peer, force_rport: bool) -> Via:
    """§18.2.1 / RFC 3581: `received` when sent-by is not the source, `rport` filled (and
    added when `force_rport`, so the response goes back to the source port)."""
    params = via.params
    source = peer.remote.host
    needs_received = via.host_bare.lower() != source.lower()
    if force_rport and not peer.remote.is_stream:
        fill_rport = params.get("rport") != str(peer.remote.port)
    else:
        fill_rport = "rport" in params and not params["rport"]
    if not needs_received and "received" not in params and not fill_rport:
        return via
    new = dict(params)
    if needs_received:
        new["received"] = source
    else:
        new.pop("received", None)  # never trust a received= the client wrote itself
    if fill_rport:
        new["rport"] = str(peer.remote.port)
    return via.with_params(new)


def _fix_via(request: Request, via: Via, peer: Peer, force_rport: bool) -> Via:
    fixed = _fix_via_value(via, peer, force_rport)
    if fixed is not via:
        headers = request.headers
        vias = request.vias
        original = headers.first("via")
        text = _fixed_via_text(original, via, fixed) if original is not None else None
        headers.replace_first_element("via", text if text is not None else str(fixed))
        # The other elements are unchanged: keep them parsed.
        headers.typed["via"] = [fixed, *vias[1:]]
    return fixed


def _fixed_via_text(original: str, via: Via, fixed: Via) -> str | None:
    """The request's own Via text with `fixed`'s received/rport written in, for the two common
    cases (no rport, or a bare `;rport` at the end or between parameters; no received of the
    client's own); None otherwise (then `str(fixed)`). Cheaper than serializing the Via again,
    and the response echoes the Via as the client wrote it (a test checks it parses to
    `fixed`)."""
    old = via.params
    if "received" in old or "," in original or '"' in original:
        return None
    new = fixed.params
    rport = new.get("rport")
    if "rport" not in old:
        text = original
    elif old["rport"] is None and rport is not None:
        if original.endswith(";rport"):
            text = original + "=" + rport
            rport = None
        elif original.count(";rport;") == 1 and original.count(";rport") == 1:
            text = original.replace(";rport;", f";rport={rport};")
            rport = None
        else:
            return None
    else:
        return None
    received = new.get("received")
    if received is not None:
        text = f"{text};received={received}"
    if rport is not None:
        text = f"{text};rport={rport}"
    return text


def _via_port(via: Via, transport: str) -> int:
    rport = via.params.get("rport")
    if rport and rport.isascii() and rport.isdigit() and 0 < int(rport) < 65536:
        return int(rport)
    return via.port or DEFAULT_PORTS.get(transport, 5060)


def _response_destination(via: Via, peer: Peer) -> tuple[Address, int | None]:
    """§18.2.2: reliable -> the connection the request came on; else `received` (or sent-by
    host) and `rport` (or sent-by port, or the default port)."""
    remote = peer.remote
    if remote.is_stream:
        return remote, peer.connection_id
    host = via.received or via.host_bare
    port = _via_port(via, remote.transport)
    if host == remote.host and port == remote.port:
        return remote, None  # the usual case (rport): no new Address
    return Address(remote.transport, host, port), None


_TRANSPORTS: dict[str, TransportName] = {
    "udp": "udp",
    "tcp": "tcp",
    "tls": "tls",
    "ws": "ws",
    "wss": "wss",
}


def _route_by_via(via: Via) -> tuple[Address, int | None]:
    """§18.2.2 without a transaction: `received`/sent-by host, `rport`/sent-by port."""
    transport = _TRANSPORTS.get(via.transport.lower(), "udp")
    host = via.received or via.host_bare
    return Address(transport, host, _via_port(via, transport)), None


def _safe_reason(text: str) -> str:
    """A reason phrase cannot hold CR/LF or other controls; keep it short."""
    cleaned = "".join(c if c >= " " and c != "\x7f" else " " for c in text)
    return cleaned[:120].strip() or "Bad Request"


def _build_ack(tx: ClientTransaction, response: Response) -> bytes:
    """§17.1.1.3: the ACK for a non-2xx final response, in the INVITE's transaction."""
    original = tx.request.headers
    lines = [f"ACK {tx.request.uri_text} SIP/2.0", f"Via: {tx.via}"]
    lines.extend(f"Route: {route}" for route in original.get_all("route"))
    lines.append("Max-Forwards: 70")
    lines.append(f"From: {original.get('from')}")
    lines.append(f"To: {response.headers.get('to')}")
    lines.append(f"Call-ID: {original.get('call-id')}")
    lines.append(f"CSeq: {tx.request.cseq.seq} ACK")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
