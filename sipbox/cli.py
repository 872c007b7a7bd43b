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

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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
    """One line for a person: the status and the API's ``error`` message (naming the field)."""
    detail: Any = None
    try:
        body = response.json()
        detail = (body.get("error") or body.get("detail")) if isinstance(body, dict) else body
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


# --------------------------------------------------------------------------------------------
# Administrative commands: `sipbox user ...`, `sipbox reg ...`, `sipbox status`
# --------------------------------------------------------------------------------------------

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the API's JSON answer as is (for scripts).")
]

user_app = typer.Typer(help="Manage users (extensions).", no_args_is_help=True)
reg_app = typer.Typer(help="Live registrations.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(reg_app, name="reg")


def _call(client: ApiClient, method: str, path: str, **kwargs: Any) -> Any:
    """One API request; an API or connection error is printed and exits with status 1."""
    try:
        return client.request(method, path, **kwargs)
    except ApiError as exc:
        fail(str(exc))


def _print_json(body: Any) -> None:
    """The API's JSON, unmodified (indented), on stdout; nothing for an empty answer."""
    if body is not None:
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


def _yes_no(value: object) -> str:
    if value is None:
        return "[dim]-[/dim]"
    return "[green]yes[/green]" if value else "[red]no[/red]"


def _password_state(user: Mapping[str, Any]) -> str:
    if not user.get("has_password"):
        return "[dim]none[/dim]"
    return "[yellow]stale[/yellow]" if user.get("password_stale") else "set"


def _ask_password(number: str) -> str:
    """Prompt twice without echo; refuse an empty password."""
    password: str = typer.prompt(
        f"Password for {number}", hide_input=True, confirmation_prompt=True
    )
    if not password:
        fail("the password must not be empty (use --no-password for an IP-authorized user)")
    return password


def _user_line(user: Mapping[str, Any]) -> str:
    parts = [f"user [bold]{escape(str(user['number']))}[/bold]"]
    if user.get("display_name"):
        parts.append(f"({escape(str(user['display_name']))})")
    parts.append(f"password: {_password_state(user)}")
    if user.get("ip_auth"):
        parts.append(f"ip-auth: {escape(', '.join(user['ip_auth']))}")
    if user.get("static_contact"):
        parts.append(f"contact: {escape(str(user['static_contact']))}")
    return " ".join(parts)


@user_app.command("add")
def user_add(
    number: Annotated[str, typer.Argument(help="The user number (1001) or SIP user name.")],
    password: Annotated[
        str | None,
        typer.Option("--password", "-p", help="Password; prompted for when omitted."),
    ] = None,
    no_password: Annotated[
        bool,
        typer.Option("--no-password", help="No password: an IP-authorized user (--ip-auth)."),
    ] = False,
    name: Annotated[str, typer.Option("--name", "-n", help="Display name.")] = "",
    ip_auth: Annotated[
        list[str] | None,
        typer.Option("--ip-auth", help="Address or CIDR allowed without a password (repeat)."),
    ] = None,
    contact: Annotated[
        str | None,
        typer.Option("--contact", help="Static contact host:port[;transport=udp|tcp|tls]."),
    ] = None,
    nat: Annotated[str | None, typer.Option("--nat", help="auto, yes or no.")] = None,
    max_contacts: Annotated[
        int | None, typer.Option("--max-contacts", help="Most simultaneous registrations.")
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a user. Changes are live at once (no restart)."""
    if password is not None and no_password:
        fail("--password and --no-password contradict each other", code=2)
    client = api_client_or_exit(api_url, token, config)
    body: dict[str, Any] = {"number": number, "display_name": name}
    if not no_password:
        body["password"] = password if password is not None else _ask_password(number)
    if ip_auth:
        body["ip_auth"] = list(ip_auth)
    if contact is not None:
        body["static_contact"] = contact
    if nat is not None:
        body["nat"] = nat
    if max_contacts is not None:
        body["max_contacts"] = max_contacts
    if disabled:
        body["enabled"] = False
    created = _call(client, "POST", "/users", json=body)
    if json_output:
        _print_json(created)
    else:
        console.print(f"created {_user_line(created)}", highlight=False)


@user_app.command("list")
def user_list(
    limit: Annotated[int, typer.Option("--limit", help="Most users to show (1-1000).")] = 1000,
    offset: Annotated[int, typer.Option("--offset", help="Users to skip.")] = 0,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """List users with their live registration state."""
    client = api_client_or_exit(api_url, token, config)
    page = _call(client, "GET", "/users", params={"limit": limit, "offset": offset})
    if json_output:
        _print_json(page)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Number", "Name", "Enabled", "Password", "IP auth", "Contact", "Reg", "Up"):
        table.add_column(column, no_wrap=column in ("Number", "Reg", "Up"))
    for user in page["users"]:
        table.add_row(
            escape(user["number"]),
            escape(user["display_name"]),
            _yes_no(user["enabled"]),
            _password_state(user),
            escape(", ".join(user["ip_auth"])),
            escape(user["static_contact"] or ""),
            "-" if user["registrations"] is None else str(user["registrations"]),
            _yes_no(user["reachable"]),
        )
    console.print(table)
    shown = len(page["users"])
    console.print(
        f"[dim]{shown} of {page['total']} user(s)"
        + (f", from offset {offset}" if offset else "")
        + "[/dim]"
    )


@user_app.command("show")
def user_show(
    number: Annotated[str, typer.Argument(help="The user number.")],
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Show one user (never its password)."""
    client = api_client_or_exit(api_url, token, config)
    user = _call(client, "GET", f"/users/{_segment(number)}")
    if json_output:
        _print_json(user)
        return
    table = Table(box=box.SIMPLE, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in user.items():
        if key == "has_password":
            shown = _password_state(user)
        elif isinstance(value, bool) or value is None:
            shown = _yes_no(value)
        elif isinstance(value, list):
            shown = escape(", ".join(map(str, value))) or "[dim]-[/dim]"
        elif key in ("created_at", "updated_at"):
            shown = _when(value)
        else:
            shown = escape(str(value))
        if key != "password_stale":
            table.add_row("password" if key == "has_password" else key, shown)
    console.print(table)


@user_app.command("rm")
def user_rm(
    number: Annotated[str, typer.Argument(help="The user number.")],
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete a user and unregister its phones."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "DELETE", f"/users/{_segment(number)}")
    if json_output:
        _print_json(body)
    else:
        console.print(f"deleted user [bold]{escape(number)}[/bold]", highlight=False)


@user_app.command("passwd")
def user_passwd(
    number: Annotated[str, typer.Argument(help="The user number.")],
    password: Annotated[
        str | None,
        typer.Option("--password", "-p", help="New password; prompted for when omitted."),
    ] = None,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Set a user's password (also needed after the SIP domain changed)."""
    client = api_client_or_exit(api_url, token, config)
    if password is None:
        password = _ask_password(number)
    user = _call(client, "PATCH", f"/users/{_segment(number)}", json={"password": password})
    if json_output:
        _print_json(user)
    else:
        console.print(f"password set for {_user_line(user)}", highlight=False)


@reg_app.command("list")
def reg_list(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user.")] = None,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """List live registrations with source address, user agent and expiry."""
    client = api_client_or_exit(api_url, token, config)
    params = {"user": user} if user is not None else None
    body = _call(client, "GET", "/registrations", params=params)
    if json_output:
        _print_json(body)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Number", "Contact", "Source", "User agent", "Expires in"):
        table.add_column(column, no_wrap=column in ("Number", "Expires in"))
    for reg in body["registrations"]:
        table.add_row(
            escape(reg["number"]),
            escape(reg["contact"]),
            escape(reg["source"]),
            escape(reg["user_agent"] or ""),
            f"{reg['expires_in']} s",
        )
    console.print(table)
    console.print(f"[dim]{body['total']} registration(s)[/dim]")


@reg_app.command("rm")
def reg_rm(
    number: Annotated[str, typer.Argument(help="The user number.")],
    contact: Annotated[
        str | None, typer.Option("--contact", help="Only this Contact URI (as listed).")
    ] = None,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Unregister a user's phones (all of them, or one contact)."""
    client = api_client_or_exit(api_url, token, config)
    params = {"contact": contact} if contact is not None else None
    body = _call(client, "DELETE", f"/registrations/{_segment(number)}", params=params)
    if json_output:
        _print_json(body)
    else:
        console.print(
            f"removed {body['removed']} registration(s) of [bold]{escape(number)}[/bold]",
            highlight=False,
        )


# --------------------------------------------------------------------------------------------
# Anti-scanning: `sipbox ban ...`, `sipbox whitelist ...`, `sipbox blacklist ...`, `sipbox events`
# --------------------------------------------------------------------------------------------

ban_app = typer.Typer(help="Banned sources (anti-scanning guard).", no_args_is_help=True)
whitelist_app = typer.Typer(
    help="Addresses/networks never banned or rate-limited.", no_args_is_help=True
)
blacklist_app = typer.Typer(help="Addresses/networks always dropped.", no_args_is_help=True)
app.add_typer(ban_app, name="ban")
app.add_typer(whitelist_app, name="whitelist")
app.add_typer(blacklist_app, name="blacklist")


def _in(seconds: float | None) -> str:
    return "never" if seconds is None else _duration(max(0.0, seconds))


@ban_app.command("list")
def ban_list(
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """List the bans in force: source, reason, since, time left, hits, users tried."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "GET", "/bans")
    if json_output:
        _print_json(body)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Source", "Reason", "Since", "Ends in", "Hits", "Offence", "Users / UA"):
        table.add_column(column, no_wrap=column != "Users / UA")
    for ban in body["bans"]:
        extra = ", ".join(ban["users"])
        if ban.get("user_agent"):
            extra = f"{extra} ({ban['user_agent']})" if extra else ban["user_agent"]
        if ban.get("detail"):
            extra = f"{extra} {ban['detail']}".strip()
        table.add_row(
            escape(ban["source"]),
            escape(ban["reason"]),
            _when(ban["since"]),
            _in(ban["expires_in"]),
            str(ban["hit_count"]),
            str(ban["offence"]),
            escape(extra),
        )
    console.print(table)
    console.print(f"[dim]{body['total']} ban(s)[/dim]")


@ban_app.command("add")
def ban_add(
    address: Annotated[str, typer.Argument(help="IP address to ban (IPv6: its prefix).")],
    duration: Annotated[
        str | None,
        typer.Option("--for", help="How long: 30m, 1h, 2d (default: the configured ban_time)."),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="A note kept with the ban.")] = "",
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Ban a source by hand (refused for loopback and white-listed addresses)."""
    client = api_client_or_exit(api_url, token, config)
    payload: dict[str, Any] = {"source": address, "reason": reason}
    if duration is not None:
        payload["duration"] = duration
    ban = _call(client, "POST", "/bans", json=payload)
    if json_output:
        _print_json(ban)
    else:
        console.print(
            f"banned [bold]{escape(ban['source'])}[/bold] for {_in(ban['expires_in'])}",
            highlight=False,
        )


@ban_app.command("rm")
def ban_rm(
    address: Annotated[str, typer.Argument(help="Banned address or prefix, as listed.")],
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Lift a ban (also forgets the source's failure counts and offences)."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "DELETE", "/bans", params={"source": address})
    if json_output:
        _print_json(body)
    else:
        console.print(f"unbanned [bold]{escape(body['source'])}[/bold]", highlight=False)


def _address_list_commands(sub: typer.Typer, kind: str) -> None:
    """`list`, `add`, `rm` for one address list (same shape for both lists)."""

    @sub.command("list")
    def list_entries(
        json_output: JsonOption = False,
        api_url: ApiUrlOption = None,
        token: TokenOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Show the entries (from the configuration file and from the API)."""
        client = api_client_or_exit(api_url, token, config)
        body = _call(client, "GET", f"/{kind}")
        if json_output:
            _print_json(body)
            return
        table = Table(box=box.SIMPLE_HEAD)
        for column in ("Network", "From", "Note"):
            table.add_column(column)
        for entry in body["entries"]:
            table.add_row(escape(entry["network"]), entry["origin"], escape(entry["note"]))
        console.print(table)
        console.print(f"[dim]{body['total']} entr{'y' if body['total'] == 1 else 'ies'}[/dim]")

    @sub.command("add")
    def add_entry(
        network: Annotated[str, typer.Argument(help="Address or CIDR network.")],
        note: Annotated[str, typer.Option("--note", help="Why it is listed.")] = "",
        json_output: JsonOption = False,
        api_url: ApiUrlOption = None,
        token: TokenOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Add an address or network; live at once."""
        client = api_client_or_exit(api_url, token, config)
        entry = _call(client, "POST", f"/{kind}", json={"network": network, "note": note})
        if json_output:
            _print_json(entry)
        else:
            console.print(f"added {escape(entry['network'])} to the {kind}", highlight=False)

    @sub.command("rm")
    def rm_entry(
        network: Annotated[str, typer.Argument(help="Address or CIDR network, as listed.")],
        api_url: ApiUrlOption = None,
        token: TokenOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Remove an entry added through the API (config entries live in the config file)."""
        client = api_client_or_exit(api_url, token, config)
        _call(client, "DELETE", f"/{kind}", params={"network": network})
        console.print(f"removed {escape(network)} from the {kind}", highlight=False)


_address_list_commands(whitelist_app, "whitelist")
_address_list_commands(blacklist_app, "blacklist")


@app.command()
def events(
    limit: Annotated[int, typer.Option("--limit", help="Most events to show.")] = 50,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Show the latest security events (bans, unbans, flood blocks), newest first."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "GET", "/security-events", params={"limit": limit})
    if json_output:
        _print_json(body)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("When", "Event", "Source", "Reason", "Detail"):
        table.add_column(column, no_wrap=column != "Detail")
    for event in body["events"]:
        detail = ", ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in event["detail"].items()
            if k not in ("since", "until")
        )
        table.add_row(
            _when(event["at"]),
            escape(event["kind"]),
            escape(event["source"]),
            escape(event["reason"]),
            escape(detail),
        )
    console.print(table)


@app.command()
def status(
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Show the running server's version, uptime, listeners and counts."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "GET", "/status")
    if json_output:
        _print_json(body)
        return
    counts = body["counts"]
    table = Table(box=box.SIMPLE, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("version", escape(body["version"]))
    table.add_row("uptime", _duration(body["uptime_seconds"]))
    table.add_row("domain", escape(body["domain"]))
    listeners = ", ".join(
        f"{item['transport']}:{_hostport(item['host'], item['port'])}" for item in body["listeners"]
    )
    table.add_row("listening", escape(listeners) or "[dim]-[/dim]")
    table.add_row("users", str(counts["users"]))
    for key in ("registrations", "reachable", "calls", "bans"):
        value = counts.get(key)
        table.add_row(key, "[dim]-[/dim]" if value is None else str(value))
    for name, value in (body.get("sip_counters") or {}).items():
        table.add_row(f"sip {escape(name)}", str(value))
    console.print(table)


# --------------------------------------------------------------------------------------------
# Web admin accounts and API tokens: `sipbox admin passwd`, `sipbox token ...`
# --------------------------------------------------------------------------------------------

admin_app = typer.Typer(help="Web admin accounts (the login of the admin pages).")
token_app = typer.Typer(help="API tokens for scripts and monitoring.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
app.add_typer(token_app, name="token")


@admin_app.command("passwd")
def admin_passwd(
    user: Annotated[str, typer.Option("--user", "-u", help="Account name.")] = "admin",
    password: Annotated[
        str | None,
        typer.Option("--password", "-p", help="New password; prompted for when omitted."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Set a web admin's password (creates the account if it does not exist).

    Works on the database directly, not through the API, so it also rescues an administrator
    who lost both the password and the API token. Run it on the server machine with the
    server's configuration; sessions already logged in stay valid until they expire or the
    server restarts.
    """
    import asyncio

    settings = load_config_or_exit(config)
    if password is None:
        password = typer.prompt(
            f"New password for {user}", hide_input=True, confirmation_prompt=True
        )
    if len(password) < 8:
        fail("the password must have at least 8 characters")
    try:
        created = asyncio.run(_set_web_password(settings, user, password))
    except Exception as exc:  # the store's errors are worded for people
        fail(f"cannot set the password: {exc}")
    what = "created web admin" if created else "password changed for web admin"
    console.print(f"{what} [bold]{escape(user)}[/bold]", highlight=False)


async def _set_web_password(settings: Settings, username: str, password: str) -> bool:
    """Hash and store; True when the account was created."""
    from sipbox.api.web.accounts import hash_password
    from sipbox.storage import open_store

    state_dir = settings.server.state_dir
    url = settings.database.url or f"sqlite:///{state_dir}/sipbox.db"
    if not settings.database.url:
        state_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(url)
    try:
        await store.migrate()
        hashed = hash_password(password)
        if await store.get_web_admin(username) is None:
            await store.create_web_admin(username, hashed)
            return True
        await store.set_web_admin_password(username, hashed)
        return False
    finally:
        await store.close()


@token_app.command("list")
def token_list(
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """List API tokens (never the secrets themselves)."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "GET", "/tokens")
    if json_output:
        _print_json(body)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Id", "Name", "Role", "Created", "Last used", "State"):
        table.add_column(column)
    for item in body["tokens"]:
        table.add_row(
            str(item["id"]),
            escape(item["name"]),
            item["role"],
            _when(item["created_at"]),
            _when(item["last_used_at"]) if item["last_used_at"] else "[dim]never[/dim]",
            "[dim]revoked[/dim]" if item["revoked"] else "[green]active[/green]",
        )
    console.print(table)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who or what uses it (grafana, backup-script).")],
    role: Annotated[
        str, typer.Option("--role", help="read-only (GET only) or admin.")
    ] = "read-only",
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a token and print it (the only time it is shown)."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "POST", "/tokens", json={"name": name, "role": role})
    if json_output:
        _print_json(body)
        return
    err_console.print(
        f"created {body['role']} token [bold]{escape(body['name'])}[/bold] (id {body['id']}); "
        "store it now, it cannot be shown again:",
        highlight=False,
    )
    typer.echo(body["token"])


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `sipbox token list`).")],
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a token; it stops working at once."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "DELETE", f"/tokens/{token_id}")
    if json_output:
        _print_json(body)
    else:
        console.print(f"revoked token {body['id']} ({escape(body['name'])})", highlight=False)


def _segment(value: str) -> str:
    """Percent-encode a user number for use as one URL path segment."""
    from urllib.parse import quote

    return quote(value, safe="")


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _duration(seconds: float) -> str:
    """``93784`` -> ``1d 2h 3m 4s``: how long the server has been up, for a person."""
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    parts.append(f"{rest}s")
    return " ".join(parts)


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


# --------------------------------------------------------------------------------------------
# calls and call records (issue 4)
# --------------------------------------------------------------------------------------------

call_app = typer.Typer(help="Live calls.", no_args_is_help=True)
cdr_app = typer.Typer(help="Call records (CDR).", no_args_is_help=True)
app.add_typer(call_app, name="call")
app.add_typer(cdr_app, name="cdr")

CDR_COLUMNS = (
    "id", "start_time", "answer_time", "end_time", "duration", "billable", "caller_number",
    "caller_display", "caller_source", "caller_transport", "dialed_number", "destination",
    "disposition", "status", "reason", "hangup_by", "a_call_id", "b_call_id", "line",
)  # fmt: skip


@call_app.command("list")
def call_list(
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """List calls in progress (ringing or answered) with their legs."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "GET", "/calls")
    if json_output:
        _print_json(body)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Id", "State", "Caller", "Dialed", "Duration", "Legs"):
        table.add_column(column, no_wrap=column != "Legs")
    for item in body["calls"]:
        legs = ", ".join(f"{leg['target']} ({leg['state']})" for leg in item["legs"])
        table.add_row(
            escape(item["id"]),
            item["state"],
            escape(item["caller"]),
            escape(item["dialed"]),
            _duration(item["duration"]),
            escape(legs),
        )
    console.print(table)
    console.print(f"[dim]{body['total']} call(s)[/dim]")


@call_app.command("hangup")
def call_hangup(
    call_id: Annotated[str, typer.Argument(help="The call id (from `sipbox call list`).")],
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Hang up a call: BYE to both sides, or 480 to the caller while it rings."""
    client = api_client_or_exit(api_url, token, config)
    _call(client, "DELETE", f"/calls/{_segment(call_id)}")
    console.print(f"call {escape(call_id)} hung up")


def parse_since(text: str, now: float | None = None) -> float:
    """``1h``/``30m``/``2d``/``90s`` ago, an ISO date/time, or epoch seconds."""
    import datetime

    now = time.time() if now is None else now
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return now - float(text[:-1]) * units[text[-1]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        fail(f"--since: expected 1h, 30m, 2d, an ISO date or epoch seconds, got {text!r}", 2)


@cdr_app.command("list")
def cdr_list(
    since: Annotated[
        str | None, typer.Option("--since", help="1h, 2d, 2026-01-31, or epoch seconds.")
    ] = None,
    number: Annotated[str | None, typer.Option("--number", "-n", help="Only this number.")] = None,
    disposition: Annotated[str | None, typer.Option("--disposition", "-d")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Most records shown.")] = 50,
    json_output: JsonOption = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="CSV with a header line.")] = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """List call records, newest first."""
    client = api_client_or_exit(api_url, token, config)
    params: dict[str, Any] = {"limit": limit}
    if since is not None:
        params["since"] = parse_since(since)
    if number is not None:
        params["number"] = number
    if disposition is not None:
        params["disposition"] = disposition
    body = _call(client, "GET", "/cdr", params=params)
    records = body["records"]
    if json_output:
        _print_json(body)
        return
    if csv_output:
        import csv
        import sys

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CDR_COLUMNS)
        for record in records:
            writer.writerow(["" if record[c] is None else record[c] for c in CDR_COLUMNS])
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Start", "Caller", "Dialed", "Destination", "Disposition", "Status", "Bill"):
        table.add_column(column, no_wrap=column != "Destination")
    for r in records:
        table.add_row(
            _when(r["start_time"]),
            escape(r["caller_number"]),
            escape(r["dialed_number"]),
            escape(r["destination"] or ""),
            r["disposition"] or "in progress",
            str(r["status"] or ""),
            f"{r['billable']} s" if r["billable"] is not None else "",
        )
    console.print(table)
    console.print(f"[dim]{len(records)} of {body['total']} record(s)[/dim]")


def main() -> None:
    """Console-script entry point (``sipbox`` in ``pyproject.toml``)."""
    app()


# Sub-commands kept in modules of their own register themselves on the apps above.
from sipbox import cli_bulk as _cli_bulk  # noqa: E402, F401
from sipbox import cli_groups as _cli_groups  # noqa: E402, F401
from sipbox import cli_lines as _cli_lines  # noqa: E402, F401
