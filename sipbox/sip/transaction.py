"""SIP transactions (RFC 3261 §17, amended by RFC 6026): four state machines as tables.

Theory of operation
===================

A transaction is a request and every response to it, up to the final one and a short while
after. RFC 3261 §17 defines four machines: INVITE client (Figure 5), non-INVITE client
(Figure 6), INVITE server (Figure 7) and non-INVITE server (Figure 8). RFC 6026 replaced the
"2xx terminates the INVITE transaction" rule by an Accepted state on both sides, so that 2xx
retransmissions and late INVITE retransmissions are absorbed or passed up instead of being
mistaken for new requests.

Each machine is written below as a dict keyed by `(state, input)` whose value is the next
state and a tuple of actions (`Transition`). A pair missing from a table means the input is
absorbed with no effect: that is how retransmissions are swallowed (a 1xx in Completed, an
INVITE in Accepted...) and it is the whole of the error handling, because a retransmission or
a late message is never an error in SIP. The tables are the specification; the code around
them only applies timer actions and hands the other actions to the endpoint (`endpoint.py`),
which owns the bytes, the events and the transport. This module does no I/O, reads no clock
(`now` is passed in) and raises nothing on peer input.

Inputs are the classified messages (`RESPONSE_1XX`, `RESPONSE_2XX`, `RESPONSE_FINAL` for
300-699; `REQUEST` for a retransmission of the request; `ACK`), the TU's responses (`TU_1XX`,
`TU_2XX`, `TU_FINAL`), the three timer kinds and `TRANSPORT_ERROR`.

Timers (Table 4 of RFC 3261 / RFC 6026 §8). Every transaction has at most two pending timers:

* a retransmission timer (`retransmit_at`, `interval`): A (INVITE client, doubles without a
  cap), E (non-INVITE client, doubles up to T2, then every T2 in Proceeding), G (INVITE
  server, doubles up to T2). They run only over unreliable transports (UDP): on a stream the
  transport retransmits, so `START_RETRANSMIT` is a no-op when `reliable` is set.
* an end timer (`end_at`, fed back as `end_input`): a timeout (B, F: 64*T1, the request got
  no final response; H: 64*T1, no ACK for our non-2xx final response; the INVITE guard, see
  below) or a linger timer (D, K, I, J, M, L) after which the transaction is forgotten. Linger
  durations are in `LINGER`: D is 32 s over UDP and 0 on a stream, K and I are T4 / 0, J is
  64*T1 / 0, M and L are 64*T1 on every transport.

`next_deadline` is the earlier of the two; the endpoint keeps one heap entry per live
transaction for it.

Completed transactions that only absorb retransmissions (INVITE client Completed: resend
the ACK; non-INVITE client Completed: swallow; INVITE server Confirmed: swallow; non-INVITE
server Completed: resend the final response) are not kept as objects: the `COMPACT` action
tells the endpoint to replace the transaction by a tuple `(bytes | None, destination,
connection)` in a bucketed timer wheel (`timers.Wheel`) until the linger timer expires. The
rows of the tables for those states document what that compact entry does.

Deviations and additions, each deliberate:

* RFC 3261 gives the INVITE client no timeout once a provisional response has arrived; the
  UAC core is expected to CANCEL. So that nothing lives forever, Proceeding starts a guard
  timer (`TimerConfig.timer_c`, 180 s by default, restarted by every provisional, like a
  proxy's Timer C, §16.6) and the endpoint shortens it to 64*T1 once a CANCEL is sent (§9.1:
  "the client SHOULD then consider the original transaction cancelled").
* A non-INVITE server transaction whose TU never answers is ended after 64*T1 (the client has
  given up by then, Timer F) with `ServerTransactionTimedOut(timer="guard")`. The endpoint runs
  that guard on its wheel, not on the heap, because non-INVITE requests are the high-rate case.
* The 100 Trying for INVITE is sent by the endpoint at once (a policy §17.2.1 allows), not
  after 200 ms.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from .address import Address, Peer
from .message import Request

__all__ = [
    "INITIAL",
    "LINGER",
    "TABLES",
    "Action",
    "ClientTransaction",
    "Input",
    "Kind",
    "ServerTransaction",
    "State",
    "TimerConfig",
    "Transaction",
    "Transition",
    "classify_response",
]


class Kind(StrEnum):
    INVITE_CLIENT = "invite-client"
    NON_INVITE_CLIENT = "non-invite-client"
    INVITE_SERVER = "invite-server"
    NON_INVITE_SERVER = "non-invite-server"


class State(StrEnum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Input(StrEnum):
    RESPONSE_1XX = "1xx"
    RESPONSE_2XX = "2xx"
    RESPONSE_FINAL = "300-699"
    REQUEST = "request retransmission"
    ACK = "ACK"
    TU_1XX = "1xx from TU"
    TU_2XX = "2xx from TU"
    TU_FINAL = "300-699 from TU"
    TIMER_RETRANSMIT = "retransmit timer (A/E/G)"
    TIMER_TIMEOUT = "timeout timer (B/F/H/guard)"
    TIMER_LINGER = "linger timer (D/K/I/J/M/L)"
    TRANSPORT_ERROR = "transport error"


class Action(StrEnum):
    # Timer bookkeeping, applied by the transaction itself.
    START_RETRANSMIT = "start A/E/G at T1 (unreliable only)"
    BACKOFF = "double A"
    BACKOFF_CAPPED = "double E/G, capped at T2"
    BACKOFF_T2 = "reset E to T2"
    STOP_RETRANSMIT = "stop A/E/G"
    START_TIMEOUT = "start B/F/H at 64*T1"
    START_GUARD = "start the INVITE guard (Timer C)"
    START_LINGER = "start D/K/I/J/M/L"
    # Work for the endpoint.
    RETRANSMIT = "send the request again"
    SEND_ACK = "send the ACK for a non-2xx final response"
    SEND_RESPONSE = "send the TU's response"
    RESEND_RESPONSE = "send the last response again"
    PASS_RESPONSE = "ResponseReceived to the TU"
    PASS_ACK = "AckReceived to the TU"
    REPORT_TIMEOUT = "TransactionTimedOut to the TU"
    REPORT_NO_ACK = "ServerTransactionTimedOut(H) to the TU"
    REPORT_NO_ANSWER = "ServerTransactionTimedOut(guard) to the TU"
    REPORT_TRANSPORT_ERROR = "TransportError to the TU"
    RELEASE_CANCEL = "send the CANCEL held until a provisional response"
    DROP_CANCEL = "drop the held CANCEL"
    START_NO_ANSWER_GUARD = "start the non-INVITE server guard (wheel)"
    COMPACT = "replace the transaction by a compact wheel entry"


_TIMER_ACTIONS = frozenset(
    {
        Action.START_RETRANSMIT,
        Action.BACKOFF,
        Action.BACKOFF_CAPPED,
        Action.BACKOFF_T2,
        Action.STOP_RETRANSMIT,
        Action.START_TIMEOUT,
        Action.START_GUARD,
        Action.START_LINGER,
    }
)


class Transition(NamedTuple):
    state: State
    timers: tuple[Action, ...]
    actions: tuple[Action, ...]


def _t(state: State, *actions: Action) -> Transition:
    return Transition(
        state,
        tuple(a for a in actions if a in _TIMER_ACTIONS),
        tuple(a for a in actions if a not in _TIMER_ACTIONS),
    )


S, I, A = State, Input, Action  # noqa: E741 - short names keep the tables readable

# -- INVITE client, RFC 3261 Figure 5 + RFC 6026 Figure 3 ----------------------------------------
INVITE_CLIENT: dict[tuple[State, Input], Transition] = {
    (S.CALLING, I.TIMER_RETRANSMIT): _t(S.CALLING, A.RETRANSMIT, A.BACKOFF),
    (S.CALLING, I.TIMER_TIMEOUT): _t(S.TERMINATED, A.REPORT_TIMEOUT),
    (S.CALLING, I.TRANSPORT_ERROR): _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    (S.CALLING, I.RESPONSE_1XX): _t(
        S.PROCEEDING, A.STOP_RETRANSMIT, A.START_GUARD, A.PASS_RESPONSE, A.RELEASE_CANCEL
    ),
    (S.CALLING, I.RESPONSE_2XX): _t(
        S.ACCEPTED, A.STOP_RETRANSMIT, A.START_LINGER, A.PASS_RESPONSE, A.DROP_CANCEL
    ),
    (S.CALLING, I.RESPONSE_FINAL): _t(
        S.COMPLETED,
        A.STOP_RETRANSMIT,
        A.START_LINGER,
        A.SEND_ACK,
        A.PASS_RESPONSE,
        A.DROP_CANCEL,
        A.COMPACT,
    ),
    (S.PROCEEDING, I.RESPONSE_1XX): _t(S.PROCEEDING, A.START_GUARD, A.PASS_RESPONSE),
    (S.PROCEEDING, I.RESPONSE_2XX): _t(S.ACCEPTED, A.START_LINGER, A.PASS_RESPONSE),
    (S.PROCEEDING, I.RESPONSE_FINAL): _t(
        S.COMPLETED, A.START_LINGER, A.SEND_ACK, A.PASS_RESPONSE, A.COMPACT
    ),
    (S.PROCEEDING, I.TIMER_TIMEOUT): _t(S.TERMINATED, A.REPORT_TIMEOUT),
    (S.PROCEEDING, I.TRANSPORT_ERROR): _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    # Completed (compact entry, Timer D): a retransmitted final response gets the ACK again.
    (S.COMPLETED, I.RESPONSE_FINAL): _t(S.COMPLETED, A.SEND_ACK),
    (S.COMPLETED, I.TIMER_LINGER): _t(S.TERMINATED),
    # Accepted (RFC 6026 §8.4, Timer M): every 2xx goes to the TU, which ACKs it.
    (S.ACCEPTED, I.RESPONSE_2XX): _t(S.ACCEPTED, A.PASS_RESPONSE),
    (S.ACCEPTED, I.TIMER_LINGER): _t(S.TERMINATED),
}

# -- non-INVITE client, RFC 3261 Figure 6 -------------------------------------------------------
NON_INVITE_CLIENT: dict[tuple[State, Input], Transition] = {
    (S.TRYING, I.TIMER_RETRANSMIT): _t(S.TRYING, A.RETRANSMIT, A.BACKOFF_CAPPED),
    (S.TRYING, I.TIMER_TIMEOUT): _t(S.TERMINATED, A.REPORT_TIMEOUT),
    (S.TRYING, I.TRANSPORT_ERROR): _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    (S.TRYING, I.RESPONSE_1XX): _t(S.PROCEEDING, A.PASS_RESPONSE),
    (S.TRYING, I.RESPONSE_2XX): _t(
        S.COMPLETED, A.STOP_RETRANSMIT, A.START_LINGER, A.PASS_RESPONSE, A.COMPACT
    ),
    (S.TRYING, I.RESPONSE_FINAL): _t(
        S.COMPLETED, A.STOP_RETRANSMIT, A.START_LINGER, A.PASS_RESPONSE, A.COMPACT
    ),
    (S.PROCEEDING, I.TIMER_RETRANSMIT): _t(S.PROCEEDING, A.RETRANSMIT, A.BACKOFF_T2),
    (S.PROCEEDING, I.TIMER_TIMEOUT): _t(S.TERMINATED, A.REPORT_TIMEOUT),
    (S.PROCEEDING, I.TRANSPORT_ERROR): _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    (S.PROCEEDING, I.RESPONSE_1XX): _t(S.PROCEEDING, A.PASS_RESPONSE),
    (S.PROCEEDING, I.RESPONSE_2XX): _t(
        S.COMPLETED, A.STOP_RETRANSMIT, A.START_LINGER, A.PASS_RESPONSE, A.COMPACT
    ),
    (S.PROCEEDING, I.RESPONSE_FINAL): _t(
        S.COMPLETED, A.STOP_RETRANSMIT, A.START_LINGER, A.PASS_RESPONSE, A.COMPACT
    ),
    # Completed (compact entry, Timer K): responses are absorbed.
    (S.COMPLETED, I.TIMER_LINGER): _t(S.TERMINATED),
}

# -- INVITE server, RFC 3261 Figure 7 + RFC 6026 Figure 5 ---------------------------------------
INVITE_SERVER: dict[tuple[State, Input], Transition] = {
    (S.PROCEEDING, I.REQUEST): _t(S.PROCEEDING, A.RESEND_RESPONSE),
    (S.PROCEEDING, I.TU_1XX): _t(S.PROCEEDING, A.SEND_RESPONSE),
    (S.PROCEEDING, I.TU_2XX): _t(S.ACCEPTED, A.START_LINGER, A.SEND_RESPONSE),
    (S.PROCEEDING, I.TU_FINAL): _t(
        S.COMPLETED, A.START_RETRANSMIT, A.START_TIMEOUT, A.SEND_RESPONSE
    ),
    (S.PROCEEDING, I.TRANSPORT_ERROR): _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    (S.COMPLETED, I.REQUEST): _t(S.COMPLETED, A.RESEND_RESPONSE),
    (S.COMPLETED, I.TIMER_RETRANSMIT): _t(S.COMPLETED, A.RESEND_RESPONSE, A.BACKOFF_CAPPED),
    (S.COMPLETED, I.TIMER_TIMEOUT): _t(S.TERMINATED, A.REPORT_NO_ACK),
    (S.COMPLETED, I.ACK): _t(S.CONFIRMED, A.STOP_RETRANSMIT, A.START_LINGER, A.COMPACT),
    (S.COMPLETED, I.TRANSPORT_ERROR): _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    # Confirmed (compact entry, Timer I): ACKs and INVITEs are absorbed.
    (S.CONFIRMED, I.TIMER_LINGER): _t(S.TERMINATED),
    # Accepted (RFC 6026 §7.1, Timer L): INVITE retransmissions absorbed, the TU's 2xx
    # retransmissions pass through, an ACK that matches goes to the TU.
    (S.ACCEPTED, I.TU_2XX): _t(S.ACCEPTED, A.SEND_RESPONSE),
    (S.ACCEPTED, I.ACK): _t(S.ACCEPTED, A.PASS_ACK),
    (S.ACCEPTED, I.TIMER_LINGER): _t(S.TERMINATED),
}

# -- non-INVITE server, RFC 3261 Figure 8 -------------------------------------------------------
NON_INVITE_SERVER: dict[tuple[State, Input], Transition] = {
    (S.TRYING, I.TU_1XX): _t(S.PROCEEDING, A.SEND_RESPONSE),
    (S.TRYING, I.TU_2XX): _t(S.COMPLETED, A.START_LINGER, A.SEND_RESPONSE, A.COMPACT),
    (S.TRYING, I.TU_FINAL): _t(S.COMPLETED, A.START_LINGER, A.SEND_RESPONSE, A.COMPACT),
    (S.TRYING, I.TIMER_TIMEOUT): _t(S.TERMINATED, A.REPORT_NO_ANSWER),
    (S.TRYING, I.TRANSPORT_ERROR): _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    (S.PROCEEDING, I.REQUEST): _t(S.PROCEEDING, A.RESEND_RESPONSE),
    (S.PROCEEDING, I.TU_1XX): _t(S.PROCEEDING, A.SEND_RESPONSE),
    (S.PROCEEDING, I.TU_2XX): _t(S.COMPLETED, A.START_LINGER, A.SEND_RESPONSE, A.COMPACT),
    (S.PROCEEDING, I.TU_FINAL): _t(S.COMPLETED, A.START_LINGER, A.SEND_RESPONSE, A.COMPACT),
    (S.PROCEEDING, I.TIMER_TIMEOUT): _t(S.TERMINATED, A.REPORT_NO_ANSWER),
    (S.PROCEEDING, I.TRANSPORT_ERROR): _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    # Completed (compact entry, Timer J): a retransmitted request gets the final response again.
    (S.COMPLETED, I.REQUEST): _t(S.COMPLETED, A.RESEND_RESPONSE),
    (S.COMPLETED, I.TIMER_LINGER): _t(S.TERMINATED),
}

TABLES: dict[Kind, dict[tuple[State, Input], Transition]] = {
    Kind.INVITE_CLIENT: INVITE_CLIENT,
    Kind.NON_INVITE_CLIENT: NON_INVITE_CLIENT,
    Kind.INVITE_SERVER: INVITE_SERVER,
    Kind.NON_INVITE_SERVER: NON_INVITE_SERVER,
}

# What each machine does when it is created (the endpoint sends the request / the 100 first).
INITIAL: dict[Kind, Transition] = {
    Kind.INVITE_CLIENT: _t(S.CALLING, A.START_RETRANSMIT, A.START_TIMEOUT),
    Kind.NON_INVITE_CLIENT: _t(S.TRYING, A.START_RETRANSMIT, A.START_TIMEOUT),
    Kind.INVITE_SERVER: _t(S.PROCEEDING),
    Kind.NON_INVITE_SERVER: _t(S.TRYING, A.START_NO_ANSWER_GUARD),
}

# Which linger timer START_LINGER starts, by machine and the state being entered.
LINGER: dict[tuple[Kind, State], str] = {
    (Kind.INVITE_CLIENT, S.COMPLETED): "D",
    (Kind.INVITE_CLIENT, S.ACCEPTED): "M",
    (Kind.NON_INVITE_CLIENT, S.COMPLETED): "K",
    (Kind.INVITE_SERVER, S.CONFIRMED): "I",
    (Kind.INVITE_SERVER, S.ACCEPTED): "L",
    (Kind.NON_INVITE_SERVER, S.COMPLETED): "J",
}

del S, I, A


class TimerConfig:
    """T1/T2/T4 (§17.1.1.1, Table 4) and the durations derived from them."""

    __slots__ = ("t1", "t2", "t4", "timeout", "timer_c", "timer_d")

    def __init__(
        self,
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        *,
        timer_c: float = 180.0,
        timer_d: float = 32.0,
    ) -> None:
        if not (0 < t1 <= t2) or t4 < 0:
            raise ValueError("timers must satisfy 0 < T1 <= T2 and T4 >= 0")
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.timeout = 64 * t1  # B, F, H, J, L, M
        self.timer_c = timer_c
        self.timer_d = timer_d

    def linger(self, timer: str, reliable: bool) -> float:
        """Duration of linger timer `timer` (§17 Table 4, RFC 6026 §8)."""
        if timer in ("M", "L"):
            return self.timeout
        if reliable:
            return 0.0
        if timer == "D":
            return self.timer_d
        if timer == "J":
            return self.timeout
        return self.t4  # K, I


def classify_response(status: int) -> Input:
    if status < 200:
        return Input.RESPONSE_1XX
    if status < 300:
        return Input.RESPONSE_2XX
    return Input.RESPONSE_FINAL


class Transaction:
    """State and timers common to the four machines. `id` is the matching key."""

    __slots__ = (
        "config",
        "connection_id",
        "destination",
        "end_at",
        "end_input",
        "id",
        "interval",
        "kind",
        "reliable",
        "request",
        "retransmit_at",
        "scheduled",
        "state",
        "table",
    )

    def __init__(
        self,
        id: str,
        kind: Kind,
        request: Request,
        destination: Address,
        connection_id: int | None,
        config: TimerConfig,
    ) -> None:
        self.id = id
        self.kind = kind
        self.request = request
        self.destination = destination
        self.connection_id = connection_id
        self.reliable = destination.is_stream
        self.config = config
        self.table = TABLES[kind]
        self.state = State.TERMINATED
        self.retransmit_at: float | None = None
        self.interval = config.t1
        self.end_at: float | None = None
        self.end_input = Input.TIMER_TIMEOUT
        self.scheduled: float | None = None  # owned by timers.DeadlineHeap

    def start(self, now: float) -> tuple[Action, ...]:
        """Enter the initial state; return the endpoint's actions."""
        transition = INITIAL[self.kind]
        self.state = transition.state
        self._apply_timers(transition.timers, now)
        return transition.actions

    def handle(self, event: Input, now: float) -> tuple[Action, ...] | None:
        """Feed one input. None means the table has no row: the input is absorbed."""
        transition = self.table.get((self.state, event))
        if transition is None:
            return None
        self.state = transition.state
        if transition.timers:
            self._apply_timers(transition.timers, now)
        if transition.state is State.TERMINATED:
            self.retransmit_at = self.end_at = None
        return transition.actions

    def due(self, now: float) -> Input | None:
        """Which timer input is due at `now` (the end timer wins a tie)."""
        end_at = self.end_at
        if end_at is not None and end_at <= now:
            self.end_at = None
            return self.end_input
        retransmit_at = self.retransmit_at
        if retransmit_at is not None and retransmit_at <= now:
            self.retransmit_at = None
            return Input.TIMER_RETRANSMIT
        return None

    @property
    def next_deadline(self) -> float | None:
        r, e = self.retransmit_at, self.end_at
        if r is None:
            return e
        if e is None or r < e:
            return r
        return e

    def _apply_timers(self, actions: tuple[Action, ...], now: float) -> None:
        config = self.config
        for action in actions:
            if action is Action.START_RETRANSMIT:
                if not self.reliable:
                    self.interval = config.t1
                    self.retransmit_at = now + config.t1
            elif action is Action.BACKOFF:
                self.interval *= 2
                self.retransmit_at = now + self.interval
            elif action is Action.BACKOFF_CAPPED:
                self.interval = min(self.interval * 2, config.t2)
                self.retransmit_at = now + self.interval
            elif action is Action.BACKOFF_T2:
                self.interval = config.t2
                self.retransmit_at = now + config.t2
            elif action is Action.STOP_RETRANSMIT:
                self.retransmit_at = None
            elif action is Action.START_TIMEOUT:
                self.end_at = now + config.timeout
                self.end_input = Input.TIMER_TIMEOUT
            elif action is Action.START_GUARD:
                self.end_at = now + config.timer_c
                self.end_input = Input.TIMER_TIMEOUT
            elif action is Action.START_LINGER:
                timer = LINGER[(self.kind, self.state)]
                self.retransmit_at = None
                self.end_at = now + config.linger(timer, self.reliable)
                self.end_input = Input.TIMER_LINGER


class ClientTransaction(Transaction):
    """A client transaction: the request's bytes for retransmission and what ACK/CANCEL need."""

    __slots__ = ("cancel", "data", "method", "via")

    def __init__(
        self,
        id: str,
        request: Request,
        data: bytes,
        via: str,
        destination: Address,
        connection_id: int | None,
        config: TimerConfig,
    ) -> None:
        kind = Kind.INVITE_CLIENT if request.method == "INVITE" else Kind.NON_INVITE_CLIENT
        super().__init__(id, kind, request, destination, connection_id, config)
        self.data = data
        self.method = request.method
        self.via = via  # our top Via value: CANCEL and the non-2xx ACK reuse it (§9.1, §17.1.1.3)
        self.cancel: Request | None = None  # CANCEL held until a provisional response (§9.1)


class ServerTransaction(Transaction):
    """A server transaction: where responses go and the last one sent (for retransmissions)."""

    __slots__ = ("last_response", "peer")

    def __init__(
        self,
        id: str,
        request: Request,
        peer: Peer,
        destination: Address,
        connection_id: int | None,
        config: TimerConfig,
    ) -> None:
        kind = Kind.INVITE_SERVER if request.method == "INVITE" else Kind.NON_INVITE_SERVER
        super().__init__(id, kind, request, destination, connection_id, config)
        self.peer = peer
        self.last_response: bytes | None = None
