"""Assembles external lines and trunks for `app.py`: configuration in memory, registrations,
trunk keep-alives, the outbound resolver, the inbound matcher, live status.

Like `CallService`, this owns one asyncio timer handle, re-armed after every event it
handles, and plugs into the dispatcher by chaining the response/timeout handlers (its REGISTER
and OPTIONS transactions are in `_tx`; everything else goes to the handler registered before
it). Configuration is read whole from the store at start and after each change made through
the API (`reload`); no SIP message ever waits on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sipbox.pbx.calls.model import CallState
from sipbox.pbx.calls.routing import RouteContext
from sipbox.sip.address import DEFAULT_PORTS, Address
from sipbox.sip.events import ResponseReceived, TransactionTimedOut, TransportError
from sipbox.sip.message import Request
from sipbox.storage.lines import LineStore

from ..dispatcher import Dispatcher, RequestContext
from .inbound import InboundRoutes, called_number, calling_user, uri_user
from .keepalive import LineKeepalive
from .line import LineConfig, SecretBox, line_from_config, trunk_from_config
from .outbound import (
    Candidate,
    EgressLegSpec,
    LineEgress,
    OutboundPolicy,
    PrefixResolver,
    PrefixRule,
    TrunkEgress,
    line_target,
    trunk_target,
)
from .registration import LineRegistration
from .trunks import TrunkState

log = logging.getLogger("sipbox.pbx.lines")

__all__ = ["LineService"]


class LineService:
    """External lines + trunks + prefixes + inbound routes, live."""

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        calls: Any,
        auth: Any,
        store: Any,
        state_dir: Path,
        settings: Any,
        domain: str,
        security: Any = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.dispatcher = dispatcher
        self.port = dispatcher.port
        self.calls = calls
        self.auth = auth
        self.db = LineStore(store)
        self.box = SecretBox(state_dir)
        self.settings = settings
        self.domain = domain
        self.security = security
        self.random_bytes = random_bytes
        self.ids: Callable[[], str] = lambda: secrets.token_hex(8)
        lines_cfg = settings.lines
        self.policy = OutboundPolicy(
            emergency_numbers=frozenset(lines_cfg.emergency_numbers),
            emergency_route=tuple(lines_cfg.emergency_route),
            national_prefix=lines_cfg.national_prefix,
            international_prefix=lines_cfg.international_prefix,
            max_outbound_per_user=lines_cfg.max_outbound_per_user,
            ring_timeout=lines_cfg.ring_timeout,
        )
        self.lines: dict[str, LineConfig] = {}
        self.line_ids: dict[str, int] = {}
        self.line_targets: dict[str, list[Address]] = {}
        self.regs: dict[str, LineRegistration] = {}
        self.keepalives: dict[str, LineKeepalive] = {}
        #: The last `line test` report per line name (memory only), so the web page and
        #: ``/lines`` still show it after a reload instead of losing it with the click.
        self.last_tests: dict[str, dict[str, Any]] = {}
        self.trunks: dict[str, TrunkState] = {}
        self.trunk_ids: dict[str, int] = {}
        self.rules: list[PrefixRule] = []
        self.routes = InboundRoutes()
        self._by_host_lines: dict[str, list[str]] = {}
        self._by_host_trunks: dict[str, list[str]] = {}
        self._tx: dict[object, tuple[Any, ...]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resolver_task: asyncio.Task[None] | None = None
        self.resolver = PrefixResolver(
            lambda: self.rules,
            self._candidates,
            self.policy,
            is_local=self._is_local,
            outbound_calls=self._outbound_calls_of,
        )
        self._wire()

    # == wiring ===================================================================================
    def _wire(self) -> None:
        router = self.calls.router
        router.resolvers.append(self.resolver)
        previous = router.permitted
        mine = self.resolver.permitted
        router.permitted = lambda caller, number: previous(caller, number) and mine(caller, number)
        if hasattr(self.auth, "peers"):
            self.auth.peers = self.match_peer
        for event_type in (ResponseReceived, TransactionTimedOut, TransportError):
            self._chain(event_type)

    def _chain(self, event_type: type) -> None:
        previous = self.dispatcher.event_handlers.get(event_type)

        def run(event: object) -> None:
            entry = self._tx.get(getattr(event, "transaction", None))
            if entry is None:
                if previous is not None:
                    previous(event)
                return
            try:
                self._on_event(entry, event)
            except Exception:
                log.exception("lines: handling %s failed", type(event).__name__)
            self._rearm()

        self.dispatcher.on_event(event_type, run)

    def _is_local(self, number: str) -> bool:
        return self.calls.router.users.user(number) is not None

    # == life cycle ===============================================================================
    async def load(self) -> None:
        """Read lines, trunks, prefixes and routes; resolve host names."""
        line_records = await self.db.list_peers("line")
        trunk_records = await self.db.list_peers("trunk")
        lines: dict[str, LineConfig] = {}
        ids: dict[str, int] = {}
        for record in line_records:
            try:
                config = dict(record.config)
                line = line_from_config(
                    record.name, record.enabled, config, self.box.decrypt(record.secret)
                )
            except Exception as exc:
                log.error("line %s: unusable configuration: %s", record.name, exc)
                continue
            lines[line.name] = line
            ids[line.name] = record.id
        trunks: dict[str, TrunkState] = {}
        trunk_ids: dict[str, int] = {}
        for record in trunk_records:
            try:
                trunk = trunk_from_config(record.name, record.enabled, record.config)
            except Exception as exc:
                log.error("trunk %s: unusable configuration: %s", record.name, exc)
                continue
            old = self.trunks.get(trunk.name)
            state = old if old is not None and old.config == trunk else TrunkState(trunk, self.ids)
            trunks[trunk.name] = state
            trunk_ids[trunk.name] = record.id
        rules = [PrefixRule.from_record(r) for r in await self.db.list_prefixes()]
        if not rules and (lines or trunks):
            # The MSS default: 9 + number goes out through every line, then every trunk.
            rules = [PrefixRule(id=0, pattern="9", strip=1, implicit=True)]
        routes = await self.db.list_inbound_routes()
        self.routes = InboundRoutes((r.source, r.did, r.destination) for r in routes)
        self.rules = rules
        await self._resolve_all(lines, trunks)
        self._apply_lines(lines, ids)
        for name, state in trunks.items():
            fresh = name not in self.trunks or self.trunks[name] is not state
            if fresh and self._loop is not None:
                state.start(self.port.now())
        self.trunks, self.trunk_ids = trunks, trunk_ids
        self._index_hosts()
        self._rearm()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        now = self.port.now()
        for reg in self.regs.values():
            if reg.line.enabled and reg.line.register:
                reg.start(now)
        for keepalive in self.keepalives.values():
            keepalive.start(now)
        for state in self.trunks.values():
            if state.config.enabled:
                state.start(now)
        self._resolver_task = asyncio.create_task(self._re_resolve())
        self._rearm()

    async def register_now(self, name: str) -> dict[str, Any]:
        """Force an immediate REGISTER of line `name` (after a network change, or once the
        carrier fixed the account): resolve its targets again, forget the backoff, restart
        its keep-alive. KeyError when the line has no registration (disabled or
        `register = false`). Returns the line's status."""
        reg = self.regs.get(name)
        line = self.lines.get(name)
        if reg is None or line is None:
            raise KeyError(name)
        targets = await self._resolve_line(line)
        if targets or not self.line_targets.get(name):
            self.line_targets[name] = targets
            self._tls_policy(line, targets)
            self._index_hosts()
        now = self.port.now()
        reg.target_index = 0
        self._send_reg(reg, reg.register_now(now))
        keepalive = self.keepalives.get(name)
        if keepalive is not None:
            keepalive.start(now)
        self._rearm()
        return self.line_status(name)

    async def reload(self) -> None:
        """After a change through the API: apply at once (an edited line re-registers)."""
        await self.load()

    async def stop(self, timeout: float = 2.0) -> None:
        """Un-REGISTER every registered line and wait (briefly) for the answers."""
        if self._resolver_task is not None:
            self._resolver_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._resolver_task
        now = self.port.now()
        for reg in self.regs.values():
            self._send_reg(reg, reg.stop(now))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            r.status.state == "unregistering" for r in self.regs.values()
        ):
            await asyncio.sleep(0.05)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _apply_lines(self, lines: dict[str, LineConfig], ids: dict[str, int]) -> None:
        now = self.port.now()
        for name, reg in list(self.regs.items()):
            new = lines.get(name)
            if new is not None and new == reg.line:
                continue
            old = reg.line
            same_binding = (
                new is not None
                and new.enabled
                and new.register
                and (new.account, new.domain, new.proxy, new.contact_user)
                == (old.account, old.domain, old.proxy, old.contact_user)
            )
            if not same_binding:
                self._send_reg(reg, reg.stop(now))  # disabled, moved or deleted: un-REGISTER
            del self.regs[name]
        for name, line in lines.items():
            if name in self.regs or not (line.enabled and line.register):
                continue
            reg = self._new_registration(line)
            self.regs[name] = reg
            if self._loop is not None:
                reg.start(now)
        keepalives: dict[str, LineKeepalive] = {}
        for name, line in lines.items():
            if not (line.enabled and line.keepalive > 0):
                continue
            old_ka = self.keepalives.get(name)
            if old_ka is not None and old_ka.line == line:
                keepalives[name] = old_ka
                continue
            keepalives[name] = LineKeepalive(line, self.ids)
            if self._loop is not None:
                keepalives[name].start(now)
        self.keepalives = keepalives
        self.lines, self.line_ids = lines, ids

    def _new_registration(
        self, line: LineConfig, *, auth_with_domain: bool | None = None, use_proxy: bool = True
    ) -> LineRegistration:
        name = line.name
        base = self.settings.lines

        def targets() -> list[Address]:
            if use_proxy:
                return self.line_targets.get(name, [])
            return self.line_targets.get(f"{name}#domain", [])

        return LineRegistration(
            line,
            targets=targets,
            local_address=self.port.local_address,
            ids=self.ids,
            random_bytes=self.random_bytes,
            backoff_base=base.backoff_base,
            backoff_cap=base.backoff_cap,
            auth_with_domain=auth_with_domain,
            use_proxy=use_proxy,
        )

    # == name resolution ==========================================================================
    async def _resolve_all(
        self, lines: dict[str, LineConfig], trunks: dict[str, TrunkState]
    ) -> None:
        targets: dict[str, list[Address]] = {}
        for line in lines.values():
            targets[line.name] = await self._resolve_line(line)
            self._tls_policy(line, targets[line.name])
        self.line_targets = targets
        for state in trunks.values():
            resolved: list[tuple[str, int]] = []
            for host, port in state.config.targets():
                resolved.extend(await self._lookup(host, port))
            if resolved or not state.addresses:
                state.set_addresses(resolved)

    async def _resolve_line(self, line: LineConfig) -> list[Address]:
        """The line's targets: its proxy's address, else RFC 3263 of its domain."""
        spec = line.proxy_spec
        if spec is not None:
            hosts = await self._lookup(spec.host, spec.port or DEFAULT_PORTS[spec.transport])
            return [spec.address(h) for h, _ in hosts[:1]]
        return await self._domain_targets(line)

    def _tls_policy(self, line: LineConfig, targets: list[Address]) -> None:
        """Tell the transport how to check the certificate of each TLS target: against
        `tls_server_name`, else the proxy's host name, else the line's domain (a logical IMS
        domain with an SBC given by address), or not at all with `tls_verify` off."""
        hook = getattr(self.port, "tls_peer", None)
        if hook is None:
            return
        spec = line.proxy_spec
        from sipbox.pbx.location import is_ip_literal

        name = line.tls_server_name
        if name is None and spec is not None and not is_ip_literal(spec.host):
            name = spec.host
        for address in targets:
            if address.transport == "tls":
                hook(address, name or line.domain, line.tls_verify)

    async def _domain_targets(self, line: LineConfig) -> list[Address]:
        """RFC 3263 for a line without a proxy: NAPTR/SRV, else A/AAAA on the default port."""
        from sipbox.pbx.location import is_ip_literal

        from .dns import resolve_sip_targets

        if is_ip_literal(line.domain):
            return [Address(line.transport, line.domain.strip("[]"), DEFAULT_PORTS[line.transport])]
        try:
            found = await resolve_sip_targets(
                line.domain,
                line.transport,
                servers=tuple(self.settings.dns.servers),
                timeout=self.settings.dns.timeout,
            )
        except Exception as exc:
            log.warning("line %s: DNS look-up of %s failed: %s", line.name, line.domain, exc)
            return []
        return found

    async def _lookup(self, host: str, port: int) -> list[tuple[str, int]]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            log.warning("cannot resolve %s: %s", host, exc)
            return []
        out: list[tuple[str, int]] = []
        for info in infos:
            address = (str(info[4][0]), port)
            if address not in out:
                out.append(address)
        return out

    async def _re_resolve(self) -> None:
        interval = self.settings.lines.resolve_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self._resolve_all(self.lines, self.trunks)
                self._index_hosts()
            except Exception:
                log.exception("re-resolving line/trunk hosts failed")

    def _index_hosts(self) -> None:
        by_line: dict[str, list[str]] = {}
        for name, addresses in self.line_targets.items():
            if "#" in name:
                continue
            for address in addresses:
                by_line.setdefault(address.host, []).append(name)
        by_trunk: dict[str, list[str]] = {}
        for name, state in self.trunks.items():
            for host in state.hosts:
                by_trunk.setdefault(host, []).append(name)
        self._by_host_lines, self._by_host_trunks = by_line, by_trunk
        if self.security is not None:
            try:
                self.security.set_trusted_hosts(sorted(set(by_line) | set(by_trunk)))
            except Exception:
                log.exception("cannot tell the guard about trusted line/trunk hosts")

    # == SIP events ===============================================================================
    def _send_reg(self, reg: LineRegistration, out: tuple[Request, Address] | None) -> None:
        if out is None:
            return
        request, destination = out
        tx = self.port.send_request(request, destination)
        self._tx[tx] = ("reg", reg)

    def _on_event(self, entry: tuple[Any, ...], event: object) -> None:
        now = self.port.now()
        tx = getattr(event, "transaction", None)
        kind = entry[0]
        if isinstance(event, ResponseReceived):
            response = event.response
            if response.status >= 200:
                self._tx.pop(tx, None)
            if kind == "reg":
                self._send_reg(entry[1], entry[1].on_response(response, now))
            elif kind == "opt" and response.status >= 200:
                self._trunk_result(entry[1], entry[2], True, now)
            elif kind == "lopt" and response.status >= 200:
                self._keepalive_result(entry[1], True, now)
            return
        self._tx.pop(tx, None)
        status = 408 if isinstance(event, TransactionTimedOut) else 503
        if kind == "reg":
            self._send_reg(entry[1], entry[1].on_failure(status, now))
        elif kind == "opt":
            self._trunk_result(entry[1], entry[2], False, now)
        elif kind == "lopt":
            self._keepalive_result(entry[1], False, now)

    def _keepalive_result(self, keepalive: LineKeepalive, alive: bool, now: float) -> None:
        """Lost: hand it to the registration machine (re-REGISTER / fail over, its backoff
        rules apply). Resumed after an outage: a failed registration is retried at once."""
        name = keepalive.line.name
        if self.keepalives.get(name) is not keepalive:
            return  # the line was edited or removed meanwhile
        change = keepalive.on_result(alive, now)
        if change is None:
            return
        what = "answers again" if change == "resumed" else "stopped answering OPTIONS"
        log.warning("line %s: target %s %s", name, keepalive.target, what)
        reg = self.regs.get(name)
        if reg is None:
            return
        if change == "lost":
            self._send_reg(reg, reg.unreachable(now))
        elif reg.status.state == "failed":
            self._send_reg(reg, reg.register_now(now))

    def _trunk_result(self, state: TrunkState, address: Address, alive: bool, now: float) -> None:
        changed = state.on_result(address, alive, now)
        if changed is not None:
            log.warning("trunk %s is %s", state.name, "up" if changed else "down")

    # == the one timer ============================================================================
    def _next_deadline(self) -> float | None:
        deadlines = [r.next_deadline() for r in self.regs.values()]
        deadlines += [t.next_deadline() for t in self.trunks.values() if t.config.enabled]
        deadlines += [k.next_deadline() for k in self.keepalives.values()]
        found = [d for d in deadlines if d is not None]
        return min(found) if found else None

    def _rearm(self) -> None:
        loop = self._loop
        if loop is None:
            return
        deadline = self._next_deadline()
        if deadline == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self.port.now()
        try:
            for reg in list(self.regs.values()):
                self._send_reg(reg, reg.poll(now))
            for state in self.trunks.values():
                if not state.config.enabled:
                    continue
                for request, address in state.poll(now, self.domain, None):
                    tx = self.port.send_request(request, address)
                    self._tx[tx] = ("opt", state, address)
            for name, keepalive in self.keepalives.items():
                line_reg = self.regs.get(name)
                if line_reg is not None:
                    target = line_reg.current_target()
                else:
                    found = self.line_targets.get(name)
                    target = found[0] if found else None
                options = keepalive.poll(now, target)
                if options is not None and target is not None:
                    tx = self.port.send_request(options, target)
                    self._tx[tx] = ("lopt", keepalive)
        except Exception:
            log.exception("lines timer failed")
        finally:
            self._rearm()

    # == inbound ==================================================================================
    def match_peer(self, ctx: RequestContext) -> Any:
        """The `Authenticator.peers` hook (see `inbound.py` for the precedence)."""
        request = ctx.request
        if request.method != "INVITE":
            return None
        remote = getattr(ctx.peer, "remote", None)
        host = getattr(remote, "host", None)
        if host is None:
            return None
        names = self._by_host_lines.get(host)
        if names:
            user = uri_user(request.uri_text)
            for name in names:
                line = self.lines.get(name)
                if line is not None and line.enabled and user == line.contact_user:
                    return self._inbound(ctx, "line", name, line.did_source, line.max_calls_in)
        trunk_names = self._by_host_trunks.get(host)
        if trunk_names:
            for name in trunk_names:
                state = self.trunks.get(name)
                if state is not None and state.config.enabled:
                    cfg = state.config
                    return self._inbound(ctx, "trunk", name, cfg.did_source, cfg.max_calls_in)
        return None

    def _inbound(
        self, ctx: RequestContext, kind: str, name: str, did_source: str, limit: int | None
    ) -> Any:
        from ..auth import AuthResult

        if limit is not None and (limit == 0 or self._inbound_calls(kind, name) >= limit):
            self.dispatcher.reply(ctx, 486 if limit else 403, "Too Many Calls" if limit else None)
            return AuthResult(None, answered=True)
        did = called_number(ctx.request, did_source) or ""
        destination = self.routes.destination(name, did)
        caller = calling_user(ctx.request, kind, name)
        return AuthResult(caller, kind, peer=name, dialed=destination)  # type: ignore[arg-type]

    # == live counts ==============================================================================
    def _live_calls(self) -> list[Any]:
        b2bua = getattr(self.calls, "b2bua", None)
        if b2bua is None:
            return []
        return [c for c in b2bua.calls.values() if c.state is not CallState.ENDED]

    def _inbound_calls(self, kind: str, name: str) -> int:
        tag = f"{kind}:{name}"
        return sum(1 for c in self._live_calls() if (c.caller.settings or {}).get("peer") == tag)

    def _egress_of(self, call: Any) -> list[Any]:
        out = []
        for leg in call.legs.values():
            egress = getattr(leg.spec, "egress", None)
            if egress is not None and (leg.live or call.b is leg):
                out.append(egress)
        return out

    def outbound_calls(self, kind: str, name: str) -> int:
        cls = LineEgress if kind == "line" else TrunkEgress
        return sum(
            1
            for c in self._live_calls()
            if any(isinstance(e, cls) and e.name == name for e in self._egress_of(c))
        )

    def _outbound_calls_of(self, number: str) -> int:
        return sum(
            1 for c in self._live_calls() if c.caller.number == number and self._egress_of(c)
        )

    # == outbound =================================================================================
    def _candidates(
        self, targets: Sequence[str], external: str, ctx: RouteContext, rule: PrefixRule | None
    ) -> list[Candidate]:
        names = list(targets) or [f"line:{n}" for n in self.lines] + [
            f"trunk:{n}" for n in self.trunks
        ]
        caller = ctx.caller
        caller_id = None
        if rule is not None and rule.caller_id:
            caller_id = rule.caller_id
        elif rule is not None and rule.caller_prefix and caller is not None:
            caller_id = rule.caller_prefix + caller.number
        diverted = len(ctx.visited) > 1
        emergency = rule is None
        out: list[Candidate] = []
        for item in names:
            kind, _, name = item.partition(":")
            if not name:
                kind, name = ("line" if item in self.lines else "trunk"), item
            if kind == "line":
                line = self.lines.get(name)
                if line is None or not line.enabled:
                    continue
                if (
                    not emergency
                    and line.max_calls_out is not None
                    and (
                        line.max_calls_out == 0
                        or self.outbound_calls("line", name) >= line.max_calls_out
                    )
                ):
                    continue
                destination = self.line_destination(name)
                if destination is None:
                    continue
                out.append(
                    Candidate(
                        f"line:{name}",
                        self._line_leg(line, external, destination, caller_id, diverted),
                    )
                )
            elif kind == "trunk":
                state = self.trunks.get(name)
                if state is None or not state.config.enabled or not state.up:
                    continue
                cfg = state.config
                if (
                    not emergency
                    and cfg.max_calls_out is not None
                    and (
                        cfg.max_calls_out == 0
                        or self.outbound_calls("trunk", name) >= cfg.max_calls_out
                    )
                ):
                    continue
                for address in state.live_addresses():
                    out.append(
                        Candidate(
                            f"trunk:{name}", self._trunk_leg(state, external, address, caller_id)
                        )
                    )
        return out

    def line_destination(self, name: str) -> Address | None:
        """Where the line's requests go: the target that accepted its registration (sticky),
        else the first resolved one."""
        reg = self.regs.get(name)
        if reg is not None and reg.destination is not None and reg.status.state == "registered":
            return reg.destination
        found = self.line_targets.get(name)
        return found[0] if found else None

    def _line_leg(
        self, line: LineConfig, external: str, destination: Address, caller_id: str | None,
        diverted: bool,
    ) -> Callable[[int], EgressLegSpec]:  # fmt: skip
        def make(key: int) -> EgressLegSpec:
            routes: list[str] = []
            spec = line.proxy_spec
            if spec is not None and line.proxy_mode == "route":
                routes.append(spec.uri())
            reg = self.regs.get(line.name)
            if reg is not None:
                routes.extend(reg.status.service_route)
            egress = LineEgress(
                line, routes=routes, caller_id=caller_id, diverted=diverted,
                random_bytes=self.random_bytes,
            )  # fmt: skip
            target = line_target(line, external, destination)
            return EgressLegSpec(key, target, external, f"{external} via line {line.name}", egress)

        return make

    def _trunk_leg(
        self, state: TrunkState, external: str, address: Address, caller_id: str | None
    ) -> Callable[[int], EgressLegSpec]:
        def make(key: int) -> EgressLegSpec:
            egress = TrunkEgress(state.config, domain=self.domain, caller_id=caller_id)
            target = trunk_target(state.config, external, address)
            return EgressLegSpec(
                key, target, external, f"{external} via trunk {state.name}", egress
            )

        return make

    # == status (API) =============================================================================
    def _wall(self, mono: float | None) -> float | None:
        if mono is None:
            return None
        return time.time() + (mono - self.port.now())

    def line_status(self, name: str) -> dict[str, Any]:
        line = self.lines.get(name)
        reg = self.regs.get(name)
        out: dict[str, Any] = {
            "state": "disabled",
            "registered_until": None,
            "last_status": None,
            "last_reason": None,
            "last_attempt": None,
            "next_attempt": None,
            "failures": 0,
            "target": None,
            "service_route": [],
            "associated_uris": [],
            "calls_in": self._inbound_calls("line", name),
            "calls_out": self.outbound_calls("line", name),
            "reachable": None,
            "last_keepalive": None,
            "last_test": self.last_tests.get(name),
        }
        keepalive = self.keepalives.get(name)
        if keepalive is not None:
            out["reachable"] = keepalive.reachable
            out["last_keepalive"] = self._wall(keepalive.last_answer)
        if line is not None and line.enabled and not line.register:
            out["state"] = "unregistered"
        if reg is not None:
            st = reg.status
            out.update(
                state=st.state,
                registered_until=self._wall(st.expires_at),
                last_status=st.last_status,
                last_reason=st.last_reason,
                last_attempt=self._wall(st.last_attempt),
                next_attempt=self._wall(st.retry_at if st.state == "failed" else st.refresh_at),
                failures=st.failures,
                target=st.target,
                service_route=list(st.service_route),
                associated_uris=list(st.associated_uris),
            )
        return out

    def trunk_status(self, name: str) -> dict[str, Any]:
        state = self.trunks.get(name)
        if state is None:
            return {"state": "unknown"}
        return {
            "state": "disabled" if not state.config.enabled else ("up" if state.up else "down"),
            "addresses": [str(a) for a in state.addresses],
            "last_change": self._wall(state.last_change),
            "calls_in": self._inbound_calls("trunk", name),
            "calls_out": self.outbound_calls("trunk", name),
        }
