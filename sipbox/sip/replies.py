"""Building responses to requests (RFC 3261 §8.2.6) — shared by the endpoint and the PBX.

A response copies the request's Via lines (in order, with the `received`/`rport` the endpoint
filled in), From, To, Call-ID and CSeq; a To-tag is added for anything but 100 when the request
had none. Raw header text is copied, never re-serialized, so it costs no parsing.
"""

from __future__ import annotations

from collections.abc import Iterable

from .headers import Headers, header_key
from .message import Request, Response

_COPIED = (("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq"))


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
    index = source.index()
    entries: list[list[str]] = [["via", "Via", e[2]] for e in index.get("via", ())]
    for key, name in _COPIED:
        found = index.get(key)
        if found:
            value = found[0][2]
            if key == "to" and to_tag and status != 100 and ";tag=" not in value.replace(" ", ""):
                value = f"{value};tag={to_tag}"
            entries.append([key, name, value])
    for name, value in headers:
        entries.append([header_key(name), name, value])
    if body and content_type:
        entries.append(["content-type", "Content-Type", content_type])
    entries.append(["content-length", "Content-Length", str(len(body))])
    out = Headers(entries)
    return Response(status, reason, out, body)
