"""The ``sipbox`` command: ``sipbox serve`` runs the server, the other commands talk to it.

Why two kinds of command: ``serve`` is the only one that touches the configuration file and the
network stack directly; every administrative command (``sipbox user add``, ``sipbox reg list``,
``sipbox status`` ...) goes through the REST API of a running server, so the CLI, the web pages
and scripts all share one authorisation and validation path. Those commands live in sub-apps
added with ``app.add_typer(...)`` and build an :class:`ApiClient` with :meth:`ApiClient.resolve`,
taking the shared ``--api-url``/``--token``/``--config`` options declared below.

Heavy imports (the server itself) happen inside the commands so ``sipbox --help`` stays fast and
does not need the whole stack to import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from sipbox import __version__
from sipbox.config import ConfigError, Settings, load_settings

__all__ = [
    "DEFAULT_CONFIG",
    "ApiClient",
    "ApiError",
    "ApiUrlOption",
    "ConfigOption",
    "TokenOption",
    "app",
    "console",
    "err_console",
    "fail",
    "find_config",
    "load_config_or_exit",
    "main",
]

DEFAULT_CONFIG = Path("sipbox.toml")
"""Read from the working directory when no ``--config``/``SIPBOX_CONFIG`` is given."""

TOKEN_FILE = "admin-token"
"""Name of the API token file that the server writes under ``server.state_dir``."""

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="sipbox",
    help="sipbox: a SIP server / IP-PBX. Start it with `sipbox serve`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Options shared by every command; sub-apps reuse these aliases so the flags and their
# environment variables are spelled the same everywhere.
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="SIPBOX_CONFIG",
        dir_okay=False,
        help="Configuration file (TOML). Default: ./sipbox.toml when it exists.",
    ),
]
ApiUrlOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar="SIPBOX_API_URL",
        help="URL of the sipbox REST API. Default: http://<api.listen> from the configuration.",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="SIPBOX_TOKEN",
        help="API token. Default: the contents of <server.state_dir>/admin-token.",
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` in red on stderr and exit with ``code`` (2 = bad configuration/usage).

    A multi-line message (several configuration problems) is shown as an indented list; lines
    are never re-wrapped so each problem stays on one line for copy/paste and grep.
    """
    first, *rest = message.splitlines() or [""]
    err_console.print(f"[bold red]error:[/bold red] [red]{escape(first)}[/red]", soft_wrap=True)
    for line in rest:
        err_console.print(f"  [red]{escape(line)}[/red]", soft_wrap=True)
    raise typer.Exit(code)


def find_config(config: Path | None) -> Path | None:
    """The configuration file to read: the one given, else ``./sipbox.toml`` if present."""
    if config is not None:
        return config
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_config_or_exit(config: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load settings for a command; on :class:`ConfigError` print it and exit with status 2."""
    path = find_config(config)
    try:
        return load_settings(path, os.environ if environ is None else environ)
    except ConfigError as exc:
        where = f" ({path})" if path is not None and exc.key is not None else ""
        fail(f"invalid configuration{where}:\n{exc}", code=2)


# --------------------------------------------------------------------------------------------
# REST API client for the administrative sub-commands
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """The API could not be reached or answered with an error; ``str()`` is user-facing."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ApiClient:
    """A small synchronous client for the sipbox REST API, used by the CLI sub-commands.

    The token travels as ``Authorization: Bearer <token>``. Build it with :meth:`resolve`, which
    applies the precedence every command shares: explicit option, then environment variable
    (``SIPBOX_API_URL``/``SIPBOX_TOKEN``, handled by the Typer options), then the configuration
    file (``http://<api.listen>`` and ``<server.state_dir>/admin-token``).
    """

    base_url: str
    token: str | None = None
    timeout: float = 10.0

    @classmethod
    def resolve(
        cls,
        *,
        api_url: str | None = None,
        token: str | None = None,
        config: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ApiClient:
        """Find the API URL and token; read the configuration only for what is missing.

        ``environ`` defaults to ``os.environ`` and is consulted for ``SIPBOX_API_URL``,
        ``SIPBOX_TOKEN`` (for callers that bypass the Typer options) and setting overrides.

        Raises:
            ConfigError: the configuration file was needed and is invalid.
        """
        env = os.environ if environ is None else environ
        api_url = api_url or env.get("SIPBOX_API_URL") or None
        token = token or env.get("SIPBOX_TOKEN") or None
        if api_url is None or token is None:
            settings = load_settings(find_config(config), env)
            if api_url is None:
                api_url = f"http://{_connectable(settings.api.listen)}"
            if token is None:
                token = _read_token(settings.server.state_dir / TOKEN_FILE)
        return cls(base_url=api_url.rstrip("/"), token=token)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON body (``None`` for an empty body).

        Raises:
            ApiError: connection failure or a non-2xx answer (the message includes the API's
                ``detail`` when it gives one).
        """
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = f"{self.base_url}/{path.lstrip('/')}"
        try:
            with httpx.Client(timeout=self.timeout, headers=headers) as client:
                response = client.request(method, url, json=json, params=params)
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach the sipbox API at {self.base_url} ({exc}); "
                "is `sipbox serve` running? (see --api-url)"
            ) from None
        if response.is_error:
            raise ApiError(_error_text(response), status=response.status_code)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """``GET path``; see :meth:`request`."""
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> Any:
        """``POST path`` with a JSON body; see :meth:`request`."""
        return self.request("POST", path, json=json)

    def put(self, path: str, json: Any = None) -> Any:
        """``PUT path`` with a JSON body; see :meth:`request`."""
        return self.request("PUT", path, json=json)

    def patch(self, path: str, json: Any = None) -> Any:
        """``PATCH path`` with a JSON body; see :meth:`request`."""
        return self.request("PATCH", path, json=json)

    def delete(self, path: str) -> Any:
        """``DELETE path``; see :meth:`request`."""
        return self.request("DELETE", path)


def _connectable(listen: str) -> str:
    """Turn a listen address into one a client can connect to (wildcards -> loopback)."""
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "[::]":
        host = "[::1]"
    return f"{host}:{port}"


def _read_token(path: Path) -> str | None:
    """The admin token written by the server, or ``None`` when it does not exist (yet)."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ApiError(f"cannot read the API token file {path}: {exc}") from None


def _error_text(response: httpx.Response) -> str:
    detail: Any = None
    try:
        body = response.json()
        detail = body.get("detail") if isinstance(body, dict) else body
    except ValueError:
        detail = response.text.strip() or None
    status = f"{response.status_code} {response.reason_phrase}".strip()
    if response.status_code == 401:
        status += " (check --token / SIPBOX_TOKEN)"
    return f"API error {status}: {detail}" if detail else f"API error {status}"


def api_client_or_exit(api_url: str | None, token: str | None, config: Path | None) -> ApiClient:
    """:meth:`ApiClient.resolve` for a command: configuration problems print and exit 2."""
    try:
        return ApiClient.resolve(api_url=api_url, token=token, config=config)
    except ConfigError as exc:
        fail(str(exc), code=2)
    except ApiError as exc:
        fail(str(exc))


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


@app.command()
def serve(config: ConfigOption = None) -> None:
    """Run the SIP server until Ctrl-C or SIGTERM."""
    path = find_config(config)
    settings = load_config_or_exit(path)
    if path is None:
        err_console.print(
            f"[dim]No {DEFAULT_CONFIG} here; using built-in defaults "
            "(see docs/configuration.md).[/dim]"
        )
    else:
        err_console.print(f"[dim]Configuration: {escape(str(path))}[/dim]")
    from sipbox.app import serve as run_server  # the whole stack: import only when serving

    run_server(settings)


@app.command()
def version() -> None:
    """Print the sipbox version."""
    console.print(f"sipbox {__version__}", highlight=False)


def main() -> None:
    """Console-script entry point (``sipbox`` in ``pyproject.toml``)."""
    app()
