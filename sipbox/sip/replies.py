"""Building responses to requests (RFC 3261 §8.2.6) — shared by the endpoint and the PBX.

A response copies the request's Via lines (in order, with the `received`/`rport` the endpoint
filled in), From, To, Call-ID and CSeq; a To-tag is added for anything but 100 when the request
had none. Raw header text is copied, never re-serialized, so it costs no parsing.
"""

from __future__ import annotations

from collections.abc import Iterable

from .headers import Headers
from .message import Request, Response


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response to `request`; `headers` are appended after the copied ones."""
    source = request.headers
    out = Headers()
    for value in source.get_all("via"):
        out.add("Via", value)
    for name in ("From", "To", "Call-ID", "CSeq"):
        found = source.get(name)
        if found is not None:
            value = found
            if name == "To" and to_tag and status != 100 and ";tag=" not in value.replace(" ", ""):
                value = f"{value};tag={to_tag}"
            out.add(name, value)
    for name, value in headers:
        out.add(name, value)
    if body and content_type:
        out.add("Content-Type", content_type)
    out.add("Content-Length", str(len(body)))
    return Response(status, reason, out, body)
