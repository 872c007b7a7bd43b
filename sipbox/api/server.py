"""`start_api`: run the API's HTTP server inside the server's own event loop.

Why not ``uvicorn.run``: that owns the loop and the process's signals. sipbox runs one event
loop (uvloop) for SIP and HTTP alike, and `app.py` owns SIGINT/SIGTERM. So the socket is bound
here (a bind error is an ordinary `OSError` with the address in it, instead of uvicorn's
``sys.exit``), uvicorn serves it as a task, and uvicorn's signal capture is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn

from sipbox.api.context import ApiContext
from sipbox.api.factory import create_api
from sipbox.config import Settings

__all__ = ["ApiHandle", "parse_listen", "start_api"]

log = logging.getLogger("sipbox.api")

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers (the composition root owns signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(slots=True)
class ApiHandle:
    """A running API listener: where it listens, and how to stop it."""

    host: str
    port: int
    _server: _EmbeddedServer = field(repr=False)
    _task: asyncio.Task[None] = field(repr=False)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the port is the real one when 0 was configured."""
        return self.host, self.port

    @property
    def url(self) -> str:
        """Base URL for clients (``http://127.0.0.1:8080``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let running requests finish (briefly), then end the task."""
        if self._task.done():
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), _STOP_TIMEOUT)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        log.info("API stopped")


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


async def start_api(context: ApiContext, settings: Settings) -> ApiHandle:
    """Bind ``settings.api.listen`` and serve the API as a task of the running loop.

    Returns once the server accepts connections. Raises `OSError` when the address cannot be
    bound (in use, not local), with the address in the message.
    """
    host, port = parse_listen(settings.api.listen)
    sock = _bind(host, port)
    config = uvicorn.Config(
        create_api(
            context,
            session_lifetime=settings.api.session_lifetime,
            metrics_public=settings.api.metrics_public,
            mss_compat=settings.api.mss_compat,
        ),
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(_STOP_TIMEOUT),
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="sipbox-api")
    deadline = asyncio.get_running_loop().time() + _START_TIMEOUT
    while not server.started:
        if task.done():
            sock.close()
            task.result()  # re-raises the start-up failure
            raise RuntimeError("the API server stopped during start-up")
        if asyncio.get_running_loop().time() > deadline:
            task.cancel()
            sock.close()
            raise TimeoutError("the API server did not start in time")
        await asyncio.sleep(0.01)
    bound_host, bound_port = sock.getsockname()[:2]
    handle = ApiHandle(str(bound_host), int(bound_port), server, task)
    log.info("API listening on %s (docs at %s/docs)", handle.url, handle.url)
    return handle


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot listen for the API on {host}:{port}: {exc.strerror}"
        ) from None
    return sock
