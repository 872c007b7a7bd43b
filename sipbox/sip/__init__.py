"""The pure SIP core: bytes and `now` in; messages, events, bytes and deadlines out.

Nothing in this package opens a socket, reads a clock or imports asyncio (a test checks it).

The modules may be compiled by mypyc (`scripts/build_native.py`, run by the Makefile): the
extensions sit beside the sources and Python prefers them. This file is never compiled; it makes
sure a compiled module is only used when it was built from exactly the `.py` beside it. When the
sources changed since the build (an edit without `make`), or `SIPBOX_PURE_PYTHON=1` is set, every
`sipbox.sip` module is loaded from its `.py` instead. `NATIVE` tells which one runs.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["NATIVE", "source_digest"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_STAMP = os.path.join(_HERE, "_native_build.txt")
_EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def _sources() -> list[str]:
    return sorted(
        name for name in os.listdir(_HERE) if name.endswith(".py") and name != "__init__.py"
    )


def source_digest(directory: str = _HERE) -> str:
    """SHA-256 over the names and bytes of the compiled sources (`scripts/build_native.py`
    writes it to `_native_build.txt`; a mismatch means the extensions are stale)."""
    digest = hashlib.sha256()
    for name in _sources():
        digest.update(name.encode())
        digest.update(b"\0")
        with open(os.path.join(directory, name), "rb") as source:
            digest.update(source.read())
        digest.update(b"\0")
    return digest.hexdigest()


def _has_extensions() -> bool:
    return any(name.endswith(_EXTENSION_SUFFIXES) for name in os.listdir(_HERE))


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Loads `sipbox.sip.<module>` from its `.py`, ignoring a compiled extension beside it."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, module = fullname.rpartition(".")
        if package != __name__:
            return None
        source = os.path.join(_HERE, module + ".py")
        if not os.path.exists(source):
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def _choose() -> bool:
    if not _has_extensions():
        return False
    reason = None
    if os.environ.get("SIPBOX_PURE_PYTHON", "") not in ("", "0"):
        reason = ""
    else:
        try:
            with open(_STAMP, encoding="ascii") as stamp:
                built_from = stamp.read().strip()
        except OSError:
            built_from = ""
        if built_from != source_digest():
            reason = (
                "sipbox/sip: the compiled modules are older than the sources; using the "
                "sources (run `make` or scripts/build_native.py to rebuild)"
            )
    if reason is None:
        return True
    sys.meta_path.insert(0, _SourceFirst())
    if reason:
        warnings.warn(reason, RuntimeWarning, stacklevel=2)
    return False


#: True when the compiled (mypyc) modules are in use, False for the pure-Python sources.
NATIVE: bool = _choose()
