"""``sipbox line|trunk|prefix|route ...``: external lines, trunks, call prefixes and inbound
routes (issue 5), through the REST API like every administrative command.

Kept out of ``cli.py`` (which several features extend) and registered on its app when
``cli.py`` imports this module at its end. Lines and trunks are named by the person typing
(``sipbox line test ct-ims``); the API addresses them by id, so each command looks the name
up first. Field names and meanings are those of docs/lines.md; ``--set KEY=VALUE`` reaches
any field without a dedicated option (a carrier quirk is configuration, not code).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from sipbox.cli import (
    ApiClient,
    ApiUrlOption,
    ConfigOption,
    JsonOption,
    TokenOption,
    _call,
    _print_json,
    _when,
    _yes_no,
    api_client_or_exit,
    app,
    console,
    fail,
)

__all__ = ["line_app", "prefix_app", "route_app", "trunk_app"]

line_app = typer.Typer(help="External lines (carrier accounts sipbox registers to).",
                       no_args_is_help=True)  # fmt: skip
trunk_app = typer.Typer(help="SIP trunks (IP peers trusted by address).", no_args_is_help=True)
prefix_app = typer.Typer(help="Call prefixes: which numbers leave through which line/trunk.",
                         no_args_is_help=True)  # fmt: skip
route_app = typer.Typer(help="Inbound routes: DID -> local destination.", no_args_is_help=True)
app.add_typer(line_app, name="line")
app.add_typer(trunk_app, name="trunk")
app.add_typer(prefix_app, name="prefix")
app.add_typer(route_app, name="route")

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Any other field as KEY=VALUE (JSON values allowed; repeat)."),
]


def _fields(pairs: list[str] | None) -> dict[str, Any]:
    """``--set expires=600 --set uri_params=user=phone`` -> {"expires": 600, ...}: a value
    that parses as JSON (numbers, true/false, null, lists) is taken as such, else as text."""
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--set {pair!r}: write KEY=VALUE", code=2)
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _find(client: ApiClient, kind: str, name: str) -> dict[str, Any]:
    """The line/trunk called `name` (or with that id)."""
    body = _call(client, "GET", f"/{kind}s")
    for item in body[f"{kind}s"]:
        if item["name"] == name or str(item["id"]) == name:
            return dict(item)
    fail(f"no {kind} named {name!r}")


def _state(status: dict[str, Any]) -> str:
    state = str(status.get("state", "?"))
    colour = {"registered": "green", "up": "green", "failed": "red", "down": "red"}.get(state)
    return f"[{colour}]{state}[/{colour}]" if colour else state


# == lines =========================================================================================


@line_app.command("add")
def line_add(
    name: Annotated[str, typer.Argument(help="A name for the line (ct-ims).")],
    domain: Annotated[str, typer.Option("--domain", help="The carrier's SIP domain.")],
    account: Annotated[str, typer.Option("--account", help="User part of the line's AOR.")],
    password: Annotated[
        str | None, typer.Option("--password", "-p", help="Password; prompted for when omitted.")
    ] = None,
    proxy: Annotated[
        str | None,
        typer.Option("--proxy", help="HOST[:PORT][;transport=udp|tcp|tls] requests go to."),
    ] = None,
    auth_id: Annotated[
        str | None, typer.Option("--auth-id", help="Separate authorization user name.")
    ] = None,
    auth_id_with_domain: Annotated[
        bool,
        typer.Option("--auth-id-with-domain", help="Digest username as user@domain (ZTE IMS)."),
    ] = False,
    no_register: Annotated[
        bool, typer.Option("--no-register", help="Do not register (a static account).")
    ] = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    set_: SetOption = None,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Add an external line; it registers at once (unless --no-register)."""
    client = api_client_or_exit(api_url, token, config)
    if password is None:
        password = typer.prompt(f"Password of line {name}", hide_input=True)
    body: dict[str, Any] = {"name": name, "domain": domain, "account": account,
                            "password": password, **_fields(set_)}  # fmt: skip
    if proxy:
        body["proxy"] = proxy
    if auth_id:
        body["auth_id"] = auth_id
    if auth_id_with_domain:
        body["auth_id_with_domain"] = True
    if no_register:
        body["register"] = False
    if disabled:
        body["enabled"] = False
    created = _call(client, "POST", "/lines", json=body)
    if json_output:
        _print_json(created)
    else:
        console.print(f"created line [bold]{escape(name)}[/bold] ({escape(account)}@"
                      f"{escape(domain)}), state {_state(created['status'])}",
                      highlight=False)  # fmt: skip


@line_app.command("set")
def line_set(
    name: Annotated[str, typer.Argument(help="The line's name.")],
    set_: SetOption = None,
    password: Annotated[str | None, typer.Option("--password", "-p")] = None,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled")] = None,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Change fields of a line (``--set KEY=VALUE``, ``null`` removes); it re-registers."""
    client = api_client_or_exit(api_url, token, config)
    line = _find(client, "line", name)
    changes = _fields(set_)
    if password is not None:
        changes["password"] = password
    if enabled is not None:
        changes["enabled"] = enabled
    if not changes:
        fail("nothing to change (use --set KEY=VALUE, --password, --enabled/--disabled)", 2)
    changed = _call(client, "PATCH", f"/lines/{line['id']}", json=changes)
    if json_output:
        _print_json(changed)
    else:
        console.print(f"changed line [bold]{escape(name)}[/bold]", highlight=False)


@line_app.command("list")
def line_list(
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Lines with their registration state."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "GET", "/lines")
    if json_output:
        _print_json(body)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Name", "Account", "Proxy", "State", "Until / next try", "Last", "Calls"):
        table.add_column(column)
    for line in body["lines"]:
        st = line["status"]
        when = st.get("registered_until") if st["state"] == "registered" else st.get("next_attempt")
        last = f"{st['last_status']} {st['last_reason'] or ''}" if st.get("last_status") else ""
        table.add_row(
            escape(line["name"]),
            escape(f"{line['account']}@{line['domain']}"),
            escape(line.get("proxy") or "(DNS)"),
            _state(st),
            _when(when) if when else "",
            escape(last.strip()),
            f"{st.get('calls_in', 0)} in / {st.get('calls_out', 0)} out",
        )
    console.print(table)
    console.print(f"[dim]{body['total']} line(s)[/dim]")


@line_app.command("show")
def line_show(
    name: Annotated[str, typer.Argument(help="The line's name.")],
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Every field of a line and its live status (never the password)."""
    client = api_client_or_exit(api_url, token, config)
    line = _find(client, "line", name)
    if json_output:
        _print_json(line)
        return
    for key, value in line.items():
        if key != "status":
            console.print(f"{key}: {escape(str(value))}", highlight=False)
    for key, value in line["status"].items():
        console.print(f"status.{key}: {escape(str(value))}", highlight=False)


@line_app.command("rm")
def line_rm(
    name: Annotated[str, typer.Argument(help="The line's name.")],
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete a line (un-REGISTERs it)."""
    client = api_client_or_exit(api_url, token, config)
    line = _find(client, "line", name)
    _call(client, "DELETE", f"/lines/{line['id']}")
    console.print(f"deleted line [bold]{escape(name)}[/bold]", highlight=False)


@line_app.command("test")
def line_test(
    name: Annotated[str, typer.Argument(help="The line's name.")],
    spacing: Annotated[
        float | None,
        typer.Option("--spacing", help="Seconds between tries (default [lines] test_spacing)."),
    ] = None,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Try the registration forms (username with/without @domain, with/without the proxy)
    and say which one the carrier accepts. Exit status 1 when none is."""
    client = api_client_or_exit(api_url, token, config)
    line = _find(client, "line", name)
    slow = ApiClient(client.base_url, client.token, timeout=120.0)  # tries are spaced out
    report = _call(slow, "POST", f"/lines/{line['id']}/test", json={"spacing": spacing})
    if json_output:
        _print_json(report)
    else:
        for attempt in report["tries"]:
            mark = "[green]accepted[/green]" if attempt["accepted"] else "[red]refused[/red]"
            detail = f"{attempt['status'] or ''} {attempt['reason'] or ''}".strip()
            console.print(f'  username "{escape(attempt["username"])}" via '
                          f"{escape(attempt['via'])}: {mark} ({escape(detail)})",
                          highlight=False)  # fmt: skip
        console.print(escape(report["summary"]), highlight=False)
    if report["accepted"] is None:
        raise typer.Exit(1)


@line_app.command("register")
def line_register(
    name: Annotated[str, typer.Argument(help="The line's name.")],
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Register the line now (after a network change, or once the carrier fixed the
    account): clears the backoff instead of waiting for the next attempt."""
    client = api_client_or_exit(api_url, token, config)
    line = _find(client, "line", name)
    answer = _call(client, "POST", f"/lines/{line['id']}/register")
    if json_output:
        _print_json(answer)
        return
    state = answer["status"]["state"]
    console.print(f"line [bold]{escape(name)}[/bold]: {escape(state)}", highlight=False)


# == trunks ========================================================================================


@trunk_app.command("add")
def trunk_add(
    name: Annotated[str, typer.Argument(help="A name for the trunk.")],
    address: Annotated[
        list[str], typer.Option("--address", "-a", help="HOST[:PORT] of the peer (repeat).")
    ],
    transport: Annotated[str, typer.Option("--transport", help="udp, tcp or tls.")] = "udp",
    domain: Annotated[
        str | None, typer.Option("--domain", help="Request-URI host of calls out.")
    ] = None,
    keepalive: Annotated[
        float | None, typer.Option("--keepalive", help="OPTIONS interval in seconds (0: off).")
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    set_: SetOption = None,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a trunk: requests from its addresses are trusted without a password."""
    client = api_client_or_exit(api_url, token, config)
    body: dict[str, Any] = {"name": name, "addresses": list(address), "transport": transport,
                            **_fields(set_)}  # fmt: skip
    if domain:
        body["domain"] = domain
    if keepalive is not None:
        body["keepalive"] = keepalive
    if disabled:
        body["enabled"] = False
    created = _call(client, "POST", "/trunks", json=body)
    if json_output:
        _print_json(created)
    else:
        console.print(f"created trunk [bold]{escape(name)}[/bold] "
                      f"({escape(', '.join(address))})", highlight=False)  # fmt: skip


@trunk_app.command("list")
def trunk_list(
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Trunks with their keep-alive state."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "GET", "/trunks")
    if json_output:
        _print_json(body)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Name", "Addresses", "Transport", "Enabled", "State", "Calls"):
        table.add_column(column)
    for trunk in body["trunks"]:
        st = trunk["status"]
        table.add_row(
            escape(trunk["name"]),
            escape(", ".join(trunk["addresses"])),
            trunk.get("transport", "udp"),
            _yes_no(trunk["enabled"]),
            _state(st),
            f"{st.get('calls_in', 0)} in / {st.get('calls_out', 0)} out",
        )
    console.print(table)
    console.print(f"[dim]{body['total']} trunk(s)[/dim]")


@trunk_app.command("rm")
def trunk_rm(
    name: Annotated[str, typer.Argument(help="The trunk's name.")],
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete a trunk."""
    client = api_client_or_exit(api_url, token, config)
    trunk = _find(client, "trunk", name)
    _call(client, "DELETE", f"/trunks/{trunk['id']}")
    console.print(f"deleted trunk [bold]{escape(name)}[/bold]", highlight=False)


# == prefixes ======================================================================================


@prefix_app.command("add")
def prefix_add(
    pattern: Annotated[str, typer.Argument(help="Leading digits (9).")],
    strip: Annotated[int, typer.Option("--strip", help="Leading digits removed.")] = 0,
    prepend: Annotated[str, typer.Option("--prepend", help="Digits put in front.")] = "",
    line: Annotated[
        list[str] | None, typer.Option("--line", help="A line to use, in order (repeat).")
    ] = None,
    trunk: Annotated[
        list[str] | None, typer.Option("--trunk", help="A trunk to use after the lines (repeat).")
    ] = None,
    min_length: Annotated[int | None, typer.Option("--min-length")] = None,
    max_length: Annotated[int | None, typer.Option("--max-length")] = None,
    caller_id: Annotated[
        str | None, typer.Option("--caller-id", help="Caller number shown to the carrier.")
    ] = None,
    caller_prefix: Annotated[
        str | None, typer.Option("--caller-prefix", help="Put in front of the caller number.")
    ] = None,
    class_of_service: Annotated[
        str | None,
        typer.Option("--class", help="Class needed: none, local, national, international."),
    ] = None,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a call prefix (longest match wins; an exact local number beats any prefix)."""
    client = api_client_or_exit(api_url, token, config)
    targets = [f"line:{n}" for n in line or ()] + [f"trunk:{n}" for n in trunk or ()]
    body: dict[str, Any] = {"pattern": pattern, "strip": strip, "prepend": prepend,
                            "targets": targets}  # fmt: skip
    optional = {"min_length": min_length, "max_length": max_length, "caller_id": caller_id,
                "caller_prefix": caller_prefix, "class_of_service": class_of_service}  # fmt: skip
    body.update({k: v for k, v in optional.items() if v is not None})
    created = _call(client, "POST", "/prefixes", json=body)
    if json_output:
        _print_json(created)
    else:
        via = ", ".join(targets) or "every line, then every trunk"
        console.print(f"created prefix [bold]{escape(pattern)}[/bold] (id {created['id']}) "
                      f"strip {strip} via {escape(via)}", highlight=False)  # fmt: skip


@prefix_app.command("list")
def prefix_list(
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Call prefixes as the dial plan uses them (an implicit ``9`` when none is set)."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "GET", "/prefixes")
    if json_output:
        _print_json(body)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Id", "Pattern", "Length", "Strip", "Prepend", "Via", "Class", "Caller"):
        table.add_column(column)
    for p in body["prefixes"]:
        length = ""
        if p.get("min_length") is not None or p.get("max_length") is not None:
            length = f"{p.get('min_length') or ''}-{p.get('max_length') or ''}"
        table.add_row(
            "implicit" if p.get("implicit") else str(p["id"]),
            escape(p["pattern"]),
            length,
            str(p.get("strip", 0)),
            escape(p.get("prepend") or ""),
            escape(", ".join(p.get("targets") or []) or "all"),
            p.get("class_of_service") or "auto",
            escape(p.get("caller_id") or p.get("caller_prefix") or ""),
        )
    console.print(table)
    console.print(f"[dim]{body['total']} prefix(es)[/dim]")


@prefix_app.command("rm")
def prefix_rm(
    key: Annotated[str, typer.Argument(help="The prefix's id, or its pattern when unique.")],
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete a call prefix."""
    client = api_client_or_exit(api_url, token, config)
    found = [p for p in _call(client, "GET", "/prefixes")["prefixes"]
             if not p.get("implicit") and (str(p["id"]) == key or p["pattern"] == key)]  # fmt: skip
    if len(found) != 1:
        fail(f"{'no' if not found else 'more than one'} prefix {key!r} (give the id)")
    _call(client, "DELETE", f"/prefixes/{found[0]['id']}")
    console.print(f"deleted prefix [bold]{escape(found[0]['pattern'])}[/bold]", highlight=False)


# == inbound routes ================================================================================


@route_app.command("add")
def route_add(
    did: Annotated[str, typer.Argument(help="The called number (DID); 'default' for any.")],
    user: Annotated[
        str | None, typer.Option("--user", "--to", help="Local destination (user, group).")
    ] = None,
    source: Annotated[
        str, typer.Option("--source", help="Only from this line/trunk (default: any).")
    ] = "",
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Route calls in to a DID to a local number."""
    if not user:
        fail("--user NUMBER is required", code=2)
    client = api_client_or_exit(api_url, token, config)
    body = {"did": "" if did == "default" else did, "destination": user, "source": source}
    created = _call(client, "POST", "/inbound-routes", json=body)
    if json_output:
        _print_json(created)
    else:
        console.print(f"created route {escape(did)} -> [bold]{escape(user)}[/bold] "
                      f"(id {created['id']})", highlight=False)  # fmt: skip


@route_app.command("list")
def route_list(
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Inbound routes."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "GET", "/inbound-routes")
    if json_output:
        _print_json(body)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Id", "Source", "DID", "Destination"):
        table.add_column(column)
    for r in body["routes"]:
        table.add_row(str(r["id"]), escape(r["source"] or "any"), escape(r["did"] or "default"),
                      escape(r["destination"]))  # fmt: skip
    console.print(table)
    console.print(f"[dim]{body['total']} route(s)[/dim]")


@route_app.command("rm")
def route_rm(
    route_id: Annotated[int, typer.Argument(help="The route's id (see route list).")],
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete an inbound route."""
    client = api_client_or_exit(api_url, token, config)
    _call(client, "DELETE", f"/inbound-routes/{route_id}")
    console.print(f"deleted route {route_id}", highlight=False)
