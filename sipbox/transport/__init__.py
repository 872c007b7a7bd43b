"""The asyncio shell around the SIP core: UDP, TCP and TLS listeners and connections.

`TransportLayer` is the whole public surface (with `Listen` for listener specifications);
`tlscert` makes a development certificate and SSL contexts.
"""

from sipbox.transport.layer import Listen, ListenSpecLike, TransportLayer

__all__ = ["Listen", "ListenSpecLike", "TransportLayer"]
