"""RFC 4475 and RFC 5118 torture messages: every file of the shared manifests is a test case.

Expected outcomes follow the manifests: `valid` and `valid-but-unusual` messages parse and pass
the mandatory-header checks, and serialize to bytes that parse back to the same message;
`invalid` ones are refused with the status the RFC names (requests) or dropped (responses).
Where the RFC allows either refusing or tolerating (baddate), the test says so explicitly.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sipbox.sip.errors import RemoteProtocolError
from sipbox.sip.headers import header_key
from sipbox.sip.message import Message, Request
from sipbox.sip.parser import check_request, check_response, parse_message

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
RFC4475 = SHARED / "rfc4475"
RFC5118 = SHARED / "rfc5118"

# Files the RFC lets an element either refuse or accept: the set of acceptable outcomes.
TOLERATED = {"baddate.dat": {"ok", 400}}
# Status the RFC names for invalid requests (default 400); responses are dropped (None).
EXPECTED_STATUS = {"badvers.dat": 505}


def _manifest(folder: Path) -> list[dict[str, str]]:
    if not (folder / "MANIFEST.tsv").exists():
        return []
    with open(folder / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _outcome(data: bytes) -> tuple[object, Message | None]:
    try:
        message = parse_message(data)
        if isinstance(message, Request):
            check_request(message)
        else:
            check_response(message)  # type: ignore[arg-type]
    except RemoteProtocolError as exc:
        return exc.status_hint, None
    return "ok", message


def _load_5118(name: str) -> bytes:
    """RFC 5118 files have bare LF line ends and two lack the blank line; their README says a
    harness testing IPv6 (not framing) converts to CRLF and fixes Content-Length."""
    raw = (RFC5118 / name).read_bytes().replace(b"\n", b"\r\n")
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return raw + b"\r\n"
    lines = [
        f"Content-Length: {len(body)}".encode()
        if line.lower().startswith(b"content-length")
        else line
        for line in head.split(b"\r\n")
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _without_length(message: Message) -> list[tuple[str, str]]:
    return [(n, v) for n, v in message.headers if header_key(n) != "content-length"]


def _assert_round_trip(message: Message) -> None:
    again = parse_message(message.to_bytes())
    assert type(again) is type(message)
    if isinstance(message, Request):
        assert isinstance(again, Request)
        assert (again.method, again.uri_text) == (message.method, message.uri_text)
    assert _without_length(again) == _without_length(message)
    assert again.body == message.body
    assert [str(v) for v in again.vias] == [str(v) for v in message.vias]
    assert again.cseq == message.cseq and again.call_id == message.call_id


ROWS_4475 = _manifest(RFC4475)
ROWS_5118 = _manifest(RFC5118)


@pytest.mark.skipif(not ROWS_4475, reason="shared conformance data not found")
@pytest.mark.parametrize("row", ROWS_4475, ids=[r["file"] for r in ROWS_4475])
def test_rfc4475(row: dict[str, str]) -> None:
    data = (RFC4475 / row["file"]).read_bytes()
    outcome, message = _outcome(data)
    if row["file"] in TOLERATED:
        assert outcome in TOLERATED[row["file"]]
    elif row["class"] == "invalid":
        assert outcome != "ok", "an invalid message was accepted"
        if data.startswith(b"SIP/"):
            return  # a response: dropped, whatever the hint
        assert outcome == EXPECTED_STATUS.get(row["file"], 400)
    else:
        assert outcome == "ok", f"a {row['class']} message was refused with {outcome}"
        assert message is not None
        _assert_round_trip(message)


@pytest.mark.skipif(not ROWS_5118, reason="shared conformance data not found")
@pytest.mark.parametrize("row", ROWS_5118, ids=[r["file"] for r in ROWS_5118])
def test_rfc5118(row: dict[str, str]) -> None:
    outcome, message = _outcome(_load_5118(row["file"]))
    if row["class"] == "invalid":
        assert outcome == 400
    else:
        assert outcome == "ok"
        assert message is not None
        _assert_round_trip(message)


def test_specific_semantics() -> None:
    """Spot checks of what the RFC says each valid message means."""
    wsinv = parse_message((RFC4475 / "wsinv.dat").read_bytes())
    assert [v.transport for v in wsinv.vias] == ["UDP", "TCP", "UDP"]
    assert wsinv.from_.display == 'J Rosenberg \\"'
    assert wsinv.to.tag == "1918181833n" and wsinv.cseq.seq == 9
    assert isinstance(wsinv, Request) and wsinv.max_forwards == 68
    assert wsinv.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert wsinv.contacts[0].address is not None
    assert wsinv.contacts[0].address.params["q"] == "0.33"

    esc01 = parse_message((RFC4475 / "esc01.dat").read_bytes())
    assert isinstance(esc01, Request)
    assert esc01.uri.user_decoded() == "sips:user@example.com"  # type: ignore[union-attr]

    semi = parse_message((RFC4475 / "semiuri.dat").read_bytes())
    assert isinstance(semi, Request)
    assert semi.uri.user == "user;par=u%40example.net"  # type: ignore[union-attr]
    assert semi.uri.params == {}  # type: ignore[union-attr]

    dbl = parse_message((RFC4475 / "dblreq.dat").read_bytes())
    assert isinstance(dbl, Request) and dbl.method == "REGISTER" and dbl.body == b""

    c1 = parse_message((RFC4475 / "cparam01.dat").read_bytes())
    c2 = parse_message((RFC4475 / "cparam02.dat").read_bytes())
    a1, a2 = c1.contacts[0].address, c2.contacts[0].address
    assert a1 is not None and a2 is not None
    assert "unknownparam" in a1.params and "unknownparam" not in a1.uri.params  # type: ignore[union-attr]
    assert "unknownparam" in a2.uri.params  # type: ignore[union-attr]

    escnull = parse_message((RFC4475 / "escnull.dat").read_bytes())
    users = [c.address.uri.user for c in escnull.contacts if c.address]  # type: ignore[union-attr]
    assert users == ["%00", "%00%00"]

    mp = parse_message((RFC4475 / "mpart01.dat").read_bytes())
    assert b"\x00" in mp.body

    esc02 = parse_message((RFC4475 / "esc02.dat").read_bytes())
    assert isinstance(esc02, Request) and esc02.method == "RE%47IST%45R"
    assert len(esc02.contacts) == 2
