"""``sipbox group ...`` and ``sipbox user forward``: ringing/hunting groups and forwarding
(issue 4), through the REST API like every administrative command.

Kept out of ``cli.py`` (which several features extend) and registered on its apps when
``cli.py`` imports this module at its end.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from sipbox.cli import (
    ApiUrlOption,
    ConfigOption,
    JsonOption,
    TokenOption,
    _call,
    _print_json,
    _segment,
    _yes_no,
    api_client_or_exit,
    app,
    console,
    fail,
    user_app,
)

__all__ = ["group_app"]

group_app = typer.Typer(help="Ringing and hunting groups.", no_args_is_help=True)
app.add_typer(group_app, name="group")

STRATEGIES = ("ring-all", "sequential", "circular")


def _members(text: str) -> list[Any]:
    """``1001,1002:15,1003`` -> ["1001", {"number": "1002", "timeout": 15}, "1003"]."""
    out: list[Any] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        number, sep, timeout = item.partition(":")
        if sep:
            if not timeout.isdigit():
                fail(f"--members: {item!r}: write NUMBER or NUMBER:SECONDS", code=2)
            out.append({"number": number, "timeout": int(timeout)})
        else:
            out.append(number)
    return out


def _member_text(group: dict[str, Any]) -> str:
    return ", ".join(
        m["number"] + (f" ({m['timeout']} s)" if m["timeout"] else "") for m in group["members"]
    )


def _show(group: dict[str, Any], verb: str = "") -> None:
    table = Table(box=box.SIMPLE, show_header=False, title=verb or None)
    table.add_column("field", style="bold")
    table.add_column("value")
    timeout = group["ring_timeout"]
    rows = [
        ("number", group["number"]),
        ("name", group["name"] or "-"),
        ("strategy", group["strategy"]),
        ("ring timeout", f"{timeout} s" if timeout else "default ([calls] ring_timeout)"),
        ("members", _member_text(group) or "-"),
        ("no answer", group["no_answer_destination"] or "hang up (480)"),
        ("completed elsewhere", None),
        ("skip busy members", None),
        ("last answered", group.get("last_answered") or "-"),
    ]
    for name, value in rows:
        if value is None:
            flag = group["completed_elsewhere" if name.startswith("completed") else "skip_busy"]
            table.add_row(name, _yes_no(flag))
        else:
            table.add_row(name, escape(str(value)))
    console.print(table)


StrategyOption = Annotated[
    str | None,
    typer.Option("--strategy", "-s", help="ring-all, sequential or circular."),
]
TimeoutOption = Annotated[
    int | None,
    typer.Option("--timeout", "-t", help="Seconds the group rings / each member's turn."),
]
NoAnswerOption = Annotated[
    str | None,
    typer.Option("--no-answer", help="User or group that gets unanswered calls ('' = 480)."),
]
MembersOption = Annotated[
    str | None,
    typer.Option("--members", "-m", help="Comma-separated users in order; NUMBER:SECONDS."),
]


def _options(
    strategy: str | None,
    timeout: int | None,
    no_answer: str | None,
    completed_elsewhere: bool | None,
    skip_busy: bool | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if strategy is not None:
        if strategy not in STRATEGIES:
            fail(f"--strategy must be one of {', '.join(STRATEGIES)}", code=2)
        body["strategy"] = strategy
    if timeout is not None:
        body["ring_timeout"] = timeout or None
    if no_answer is not None:
        body["no_answer_destination"] = no_answer or None
    if completed_elsewhere is not None:
        body["completed_elsewhere"] = completed_elsewhere
    if skip_busy is not None:
        body["skip_busy"] = skip_busy
    return body


CompletedOption = Annotated[
    bool | None,
    typer.Option(
        "--completed-elsewhere/--no-completed-elsewhere",
        help='Losing phones get Reason "Call completed elsewhere" (default on).',
    ),
]
SkipBusyOption = Annotated[
    bool | None,
    typer.Option("--skip-busy/--ring-busy", help="Skip members already in a call (default)."),
]


@group_app.command("add")
def group_add(
    number: Annotated[str, typer.Argument(help="The group number (600).")],
    members: MembersOption = None,
    strategy: StrategyOption = None,
    timeout: TimeoutOption = None,
    name: Annotated[str, typer.Option("--name", "-n", help="A name to show.")] = "",
    no_answer: NoAnswerOption = None,
    completed_elsewhere: CompletedOption = None,
    skip_busy: SkipBusyOption = None,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a group: `sipbox group add 600 --members 1001,1002,1003 --strategy ring-all`."""
    client = api_client_or_exit(api_url, token, config)
    body: dict[str, Any] = {"number": number, "name": name}
    body.update(_options(strategy, timeout, no_answer, completed_elsewhere, skip_busy))
    if members is not None:
        body["members"] = _members(members)
    group = _call(client, "POST", "/groups", json=body)
    if json_output:
        _print_json(group)
    else:
        _show(group, f"created group {group['number']}")


@group_app.command("set")
def group_set(
    number: Annotated[str, typer.Argument(help="The group number.")],
    members: MembersOption = None,
    strategy: StrategyOption = None,
    timeout: Annotated[
        int | None, typer.Option("--timeout", "-t", help="Seconds; 0 = the default.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n")] = None,
    no_answer: NoAnswerOption = None,
    completed_elsewhere: CompletedOption = None,
    skip_busy: SkipBusyOption = None,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Change a group (only the options given; --members replaces the list)."""
    client = api_client_or_exit(api_url, token, config)
    body = _options(strategy, timeout, no_answer, completed_elsewhere, skip_busy)
    if name is not None:
        body["name"] = name
    if members is not None:
        body["members"] = _members(members)
    group = _call(client, "PATCH", f"/groups/{_segment(number)}", json=body)
    if json_output:
        _print_json(group)
    else:
        _show(group, f"changed group {group['number']}")


@group_app.command("list")
def group_list(
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """List groups with their members."""
    client = api_client_or_exit(api_url, token, config)
    body = _call(client, "GET", "/groups")
    if json_output:
        _print_json(body)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Number", "Name", "Strategy", "Timeout", "Members", "No answer"):
        table.add_column(column, no_wrap=column != "Members")
    for g in body["groups"]:
        table.add_row(
            escape(g["number"]),
            escape(g["name"]),
            g["strategy"],
            f"{g['ring_timeout']} s" if g["ring_timeout"] else "-",
            escape(_member_text(g)),
            escape(g["no_answer_destination"] or "480"),
        )
    console.print(table)
    console.print(f"[dim]{body['total']} group(s)[/dim]")


@group_app.command("show")
def group_show(
    number: Annotated[str, typer.Argument(help="The group number.")],
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Show one group."""
    client = api_client_or_exit(api_url, token, config)
    group = _call(client, "GET", f"/groups/{_segment(number)}")
    if json_output:
        _print_json(group)
    else:
        _show(group)


@group_app.command("rm")
def group_rm(
    number: Annotated[str, typer.Argument(help="The group number.")],
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete a group."""
    client = api_client_or_exit(api_url, token, config)
    _call(client, "DELETE", f"/groups/{_segment(number)}")
    console.print(f"deleted group [bold]{escape(number)}[/bold]", highlight=False)


def _target(value: str | None) -> str | None:
    """``off``/``none``/``''`` switch a forwarding off."""
    return None if value is None or value.lower() in ("", "off", "none", "-") else value


@user_app.command("forward")
def user_forward(
    number: Annotated[str, typer.Argument(help="The user number.")],
    busy: Annotated[str | None, typer.Option("--busy", help="Target when busy ('off').")] = None,
    no_answer: Annotated[
        str | None, typer.Option("--no-answer", help="Target after the ring timeout ('off').")
    ] = None,
    unreachable: Annotated[
        str | None, typer.Option("--unreachable", help="Target when offline ('off').")
    ] = None,
    unconditional: Annotated[
        str | None, typer.Option("--unconditional", help="Forward every call ('off').")
    ] = None,
    dnd: Annotated[str | None, typer.Option("--dnd", help="Do not disturb: on or off.")] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Switch every forwarding and DND off.")
    ] = False,
    json_output: JsonOption = False,
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Show or set a user's call forwarding and do-not-disturb (only the options given
    change): `sipbox user forward 1001 --busy 1002 --no-answer 1003 --dnd off`."""
    client = api_client_or_exit(api_url, token, config)
    change: dict[str, Any] = {}
    for key, value in (
        ("busy", busy), ("no_answer", no_answer), ("unreachable", unreachable),
        ("unconditional", unconditional),
    ):  # fmt: skip
        if value is not None:
            change[key] = _target(value)
    if dnd is not None:
        if dnd.lower() not in ("on", "off"):
            fail("--dnd must be on or off", code=2)
        change["dnd"] = dnd.lower() == "on"
    path = f"/users/{_segment(number)}"
    if clear:
        user = _call(client, "PATCH", path, json={"forwarding": None})
    elif change:
        user = _call(client, "PATCH", path, json={"forwarding": change})
    else:
        user = _call(client, "GET", path)
    if json_output:
        _print_json(user["forwarding"])
        return
    fwd = user["forwarding"]
    table = Table(box=box.SIMPLE, show_header=False, title=f"forwarding of {escape(number)}")
    table.add_column("when", style="bold")
    table.add_column("to")
    for key, label in (
        ("unconditional", "always"), ("busy", "busy"), ("no_answer", "no answer"),
        ("unreachable", "unreachable"),
    ):  # fmt: skip
        table.add_row(label, escape(fwd[key]) if fwd[key] else "[dim]off[/dim]")
    table.add_row("do not disturb", "[yellow]on[/yellow]" if fwd["dnd"] else "[dim]off[/dim]")
    console.print(table)
