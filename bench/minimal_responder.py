"""The Python floor for OPTIONS: a uvloop UDP responder that copies Via/From/To/Call-ID/CSeq
into a 200 and nothing else. bench/options.sh runs it beside sipbox in the same run so the
ratio of CPU per request is measured on the same machine at the same moment.

Run: .venv/bin/python bench/minimal_responder.py HOST PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

_COPY = (b"via:", b"v:", b"from:", b"f:", b"to:", b"t:", b"call-id:", b"i:", b"cseq:")


class Responder(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        out = [b"SIP/2.0 200 OK"]
        for line in head[1:]:
            lower = line[:9].lower()
            if lower.startswith(_COPY):
                out.append(line + b";tag=floor" if lower.startswith((b"to:", b"t:")) else line)
        out.append(b"Content-Length: 0\r\n\r\n")
        self.transport.sendto(b"\r\n".join(out), addr)  # type: ignore[attr-defined]


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Responder, local_addr=(host, port))
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2])))
