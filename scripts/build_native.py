"""Compile the per-message path (the SIP core `sipbox/sip`, the guard and the dispatcher; the
list is in `sipbox/_native.py`) to C extension modules with mypyc, in place.

Why: these modules are checked by `mypy --strict`, so mypyc compiles them unchanged; the
compiled modules run the same code about twice as fast (see docs/PERFORMANCE.md). The Python
sources stay the truth:

- the extension modules are written next to the sources (`*.so`, git-ignored) and Python
  imports an extension before a `.py` of the same name;
- `sipbox/_native.py` (never compiled, run by `sipbox/__init__.py`) checks at import that the
  extensions were built from exactly the sources beside them (a hash written here to
  `sipbox/_native_build.txt`) and otherwise loads the `.py` files, with one warning;
  `SIPBOX_PURE_PYTHON=1` forces that;
- when no C compiler or no mypy is available the build is skipped with a message and the
  server runs the same code as pure Python.

Run: `.venv/bin/python scripts/build_native.py` (the Makefile does it when a source changes),
`--clean` removes the extensions (pure Python from then on).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sipbox"
sys.path.insert(0, str(ROOT))
os.environ["SIPBOX_PURE_PYTHON"] = "1"  # this process only reads the list and the hash
from sipbox import _native  # noqa: E402 (after the path and the environment are set)

STAMP = Path(_native.STAMP)


def sources() -> list[Path]:
    return [PACKAGE / relative for relative in _native.sources(str(PACKAGE))]


def clean() -> None:
    for pattern in ("*.so", "*.pyd"):
        for folder in {p.parent for p in sources()}:
            for built in folder.glob(pattern):
                built.unlink()
    STAMP.unlink(missing_ok=True)
    # Where the stamp lived while only sipbox/sip was compiled (an older build's leftover).
    (PACKAGE / "sip" / "_native_build.txt").unlink(missing_ok=True)


def _skipped() -> int:
    clean()  # extensions from an older build would be stale
    return 1 if os.environ.get("SIPBOX_REQUIRE_NATIVE") == "1" else 0


def build() -> int:
    try:
        from mypyc.build import mypycify
        from setuptools import Distribution
    except ImportError as exc:
        print(f"build_native: skipped, {exc.name} is not installed (pure Python is used)")
        return _skipped()
    if shutil.which(os.environ.get("CC", "cc")) is None:
        print("build_native: skipped, no C compiler (pure Python is used)")
        return _skipped()
    paths = sources()
    clean()
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="sipbox-native-") as work:
        extensions = mypycify(
            [str(p.relative_to(ROOT)) for p in paths],
            opt_level="3",
            group_name="sipbox.sip._native",
            target_dir=str(Path(work) / "c"),
        )
        dist = Distribution({"name": "sipbox-native", "ext_modules": extensions})
        command = dist.get_command_obj("build_ext")
        command.inplace = True  # type: ignore[attr-defined]
        command.build_temp = str(Path(work) / "temp")  # type: ignore[attr-defined]
        command.build_lib = str(Path(work) / "lib")  # type: ignore[attr-defined]
        dist.run_command("build_ext")
    STAMP.write_text(_native.source_digest(str(PACKAGE)) + "\n")  # what the import checks
    built = [p for folder in {p.parent for p in paths} for p in folder.glob("*.so")]
    print(f"build_native: compiled {len(paths)} modules ({len(built)} extensions)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled extensions")
    args = parser.parse_args()
    if args.clean:
        clean()
        print("build_native: removed the compiled extensions (pure Python is used)")
        return 0
    try:
        return build()
    except Exception as exc:  # a broken toolchain must not stop `make run`
        clean()
        print(f"build_native: failed ({exc}); pure Python is used", file=sys.stderr)
        # CI sets it: there the compiled core is what the tests must exercise.
        return 1 if os.environ.get("SIPBOX_REQUIRE_NATIVE") == "1" else 0


if __name__ == "__main__":
    sys.exit(main())
