# The two commands a newcomer needs:
#   make run    installs into .venv and runs the gateway (embedded SQLite, demo models, demo key)
#   make test   installs into .venv and runs lint, type checks and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check unit bench protos clean

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

test: check
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench.decide_bench

protos: $(STAMP)
	PATH=$(BIN):$$PATH ./scripts/generate-protos.sh

clean:
	rm -rf $(VENV) build *.egg-info
