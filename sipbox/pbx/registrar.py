"""The registrar (RFC 3261 §10.3, RFC 3581, RFC 5626 basics) with its write-behind store.

Theory of operation
-------------------
*Live state in memory.* Bindings live in ``number -> {contact key -> LiveBinding}``; a REGISTER
is answered from memory alone and never waits for the database (ARCHITECTURE.md, "Hot path").
Every change is queued for a background writer that flushes batches with
`Store.apply_binding_changes` every `flush_interval` (0.2 s) or sooner when the batch grows; a
later change to the same binding replaces the queued one, so a burst of refreshes costs one
row write each. On start `restore()` loads every unexpired binding back.

*Expiry* is a sweep, not a timer per binding: a heap of ``(expires_at, number, key)`` entries,
checked lazily (a refreshed binding leaves a stale heap entry that is skipped when popped).

*Processing a REGISTER* follows §10.3 in order: (1) the Request-URI must name our domain, an
alias or the address it arrived on — this is not an open registrar for foreign domains (403);
(2) Require is checked by the dispatcher; (3,4) authentication (`Authenticator`, 401; the
authenticated user must own the To address); (5) the To URI must be sip/sips (400, RFC 4475
§3.3.2 unksm2) and the AOR is ``sip:<number>@<domain>``; (6) ``Contact: *`` only alone and with
``Expires: 0``; each contact's expiry is its ``expires`` parameter, else the Expires header,
else the default; a non-zero expiry below the minimum is refused with 423 + Min-Expires, one
above the maximum is cut to it; (7) for a contact already bound with the same Call-ID, a CSeq
not higher than the stored one aborts the whole request (500, the binding update "MUST be
aborted"); changes apply all-or-nothing; (8) 200 lists every current binding with its
remaining expiry, and a Date header.

*Devices.* A contact carrying ``+sip.instance`` (RFC 5626 §4.1; with ``reg-id`` too when
present) replaces any other binding of the same instance, so a phone that reboots with a new
port or Call-ID keeps one binding. Beyond the user's ``max_contacts`` the least recently
refreshed binding is dropped (never lock a rebooted phone out).

Not yet: ``Path`` (RFC 3327) is stored if present but not used for routing; GRUU (RFC 5627).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from email.utils import formatdate

from sipbox.config import RegistrarSettings
from sipbox.sip.address import Address
from sipbox.sip.errors import RemoteProtocolError
from sipbox.sip.headers import Contact
from sipbox.sip.uri import SipUri
from sipbox.storage.interface import BindingKey, Store, User

from .auth import Authenticator
from .dispatcher import Dispatcher, RequestContext
from .location import LiveBinding, Target, binding_target, static_target
from .users import UserDirectory

log = logging.getLogger("sipbox.pbx.registrar")


def contact_key(uri: SipUri) -> str:
    """Identity of a contact for binding matching (§10.3 step 7 compares contact URIs with
    §19.1.4; scheme, user, host (case-insensitive), port and transport are what differ between
    real phones' contacts)."""
    key = f"{uri.scheme}:{uri.user_decoded() or ''}@{uri.host.lower()}:{uri.port or ''}"
    transport = uri.transport
    return key + ";" + transport if transport else key


def _unquote(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = value[1:-1]
    return value or None


class RegisterRejected(Exception):
    """An error answer for the REGISTER being processed (status, reason, extra headers)."""

    def __init__(
        self, status: int, reason: str | None = None, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []


class Registrar:
    """REGISTER handling plus the location service (see the module docstring)."""

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        auth: Authenticator,
        directory: UserDirectory,
        store: Store | None,
        settings: RegistrarSettings,
        domain: str,
        aliases: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        flush_interval: float = 0.2,
        flush_batch: int = 2000,
        sweep_interval: float = 1.0,
    ) -> None:
        self.dispatcher = dispatcher
        self.auth = auth
        self.directory = directory
        self.store = store
        self.settings = settings
        self.domain = domain
        self.domains = {d.lower().strip("[]") for d in (domain, *aliases) if d}
        self.clock = clock
        self.flush_interval = flush_interval
        self.flush_batch = flush_batch
        self.sweep_interval = sweep_interval
        # number -> its binding, or a dict of its bindings by contact key from the second one
        # (read and written through `_contacts`, a view with a dict's interface).
        self._aors: dict[str, LiveBinding | dict[str, LiveBinding]] = {}
        self._aors_dropped = 0  # how many times an AOR lost its last binding
        self._heap: list[tuple[float, str, str]] = []
        self._by_host: dict[str, int] = {}
        self._count = 0
        # Bindings to write (by identity, in queueing order), store keys to delete.
        self._pending_upserts: dict[LiveBinding, None] = {}
        self._pending_deletes: set[tuple[str, str]] = set()
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._date_cache: tuple[int, str] = (0, "")
        self.stats: dict[str, int] = {"flushed": 0, "flush_errors": 0, "expired": 0}

    # =========================================================== SIP: REGISTER (§10.3)
    def handle_register(self, ctx: RequestContext) -> None:
        """The dispatcher's REGISTER handler."""
        try:
            self._register(ctx)
        except RegisterRejected as exc:
            self.dispatcher.reply(ctx, exc.status, exc.reason, headers=exc.headers)
        except RemoteProtocolError as exc:
            self.dispatcher.reply(ctx, 400, _reason(str(exc)))

    def _register(self, ctx: RequestContext) -> None:
        request = ctx.request
        uri = request.uri
        # Step 1: our domain only.
        if not isinstance(uri, SipUri):
            raise RegisterRejected(416)
        if not self.is_our_domain(uri.host_bare, ctx):
            raise RegisterRejected(403, "Domain Not Served")
        # Step 5 (checked before authenticating: it reveals nothing): To is a sip/sips AOR.
        to = request.to
        if not isinstance(to.uri, SipUri):
            raise RegisterRejected(400, "To Must Be A SIP URI")
        # Steps 3-4: who is this, and may they register this AOR?
        result = self.auth.authenticate(ctx, proxy=False)
        if result.user is None:
            return
        user = result.user
        now = self.clock()
        changed = self._apply(ctx, user, now)
        self._reply_ok(ctx, user.number, now, changed)

    def is_our_domain(self, host: str, ctx: RequestContext | None = None) -> bool:
        """Our domain, an alias, or the address of the listener the request arrived on."""
        host = host.lower()
        if host in self.domains:
            return True
        local = getattr(ctx.peer, "local", None) if ctx is not None else None
        return local is not None and host == str(getattr(local, "host", "")).lower()

    def _apply(self, ctx: RequestContext, user: User, now: float) -> bool:
        """Steps 6-7: validate every contact, then apply all changes (or none)."""
        request = ctx.request
        contacts: list[Contact] = request.contacts
        if not contacts:
            return False  # a query: just list the bindings
        header_expires = request.expires
        call_id = request.call_id
        cseq = request.cseq.seq
        number = user.number
        # The AOR's bindings as they are now; a view that stays live, but reads as empty once
        # the AOR has lost every binding (as if it still held the container of the start).
        current = self._contacts(number) if number in self._aors else _NO_CONTACTS
        dropped = self._aors_dropped
        settings = self.settings

        if any(c.is_star for c in contacts):
            if len(contacts) != 1 or header_expires != 0:
                raise RegisterRejected(400, "Wildcard Contact Needs Expires 0 Alone")
            for binding in current.values():
                if binding.call_id == call_id and cseq <= binding.cseq:
                    raise RegisterRejected(500, "Out Of Order Request", [("Retry-After", "1")])
            for key in list(current):
                self._remove(number, key)
            return True

        plan: list[tuple[str, SipUri, Contact, int]] = []
        too_brief = False
        for contact in contacts:
            address = contact.address
            assert address is not None
            contact_uri = address.uri
            if not isinstance(contact_uri, SipUri):
                raise RegisterRejected(400, "Contact Must Be A SIP URI")
            expires = contact.expires
            if expires is None:
                expires = header_expires if header_expires is not None else None
            if expires is None:
                expires = settings.default_expires
            if expires != 0 and expires < settings.min_expires:
                too_brief = True
            expires = min(expires, settings.max_expires)
            key = contact_key(contact_uri)
            existing = current.get(key)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                raise RegisterRejected(500, "Out Of Order Request", [("Retry-After", "1")])
            plan.append((key, contact_uri, contact, expires))
        if too_brief:
            raise RegisterRejected(423, headers=[("Min-Expires", str(settings.min_expires))])

        peer = ctx.peer
        source: Address = peer.remote  # type: ignore[attr-defined]
        local: Address | None = getattr(peer, "local", None)
        connection_id: int | None = getattr(peer, "connection_id", None)
        user_agent = _shared(request.headers.get("user-agent"))
        paths = tuple(request.headers.values("path"))
        for key, contact_uri, contact, expires in plan:
            if expires == 0:
                if key in current and self._aors_dropped == dropped:
                    self._remove(number, key)
                continue
            params = contact.address.params if contact.address is not None else {}
            instance = _unquote(params.get("+sip.instance"))
            reg_id_text = params.get("reg-id")
            reg_id = int(reg_id_text) if reg_id_text and reg_id_text.isdigit() else None
            if instance is not None:
                for other_key, other in self._contacts(number).items():
                    if (
                        other_key != key
                        and other.instance_id == instance
                        and (reg_id is None or other.reg_id == reg_id)
                    ):
                        self._remove(number, other_key)
            q_text = params.get("q")
            try:
                q = float(q_text) if q_text else None
            except ValueError:
                q = None
            found = self._contacts(number).get(key)
            if found is None:
                text = str(contact_uri)
                if text == key:
                    key = text  # a plain contact: its key and its text can be one string
                binding = LiveBinding(
                    aor=self.aor(number),
                    user_number=number,
                    contact_uri=text,
                    uri=contact_uri,
                    call_id=call_id,
                    cseq=cseq,
                    expires_at=now + expires,
                    source=source,
                    local=local,
                    connection_id=connection_id,
                    instance_id=instance,
                    reg_id=reg_id,
                    user_agent=user_agent,
                    q=q,
                    path=paths,
                    updated_at=now,
                )
                self._insert(binding, key)
            else:
                binding = found
                if binding.source.host != source.host:
                    self._host_count(binding.source.host, -1)
                    self._host_count(source.host, +1)
                text = str(contact_uri)
                if text != binding.contact_uri:  # same contact, spelled differently
                    self._pending_deletes.add((binding.aor, binding.contact_uri))
                    binding.contact_uri = text
                # else the text it holds stays (for a plain contact, the same string as its key)
                key = binding.match_key  # the key it is held under (this one is an equal copy)
                binding.call_id = call_id
                binding.cseq = cseq
                binding.expires_at = now + expires
                binding.source = source
                binding.local = local
                binding.connection_id = connection_id
                binding.instance_id = instance
                binding.reg_id = reg_id
                binding.user_agent = user_agent
                binding.q = q
                binding.path = paths
                binding.updated_at = now
                heapq.heappush(self._heap, (binding.expires_at, number, key))
                self._queue_upsert(binding, key)
        limit = user.max_contacts
        bindings = self._contacts(number)
        if limit and bindings and len(bindings) > limit:
            ordered = sorted(bindings.items(), key=lambda item: item[1].updated_at)
            for key, _ in ordered[: len(bindings) - limit]:
                self._remove(number, key)
        return True

    def _reply_ok(self, ctx: RequestContext, number: str, now: float, changed: bool) -> None:
        headers: list[tuple[str, str]] = []
        outbound = False
        for binding in self._contacts(number).values():
            if binding.expires_at <= now:
                continue
            value = f"<{binding.contact_uri}>;expires={binding.expires_in(now)}"
            if binding.instance_id is not None:
                value += f';+sip.instance="{binding.instance_id}"'
            if binding.reg_id is not None:
                value += f";reg-id={binding.reg_id}"
                outbound = True
            headers.append(("Contact", value))
        if outbound and "outbound" in ctx.request.option_tags("supported"):
            headers.append(("Require", "outbound"))  # RFC 5626 §6
        headers.append(("Date", self._date(now)))
        self.dispatcher.reply(ctx, 200, headers=headers)

    def _date(self, now: float) -> str:
        second = int(now)
        cached = self._date_cache
        if cached[0] != second:
            cached = self._date_cache = (second, formatdate(second, usegmt=True))
        return cached[1]

    # ============================================================ location service
    def aor(self, number: str) -> str:
        """The address-of-record of a local user."""
        return f"sip:{number}@{self.domain}"

    def bindings(self) -> list[LiveBinding]:
        """Every live binding (the API's ``/registrations``)."""
        now = self.clock()
        return [b for _, b in self._all() if b.expires_at > now]

    def bindings_for(self, number: str) -> list[LiveBinding]:
        """The live bindings of one user, highest q first, then most recently refreshed."""
        now = self.clock()
        found = [b for b in self._contacts(number).values() if b.expires_at > now]
        found.sort(key=lambda b: (-(b.q if b.q is not None else 1.0), -b.updated_at))
        return found

    def count(self) -> int:
        """How many bindings are held (expired ones leave at the next sweep)."""
        return self._count

    def live_registrations_from(self, host: str) -> int:
        """Bindings whose REGISTER came from `host` (the guard's office-behind-NAT rule)."""
        return self._by_host.get(host, 0)

    def reachable(self, number: str) -> bool:
        """A live binding, or IP authorization with a static contact / a known last source."""
        if self.bindings_for(number):
            return True
        user = self.directory.get(number)
        if user is None or not user.enabled or not user.ip_auth:
            return False
        return static_target(user, self.auth.ip_sources.get(number)) is not None

    def targets(self, number: str) -> list[Target]:
        """Where a request for `number` goes: one target per live binding (NAT-aware), or the
        static contact of an IP-authorized user. Empty when the user is unreachable."""
        user = self.directory.get(number)
        if user is None or not user.enabled:
            return []
        nat_mode = user.nat
        out = [binding_target(b, nat_mode) for b in self.bindings_for(number)]
        if not out and user.ip_auth:
            target = static_target(user, self.auth.ip_sources.get(number))
            if target is not None:
                out.append(target)
        return out

    async def remove(self, number: str, contact_uri: str | None = None) -> int:
        """Unregister (admin): every binding of `number`, or the one with `contact_uri`."""
        bindings = self._contacts(number)
        if not bindings:
            return 0
        if contact_uri is None:
            keys = list(bindings)
        else:
            keys = [k for k, b in bindings.items() if b.contact_uri == contact_uri]
        for key in keys:
            self._remove(number, key)
        return len(keys)

    # ================================================================ bookkeeping
    def _contacts(self, number: str) -> _Contacts:
        """The bindings of `number` by contact key (a view of `_aors`)."""
        return _Contacts(self, number)

    def _all(self) -> Iterator[tuple[str, LiveBinding]]:
        """(number, binding) for every binding held."""
        for number, held in self._aors.items():
            if type(held) is dict:
                for binding in held.values():
                    yield number, binding
            else:
                yield number, held  # type: ignore[misc]

    def _insert(self, binding: LiveBinding, key: str, persist: bool = True) -> None:
        number = binding.user_number
        aor = self._contacts(number)
        if key not in aor:
            self._count += 1
            self._host_count(binding.source.host, +1)
        aor[key] = binding
        heapq.heappush(self._heap, (binding.expires_at, number, key))
        if persist:
            self._queue_upsert(binding, key)

    def _remove(self, number: str, key: str, persist: bool = True) -> None:
        binding = self._contacts(number).pop(key, None)
        if binding is None:
            return
        self._count -= 1
        self._host_count(binding.source.host, -1)
        if persist:
            store_key = (binding.aor, binding.contact_uri)
            self._pending_upserts.pop(binding, None)
            self._pending_deletes.add(store_key)
            self._poke()

    def _host_count(self, host: str, delta: int) -> None:
        count = self._by_host.get(host, 0) + delta
        if count > 0:
            self._by_host[host] = count
        else:
            self._by_host.pop(host, None)

    def _queue_upsert(self, binding: LiveBinding, key: str) -> None:
        self._pending_upserts[binding] = None
        self._pending_deletes.discard((binding.aor, binding.contact_uri))
        self._poke()

    def _poke(self) -> None:
        wake = self._wake
        if wake is not None and (
            len(self._pending_upserts) + len(self._pending_deletes) >= self.flush_batch
        ):
            wake.set()

    def sweep(self, now: float | None = None) -> int:
        """Remove every binding that has expired; returns how many went. Expired bindings are
        not deleted from the store one by one: `load_bindings` skips them and the writer purges
        them in bulk now and then."""
        if now is None:
            now = self.clock()
        heap = self._heap
        removed = 0
        while heap and heap[0][0] <= now:
            _, number, key = heapq.heappop(heap)
            binding = self._contacts(number).get(key)
            if binding is not None and binding.expires_at <= now:
                self._remove(number, key, persist=False)
                self._pending_upserts.pop(binding, None)
                removed += 1
        if len(heap) > 4 * self._count + 1024:
            # Refreshes leave stale entries behind; rebuild once they dominate.
            self._heap = [(b.expires_at, n, b.match_key) for n, b in self._all()]
            heapq.heapify(self._heap)
        self.stats["expired"] += removed
        return removed

    # ============================================================ persistence
    async def restore(self) -> int:
        """Load every unexpired binding from the store (start-up); returns how many."""
        if self.store is None:
            return 0
        records = await self.store.load_bindings(self.clock())
        restored = 0
        for record in records:
            binding = LiveBinding.from_record(record)
            if binding is None:
                continue
            key = contact_key(binding.uri)
            if key == binding.contact_uri:
                key = binding.contact_uri  # one string, as for a plain contact registered live
            binding.user_agent = _shared(binding.user_agent)
            self._insert(binding, key, persist=False)
            restored += 1
        log.info("restored %d registrations", restored)
        return restored

    async def flush(self) -> None:
        """Write queued changes now (the writer calls this; `stop` calls it a last time).

        The records are built while the store writes them (a generator, read a chunk at a
        time): a backlog (a registration storm, a slow disk) never has all its rows in memory
        at once (30,000 queued bindings built up front held ~30 MB during the write)."""
        if self.store is None or not (self._pending_upserts or self._pending_deletes):
            return
        upserts = list(self._pending_upserts)
        deletes = list(self._pending_deletes)
        self._pending_upserts = {}
        self._pending_deletes = set()
        try:
            await self.store.apply_binding_changes(
                (b.to_record() for b in upserts),
                [BindingKey(aor, contact) for aor, contact in deletes],
            )
            self.stats["flushed"] += len(upserts) + len(deletes)
        except Exception:
            self.stats["flush_errors"] += 1
            log.exception("writing %d binding changes failed; will retry", len(upserts))
            self._requeue(upserts, deletes)

    def _requeue(self, upserts: list[LiveBinding], deletes: list[tuple[str, str]]) -> None:
        """Queue again what a failed flush did not write. A binding is written again only if
        it is still the live one for its key (one removed meanwhile has its delete queued, and
        writing it back would bring it back to life in the store)."""
        pending = self._pending_upserts
        for binding in upserts:
            if binding not in pending and (
                self._contacts(binding.user_number).get(binding.match_key) is binding
            ):
                pending[binding] = None
        upserted = {(b.aor, b.contact_uri) for b in pending}
        self._pending_deletes |= set(deletes) - upserted

    async def _writer(self) -> None:
        wake = self._wake
        assert wake is not None
        last_purge = self.clock()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.flush_interval)
            wake.clear()
            await self.flush()
            now = self.clock()
            if self.store is not None and now - last_purge > 60.0:
                last_purge = now
                try:
                    await self.store.purge_expired_bindings(now)
                except Exception:
                    log.exception("purging expired bindings failed")

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                self.sweep()
            except Exception:
                log.exception("binding sweep failed")

    def start(self) -> None:
        """Start the background writer and sweeper (needs a running loop)."""
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._writer(), name="registrar-writer"),
            asyncio.create_task(self._sweeper(), name="registrar-sweeper"),
        ]

    async def stop(self) -> None:
        """Stop the background tasks and write what is still queued."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.flush()


class _Contacts:
    """One AOR's bindings by contact key, with the part of a dict's interface the registrar
    uses: a view of ``registrar._aors[number]``. Nearly every phone holds one binding, which
    `_aors` holds itself (its key is `LiveBinding.match_key`): no container per registered
    phone (a slotted one cost 64 bytes, a dict 200); a dict from the second binding. The view
    is made per use and never kept."""

    __slots__ = ("_aors", "_number", "_registrar")

    def __init__(self, registrar: Registrar | None, number: str) -> None:
        self._registrar = registrar
        self._aors = registrar._aors if registrar is not None else {}
        self._number = number

    def get(self, key: str, default: LiveBinding | None = None) -> LiveBinding | None:
        held = self._aors.get(self._number)
        if held is None:
            return default
        if type(held) is dict:
            return held.get(key, default)
        return held if held.match_key == key else default  # type: ignore[union-attr]

    def __contains__(self, key: object) -> bool:
        held = self._aors.get(self._number)
        if held is None:
            return False
        if type(held) is dict:
            return key in held
        return key == held.match_key  # type: ignore[union-attr]

    def __len__(self) -> int:
        held = self._aors.get(self._number)
        if held is None:
            return 0
        return len(held) if type(held) is dict else 1

    def items(self) -> list[tuple[str, LiveBinding]]:
        held = self._aors.get(self._number)
        if held is None:
            return []
        if type(held) is dict:
            return list(held.items())
        return [(held.match_key, held)]  # type: ignore[union-attr, list-item]

    def values(self) -> list[LiveBinding]:
        held = self._aors.get(self._number)
        if held is None:
            return []
        if type(held) is dict:
            return list(held.values())
        return [held]  # type: ignore[list-item]

    def __iter__(self) -> Iterator[str]:
        return iter([k for k, _ in self.items()])

    def __setitem__(self, key: str, binding: LiveBinding) -> None:
        aors, number = self._aors, self._number
        binding.match_key = key
        held = aors.get(number)
        if held is None or (type(held) is not dict and held.match_key == key):  # type: ignore[union-attr]
            aors[number] = binding
        elif type(held) is dict:
            held[key] = binding
        else:
            aors[number] = {held.match_key: held, key: binding}  # type: ignore[union-attr, dict-item]

    def pop(self, key: str, default: LiveBinding | None = None) -> LiveBinding | None:
        aors, number = self._aors, self._number
        held = aors.get(number)
        if held is None:
            return default
        if type(held) is dict:
            found = held.pop(key, default)
            if len(held) == 1:
                (aors[number],) = held.values()
            return found
        if held.match_key != key:  # type: ignore[union-attr]
            return default
        del aors[number]
        if self._registrar is not None:
            self._registrar._aors_dropped += 1
        return held  # type: ignore[return-value]


_NO_CONTACTS = _Contacts(None, "")  # what an AOR without bindings reads as (never written to)

_SHARED: dict[str, str] = {}


def _shared(text: str | None) -> str | None:
    """One string object per distinct value (User-Agent: thousands of phones, a few models),
    so 100,000 bindings do not hold 100,000 copies. Bounded: cleared when full."""
    if text is None:
        return None
    found = _SHARED.get(text)
    if found is None:
        if len(_SHARED) >= 4096:
            _SHARED.clear()
        found = _SHARED[text] = text
    return found


def _reason(text: str) -> str:
    """A reason phrase from an exception text (one line, bounded)."""
    text = " ".join(text.split())[:80]
    return text[:1].upper() + text[1:] if text else "Bad Request"
