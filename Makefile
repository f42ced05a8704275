# `make test` is the whole check, on a machine with only python3 (>= 3.11), make and git:
# it makes .venv if missing, installs the project into it, then lints, type-checks and
# runs the tests. The tests start their own PostgreSQL server (see tests/conftest.py).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Installing again only when pyproject.toml changes keeps `make test` quick and offline.
INSTALLED := $(VENV)/.migcoord-dev-installed
PG15_BIN ?= /usr/lib/postgresql/15/bin

.PHONY: test lint typecheck test-pg15 demo

test: lint typecheck
	$(BIN)/pytest -q

# The README's tour on examples/alerting, on an embedded PostgreSQL (see examples/demo.sh).
demo: $(INSTALLED)
	bash examples/demo.sh

lint: $(INSTALLED)
	$(BIN)/ruff check migcoord tests

typecheck: $(INSTALLED)
	$(BIN)/mypy

# Debian and Ubuntu ship venv's pip bootstrap in a separate package; without it
# `python3 -m venv` fails half-way and leaves a .venv that breaks every later run, so
# ask first, and remove what a failed run made.
$(BIN)/python:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  version=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
	  echo "make: $(PYTHON) cannot create virtual environments (no venv/ensurepip module)." >&2; \
	  echo "  Debian/Ubuntu: apt-get install python3-venv (or python$$version-venv), then run make again" >&2; \
	  exit 2; }
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: '$(PYTHON) -m venv $(VENV)' failed; removed the half-made $(VENV)" >&2; exit 2; }

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

# The database tests again, against Debian's PostgreSQL 15 (the oldest server we test).
# The server is started through migcoord.local.embedded and stopped even when tests fail; its
# data goes to /dev/shm when there is one (see scratch_root in tests/conftest.py).
test-pg15: $(INSTALLED)
	@test -x '$(PG15_BIN)/postgres' || { \
	  echo "make test-pg15: no PostgreSQL 15 in $(PG15_BIN) (Debian: apt-get install postgresql-15)" >&2; \
	  exit 2; }
	@set -eu; \
	scratch=/dev/shm; [ -d "$$scratch" ] && [ -w "$$scratch" ] || scratch=$${TMPDIR:-/tmp}; \
	tmp=$$(mktemp -d -p "$$scratch"); chmod 755 "$$tmp"; \
	pgserver() { MIGCOORD_PG_BIN='$(PG15_BIN)' $(BIN)/python tests/pgserver_cli.py "$$1" "$$tmp/data"; }; \
	trap 'pgserver stop; rm -rf "$$tmp"' EXIT; \
	dsn=$$(pgserver start); \
	echo "PostgreSQL 15 test server: $$dsn"; \
	MIGCOORD_TEST_DSN="$$dsn" $(BIN)/pytest -q -m db
