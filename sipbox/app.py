"""The composition root: reads nothing itself, builds every part from `Settings`, runs them.

This is the one module that chooses concrete classes (the store, the transport, uvloop) and
wires them: transport -> pump -> endpoint -> PBX dispatcher -> features. Tests start the real
server through `sipbox serve` in a subprocess, or in-process through `Server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import sipbox
from sipbox import __version__
from sipbox.api import ApiHandle, ensure_admin_token, start_api
from sipbox.api.web import DEFAULT_ADMIN, ensure_web_admin
from sipbox.config import Settings
from sipbox.pbx.dispatcher import Dispatcher
from sipbox.pbx.registration import RegistrationService
from sipbox.pbx.security import SecurityService
from sipbox.pbx.user_admin import warn_stale_realm_users
from sipbox.sip.address import Address
from sipbox.sip.endpoint import Endpoint
from sipbox.storage import open_store
from sipbox.transport import tlscert
from sipbox.transport.advertise import Advertiser
from sipbox.transport.layer import TransportLayer
from sipbox.transport.pump import SipPump

log = logging.getLogger("sipbox")


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`[server] log_format = "json"`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.server.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.server.log_level.upper())
    # Libraries' start-up chatter (migrations, HTTP access lines) is not an administrator's
    # business unless they ask for debug.
    if settings.server.log_level != "debug":
        for name in ("alembic", "uvicorn.access", "uvicorn.error"):
            logging.getLogger(name).setLevel(logging.WARNING)


def effective_domain(settings: Settings) -> str:
    """The SIP domain (and digest realm): configured, else the first specific listen address,
    else this machine's primary address (what phones are usually told to register to)."""
    if settings.sip.domain:
        return settings.sip.domain
    for spec in settings.sip.listen:
        if spec.host not in ("0.0.0.0", "::", ""):
            return spec.host
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent by connect()
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


class Server:
    """A running sipbox: start(), then stop(). Holds every long-lived part."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.domain = effective_domain(settings)
        self.state_dir = Path(settings.server.state_dir)
        self.transport: TransportLayer | None = None
        self.endpoint: Endpoint | None = None
        self.pump: SipPump | None = None
        self.dispatcher: Dispatcher | None = None
        # Registration (issue 3); the API reads store/users/registrar/auth.
        self.store: Any = None
        self.registration: RegistrationService | None = None
        self.users: Any = None
        self.registrar: Any = None
        self.auth: Any = None
        self.api: ApiHandle | None = None
        # Anti-scanning (issue 6): the guard's service; the API manages bans and lists through it.
        self.security: SecurityService | None = None
        self.started_at = time.time()

    async def start(self) -> None:
        settings = self.settings
        sip = settings.sip
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log.info("sipbox %s starting (pid %d)", __version__, os.getpid())
        log.info("SIP domain and realm: %s", self.domain)
        log.info("state directory: %s", self.state_dir.resolve())
        log.info(
            "per-message path (SIP core, guard, dispatcher): %s",
            "compiled (mypyc)" if sipbox.NATIVE else "pure Python (`make native` compiles it)",
        )
        advertiser: list[Advertiser] = []

        def local_address(destination: Address) -> Address:
            return advertiser[0](destination)

        self.endpoint = Endpoint(
            id_source=lambda: secrets.token_hex(8),
            local_address=local_address,
            t1=sip.t1,
            t2=sip.t2,
            t4=sip.t4,
            max_message_size=sip.max_message_size,
            max_headers=sip.max_headers,
            user_agent=sip.user_agent,
        )
        self.pump = SipPump(
            self.endpoint, local_address=local_address, trace=settings.server.sip_trace
        )
        self.dispatcher = Dispatcher(port=self.pump, user_agent=sip.user_agent)
        await self._start_registration()
        await self._start_calls()
        await self._start_lines()
        admin_token = await ensure_admin_token(self.store, self.state_dir)
        # Also on an installation that ran before the web admin existed (issue 7).
        web_password = await ensure_web_admin(self.store)
        await warn_stale_realm_users(self.store, self.domain)
        self.transport = TransportLayer(
            sip.listen,
            self.pump.on_message,
            tls_context=self._tls_context(),
            client_tls_context=tlscert.client_context(verify=False),
            max_message_size=sip.max_message_size,
            connect_timeout=sip.tcp_connect_timeout,
            idle_timeout=sip.tcp_idle_timeout or None,
            max_connections_per_source=sip.max_connections_per_source or 1_000_000,
            accept_source=self._accept_source(),
            on_send_error=self.pump.on_send_error,
        )
        self.pump.attach(self.transport, self.dispatcher.handle_event)
        if self.security is not None:
            self.security.attach(close_source=self._close_source)
            self.pump.allow_destination = self.security.accept_source()
        self.transport.connections_in_use = self._connections_in_use
        try:
            await self.transport.start()
        except OSError as exc:
            wanted = ", ".join(str(spec) for spec in sip.listen)
            raise StartupError(
                f"cannot listen on {wanted}: {exc.strerror or exc} "
                "(another program may hold the port: change [sip] listen)"
            ) from exc
        advertiser.append(
            Advertiser(
                self.transport.listening,
                external_address=sip.external_address,
                local_networks=[str(n) for n in sip.local_networks],
            )
        )
        if getattr(self, "lines", None) is not None:
            self.lines.start()  # REGISTERs need the transport and the advertised address
        try:
            self.api = await start_api(self, settings)
        except OSError as exc:
            raise StartupError(
                f"cannot start the API on {settings.api.listen}: {exc.strerror or exc} "
                "(another program may hold the port: change [api] listen)"
            ) from exc
        if admin_token is not None:
            token_file = self.state_dir / "admin-token"
            print(
                f"\nAdmin API token (shown once; also saved in {token_file}):\n  {admin_token}\n",
                file=sys.stderr,
                flush=True,
            )
        if web_password is not None:
            print(
                f"\nWeb admin {self.api.url}/ (shown once; change it with `sipbox admin passwd`):"
                f"\n  user: {DEFAULT_ADMIN}\n  password: {web_password}\n",
                file=sys.stderr,
                flush=True,
            )
        gc.collect()
        gc.freeze()  # start-up objects never need scanning again (fewer, shorter GC pauses)

    def _connections_in_use(self) -> set[int]:
        """TCP/TLS connections a live registration or call still needs: the transport's idle
        sweep never closes them (RFC 5626 flows; in-dialog requests reuse the connection)."""
        used: set[int] = set()
        if self.registrar is not None:
            for binding in self.registrar.bindings():
                cid = getattr(binding, "connection_id", None)
                if cid is not None:
                    used.add(cid)
        b2bua = getattr(getattr(self, "calls", None), "b2bua", None)
        for call in getattr(b2bua, "calls", {}).values():
            for side in (getattr(call, "a", None), getattr(call, "bside", None)):
                cid = getattr(side, "connection_id", None)
                if cid is not None:
                    used.add(cid)
        return used

    def _accept_source(self) -> Any:
        """The transport's pre-parse source check: the guard's O(1) verdict."""
        if self.security is None:
            return lambda host: True
        return self.security.accept_source()

    def _close_source(self, key: str) -> None:
        """Close the live TCP/TLS connections a new ban, flood block or blacklist entry covers
        (`key` is an address, an IPv6 ban prefix or a blacklisted network)."""
        transport = self.transport
        if transport is None:
            return
        if "/" not in key:
            transport.close_connections_from(key)
            return
        import ipaddress

        try:
            net = ipaddress.ip_network(key, strict=False)
        except ValueError:
            return
        # The layer indexes connections by host; a network key needs a scan (rare: bans).
        for host in list(getattr(transport, "_by_host", {})):
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(host.split("%", 1)[0]) in net:
                    transport.close_connections_from(host)

    def _tls_context(self):  # type: ignore[no-untyped-def]
        if not any(spec.transport == "tls" for spec in self.settings.sip.listen):
            return None
        tls = self.settings.tls
        if tls.cert and tls.key:
            return tlscert.server_context(tls.cert, tls.key)
        cert = self.state_dir / "tls" / "cert.pem"
        key = self.state_dir / "tls" / "key.pem"
        if not cert.exists() or not key.exists():
            cert.parent.mkdir(parents=True, exist_ok=True)
            tlscert.ensure_self_signed(cert, key, self.domain)
            log.info("generated a self-signed TLS certificate for development: %s", cert)
        return tlscert.server_context(cert, key)

    async def _start_registration(self) -> None:
        """Store, users, auth, registrar: loaded before the transport takes traffic."""
        settings = self.settings
        url = settings.database.url or f"sqlite:///{self.state_dir}/sipbox.db"
        if self.store is None:
            self.store = open_store(url)
            await self.store.migrate()
        assert self.dispatcher is not None
        # The guard is loaded (bans, lists) before anything can take traffic.
        self.security = SecurityService(settings.guard, self.store)
        await self.security.load()
        service = RegistrationService(
            settings,
            domain=self.domain,
            state_dir=self.state_dir,
            store=self.store,
            dispatcher=self.dispatcher,
            guard=self.security.guard,
            on_guard_event=self.security.handle_event,
        )
        await service.load()
        service.start()
        self.security.attach(
            users=service.users,
            live_registrations_from=service.registrar.live_registrations_from,
        )
        self.dispatcher.screen = self.security.screen
        self.security.start()
        self.registration = service
        self.users, self.registrar, self.auth = service.users, service.registrar, service.auth

    async def _start_calls(self) -> None:
        """Calls between users (issue 4): after registration (it needs users, auth, targets)."""
        from sipbox.pbx.calls import CallService

        assert self.dispatcher is not None and self.registration is not None
        calls = self.settings.calls
        self.calls = CallService(
            dispatcher=self.dispatcher,
            registration=self.registration,
            store=self.store,
            domain=self.domain,
            ring_timeout=calls.ring_timeout,
            max_duration=calls.max_duration,
            session_expires=int(calls.session_expires),
            min_se=int(calls.min_se),
            t1=self.settings.sip.t1,
            t2=self.settings.sip.t2,
        )
        await self._start_call_features()
        await self.calls.load()
        self.calls.start()
        # Per-call SIP trace for the web admin (issue 7): the B2BUA names each call's Call-IDs,
        # the pump records their messages (`sipbox/sip/capture.py`).
        if self.settings.server.trace_calls > 0 and self.pump is not None:
            from sipbox.sip.capture import CallCapture

            self.capture = CallCapture(self.settings.server.trace_calls)
            self.pump.capture = self.capture
            self.calls.b2bua.capture = self.capture

    async def _start_call_features(self) -> None:
        """Groups, forwarding/DND and feature codes (issue 4) on the calls router."""
        from sipbox.pbx.calls.featurecodes import FeatureCodes
        from sipbox.pbx.calls.features import install_features

        f = self.settings.features
        codes = FeatureCodes(
            f.forward_busy, f.forward_unreachable, f.forward_no_answer,
            f.forward_unconditional, f.dnd_on, f.dnd_off, f.answer_status,
        )  # fmt: skip
        await install_features(
            self.calls,
            self.store,
            domain=self.domain,
            ring_timeout=self.settings.calls.ring_timeout,
            codes=codes if f.enabled else None,
        )

    async def _start_lines(self) -> None:
        """External lines and trunks (issue 5): after calls (it adds a resolver to their
        router and a peer hook to auth); registrations start with the event loop."""
        from sipbox.pbx.lines.service import LineService

        assert self.dispatcher is not None
        self.lines = LineService(
            dispatcher=self.dispatcher,
            calls=self.calls,
            auth=self.auth,
            store=self.store,
            state_dir=self.state_dir,
            settings=self.settings,
            domain=self.domain,
            security=self.security,
        )
        await self.lines.load()

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.stop()
            self.api = None
        if getattr(self, "lines", None) is not None:
            await self.lines.stop()  # un-REGISTER while the transport still runs
        if self.transport is not None:
            await self.transport.stop()
        if self.pump is not None:
            self.pump.close()
        if getattr(self, "calls", None) is not None:
            await self.calls.stop()  # flushes queued call records
        if self.registration is not None:
            await self.registration.stop()  # flushes queued binding changes
            self.registration = None
        if self.security is not None:
            await self.security.stop()  # flushes queued ban/event writes
        if self.store is not None:
            await self.store.close()
            self.store = None
        log.info("sipbox stopped")


async def run(settings: Settings) -> None:
    """Start, wait for SIGINT/SIGTERM, stop."""
    server = Server(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await server.start()
    log.info("ready")
    try:
        await stop.wait()
    finally:
        await server.stop()


class StartupError(Exception):
    """The server cannot start for a reason the administrator can fix (a port in use...)."""


def serve(settings: Settings) -> None:
    """Blocking entry point of `sipbox serve`: uvloop on Linux, the default loop elsewhere.

    A start-up failure the administrator can fix is one clear log line and exit status 1,
    not a traceback."""
    configure_logging(settings)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a hard dependency on Linux
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(run(settings))
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        raise SystemExit(1) from None
