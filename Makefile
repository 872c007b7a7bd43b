# sipbox developer commands. `make run` starts a server, `make test` runs every check CI runs.
# The virtualenv lives in .venv; it is (re)installed only when pyproject.toml changes, tracked
# by stamp files so repeated runs start instantly.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
CONFIG := $(wildcard sipbox.toml)

.DEFAULT_GOAL := help
.PHONY: help run test lint interop-tools bench clean native

help:
	@echo "make run    - start the server (uses ./sipbox.toml when present)"
	@echo "make test   - lint, type-check, import contracts, then pytest (PYTEST_ARGS=...)"
	@echo "make lint   - ruff, mypy (sipbox/sip), import-linter only"
	@echo "make bench  - load benchmarks in bench/"
	@echo "make native - compile the SIP core with mypyc (run and test do it when needed)"
	@echo "make clean  - remove the virtualenv and caches (keeps var/)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Runtime dependencies, and mypy/setuptools to compile the SIP core (see below).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[native]'
	@touch $@

# Runtime + test/lint tools (pytest, ruff, mypy, import-linter, ...).
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test]'
	@touch $@

# The per-message path compiled by mypyc (the SIP core, the guard and the dispatcher: the list
# is in sipbox/_native.py; about twice as fast, docs/PERFORMANCE.md), rebuilt when a source
# changes. Without a C compiler it is skipped and the same code runs as pure Python.
NATIVE_EXTRA := sipbox/_native.py sipbox/pbx/guard.py sipbox/pbx/dispatcher.py
NATIVE_STAMP := sipbox/_native_build.txt
$(NATIVE_STAMP): $(wildcard sipbox/sip/*.py) $(NATIVE_EXTRA) | $(VENV)/.installed
	$(BIN)/python scripts/build_native.py

native: $(NATIVE_STAMP)

run: $(VENV)/.installed native
	$(BIN)/sipbox serve $(if $(CONFIG),--config $(CONFIG))

# SIPp, sipsak, baresip, sipvicious and Kamailio for the interop tests. Installs them only when
# missing and running as root; otherwise explains how (the tests that need them then skip).
interop-tools:
	@./scripts/install-interop-tools.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check sipbox tests bench
	$(BIN)/mypy sipbox/sip $(NATIVE_EXTRA)
	$(BIN)/lint-imports

test: $(VENV)/.installed-test interop-tools lint native
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	@echo "Benchmarks (run one with: $(BIN)/python bench/<script>.py, or bench/<script>.sh;"
	@echo "each file's docstring or header says what it measures; figures in docs/PERFORMANCE.md):"
	@set -- bench/*.py bench/*.sh; if [ -e "$$1" ]; then printf '  %s\n' "$$@"; else echo "  (none yet)"; fi

clean:
	-$(if $(wildcard $(BIN)/python),$(BIN)/python scripts/build_native.py --clean)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts *.egg-info
	find sipbox tests bench -name __pycache__ -type d -prune -exec rm -rf {} +
