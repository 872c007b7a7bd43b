"""The compiled per-message path (mypyc: the SIP core, the guard, the dispatcher; the list is in
sipbox/_native.py) and its pure-Python fallback.

The same sources run either way; these tests check that the switch is safe: CI must run the
compiled modules, a stale build is never used, `SIPBOX_PURE_PYTHON=1` forces the sources, and the
core's and the guard's unit tests also pass as pure Python (the main run exercises whichever is
installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sipbox.pbx.guard
import sipbox.sip
import sipbox.sip.parser
from sipbox import _native

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sipbox" / "sip"
PROBE = (
    "import sipbox.sip as s, sipbox.sip.parser as p, sipbox.pbx.guard as g, "
    "sipbox.pbx.dispatcher as d; "
    "print(s.NATIVE, p.__file__.endswith('.py'), g.__file__.endswith('.py'), "
    "d.__file__.endswith('.py'))"
)


def _compiled_present() -> bool:
    return any(PACKAGE.glob("*.so"))


def _probe(env_extra: dict[str, str], pythonpath: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SIPBOX_PURE_PYTHON"}
    env.update(PYTHONPATH=str(pythonpath), **env_extra)
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=pythonpath,
    )


def test_ci_runs_the_compiled_core() -> None:
    if os.environ.get("SIPBOX_REQUIRE_NATIVE") != "1" and not sipbox.sip.NATIVE:
        pytest.skip("the SIP core is not compiled here (make native; CI requires it)")
    assert sipbox.sip.NATIVE
    for module in (sipbox.sip.parser, sipbox.pbx.guard):
        assert not str(module.__file__).endswith(".py"), module.__file__
    for relative in _native.sources():  # every listed module has its extension
        stem = ROOT / "sipbox" / relative[: -len(".py")]
        assert list(stem.parent.glob(stem.name + ".*.so")), relative


def test_pure_python_switch_loads_the_sources() -> None:
    result = _probe({"SIPBOX_PURE_PYTHON": "1"})
    assert result.stdout.split() == ["False", "True", "True", "True"]
    assert "older than the sources" not in result.stderr


def test_a_stale_build_is_never_used(tmp_path: Path) -> None:
    if not _compiled_present():
        pytest.skip("no compiled modules to go stale (make native)")
    copy = tmp_path / "sipbox"
    shutil.copytree(ROOT / "sipbox", copy, ignore=shutil.ignore_patterns("__pycache__"))
    intact = _probe({}, tmp_path)
    assert intact.stdout.split() == ["True", "False", "False", "False"], intact.stderr
    with (copy / "pbx" / "guard.py").open("a") as source:  # one compiled module, any of them
        source.write("\n# an edit made after the build\n")
    stale = _probe({}, tmp_path)
    assert stale.stdout.split() == ["False", "True", "True", "True"]
    assert "older than the sources" in stale.stderr


def test_core_unit_tests_pass_as_pure_python() -> None:
    if not sipbox.sip.NATIVE:
        pytest.skip("this run already exercises the pure-Python core")
    env = {**os.environ, "SIPBOX_PURE_PYTHON": "1"}
    tests = [
        "tests/sip/test_conformance.py",
        "tests/sip/test_transaction.py",
        "tests/sip/test_endpoint.py",
        "tests/sip/test_digest.py",
        "tests/sip/test_framing.py",
        "tests/sip/test_dialog.py",
        "tests/pbx/test_guard.py",
        "tests/pbx/test_dispatcher.py",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *tests],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
