"""The pure SIP core: bytes and `now` in; messages, events, bytes and deadlines out.

Nothing in this package opens a socket, reads a clock or imports asyncio (a test checks it).
"""
