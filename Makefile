# The two commands a newcomer needs:
#   make run    installs into .venv and runs the gateway (embedded SQLite, demo models, demo key)
#   make test   installs into .venv and runs lint, type checks and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check unit bench protos clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hitl-gateway demo

check: $(STAMP)
	$(BIN)/ruff check gateway reviewer_ui tests bench fuzz
	$(BIN)/ruff format --check gateway reviewer_ui tests bench fuzz
	$(BIN)/mypy

# Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium; its own browser
# download does not work offline) and the openssl command (the test time-stamp authority).
# Installed when missing and running as root.
SYSTEM_PACKAGES := chromium openssl
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "missing:$$missing (sudo apt-get install$$missing)" >&2; exit 1; fi; fi

# The store tests run against PostgreSQL too: scripts/ensure-postgres.sh starts one (as root, the
# system cluster; otherwise a private server in .pgdata/) unless HITL_TEST_POSTGRES_DSN names one.
test: system-deps check
	export HITL_TEST_POSTGRES_DSN="$${HITL_TEST_POSTGRES_DSN:-$$(./scripts/ensure-postgres.sh | tail -n 1)}" \
	  && $(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench.decide_bench

protos: $(STAMP)
	PATH=$(BIN):$$PATH ./scripts/generate-protos.sh

clean:
	rm -rf $(VENV) build *.egg-info
