"""The pure SIP core: bytes and `now` in; messages, events, bytes and deadlines out.

Nothing in this package opens a socket, reads a clock or imports asyncio (a test checks it).
Its modules are compiled by mypyc when built (`sipbox/_native.py` says which modules, and makes
sure a stale build is never used); `NATIVE` tells whether the compiled modules run.
"""

from sipbox._native import NATIVE

__all__ = ["NATIVE"]
