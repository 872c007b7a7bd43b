"""``sipbox export`` and ``sipbox import FILE`` (issue 7, "Bulk"): the configuration as YAML.

Kept out of ``cli.py`` (which several features extend); registered on its app when ``cli.py``
imports this module at its end. Both go through the API (``GET /export``, ``POST /import``),
so the running server applies an import at once and with the API's rules.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer

from sipbox.cli import (
    ApiUrlOption,
    ConfigOption,
    TokenOption,
    _error_text,
    api_client_or_exit,
    app,
    console,
    fail,
)

__all__ = ["export_command", "import_command"]


def _send(method: str, path: str, api_url: str | None, token: str | None,
          config: Path | None, content: bytes | None = None) -> httpx.Response:  # fmt: skip
    client = api_client_or_exit(api_url, token, config)
    headers = {"Authorization": f"Bearer {client.token}"} if client.token else {}
    if content is not None:
        headers["Content-Type"] = "application/yaml"
    try:
        with httpx.Client(timeout=120, headers=headers) as http:
            response = http.request(method, f"{client.base_url}{path}", content=content)
    except httpx.HTTPError as exc:
        fail(
            f"cannot reach the sipbox API at {client.base_url} ({exc}); is `sipbox serve` running?"
        )
    if response.is_error:
        fail(_error_text(response))
    return response


@app.command("export")
def export_command(
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:
    """Print the whole configuration as YAML (users with HA1 hashes, groups, lines, trunks,
    prefixes, inbound routes, lists). Line/trunk passwords are not exported."""
    response = _send("GET", "/export", api_url, token, config)
    sys.stdout.write(response.text)


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A YAML file written by `sipbox export`", exists=True,
                                         dir_okay=False, readable=True)],
    api_url: ApiUrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
) -> None:  # fmt: skip
    """Apply a YAML file: all or nothing; an error names the line of the file."""
    response = _send("POST", "/import", api_url, token, config, content=file.read_bytes())
    counts = response.json().get("imported", {})
    done = ", ".join(f"{n} {section}" for section, n in counts.items() if n) or "nothing"
    console.print(f"Imported {done} from {file}.")
