"""Which modules mypyc compiles, and the guard that only ever runs a compiled module built from
exactly the source beside it.

The per-message path is compiled (`scripts/build_native.py`, run by `make run`/`make test` when a
source changed): the whole SIP core, plus the two pure PBX modules every request goes through,
the anti-scanning guard and the dispatcher. The extensions sit beside the sources and Python
would prefer them, so `sipbox/__init__.py` calls `choose()` before any of them is imported: when
the sources differ from the ones the build recorded (an edit without `make`), or
`SIPBOX_PURE_PYTHON=1` is set, a finder in front loads every compiled module from its `.py`.
This file itself is never compiled, and neither is any `__init__.py`.
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

__all__ = ["COMPILED_PACKAGES", "COMPILED_MODULES", "NATIVE", "choose", "source_digest", "sources"]

ROOT = os.path.dirname(os.path.abspath(__file__))  # the sipbox package directory
STAMP = os.path.join(ROOT, "_native_build.txt")
#: Packages compiled whole (every module but `__init__.py`).
COMPILED_PACKAGES = ("sip",)
#: Single modules compiled besides them: pure, type-checked strictly, on every request's path.
COMPILED_MODULES = ("pbx/guard.py", "pbx/dispatcher.py")
_EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def sources(root: str = ROOT) -> list[str]:
    """The compiled sources, as paths relative to the sipbox package directory."""
    found = [
        f"{package}/{name}"
        for package in COMPILED_PACKAGES
        for name in sorted(os.listdir(os.path.join(root, package)))
        if name.endswith(".py") and name != "__init__.py"
    ]
    return found + list(COMPILED_MODULES)


def source_digest(root: str = ROOT) -> str:
    """SHA-256 over the names and bytes of the compiled sources (the build records it in
    `_native_build.txt`; a mismatch at import means the extensions are stale)."""
    digest = hashlib.sha256()
    for relative in sources(root):
        digest.update(relative.encode())
        digest.update(b"\0")
        with open(os.path.join(root, relative), "rb") as source:
            digest.update(source.read())
        digest.update(b"\0")
    return digest.hexdigest()


def _module_name(relative: str) -> str:
    return "sipbox." + relative[: -len(".py")].replace("/", ".")


def _has_extensions() -> bool:
    return any(
        name.endswith(_EXTENSION_SUFFIXES)
        for package in COMPILED_PACKAGES
        for name in os.listdir(os.path.join(ROOT, package))
    )


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Loads each compiled module from its `.py`, ignoring the extension beside it."""

    def __init__(self) -> None:
        self.paths = {_module_name(r): os.path.join(ROOT, r) for r in sources()}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.paths.get(fullname)
        if source is None or not os.path.exists(source):
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def choose() -> bool:
    """Decide once, before any compiled module is imported; True when the extensions run."""
    if not _has_extensions():
        return False
    reason = None
    if os.environ.get("SIPBOX_PURE_PYTHON", "") not in ("", "0"):
        reason = ""
    else:
        try:
            with open(STAMP, encoding="ascii") as stamp:
                built_from = stamp.read().strip()
        except OSError:
            built_from = ""
        if built_from != source_digest():
            reason = (
                "sipbox: the compiled modules are older than the sources; using the sources "
                "(run `make` or scripts/build_native.py to rebuild)"
            )
    if reason is None:
        return True
    sys.meta_path.insert(0, _SourceFirst())
    if reason:
        warnings.warn(reason, RuntimeWarning, stacklevel=3)
    return False


#: True when the compiled (mypyc) modules are in use, False for the pure-Python sources.
NATIVE: bool = choose()
