# Every target sets up .venv first, so each works on a fresh clone with Python 3.11.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Arguments for `make run` / `make bench`, e.g. `make run ARGS="--source-url http://127.0.0.1:8000"`.
ARGS ?=

.PHONY: help setup run test lint typecheck unit bench bench-silver deploy-policy clean

help:
	@echo "make run    run the local pipeline on the bundled sample API (data in ./data)"
	@echo "make test   lint, type-check and run the whole test suite"
	@echo "make bench  the pipeline against a hand-written baseline (ORDERS=200000,1000000 by default; ARGS=--with-3m adds 3M)"
	@echo "make bench-silver  Silver orders against the hand-written job in alternating pairs (ARGS=\"--orders N --pairs P\")"
	@echo "make deploy-policy  regenerate docs/deploy-policy/<stack>.json from the resources each stack declares"

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found %s); set PYTHON=/path/to/python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/lakehouse run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy etl datasets local components tests benchmarks $(wildcard __main__.py)

unit: $(STAMP)
	$(BIN)/pytest $(ARGS)

test: lint typecheck unit

# Sizes, comma-separated; about 20 minutes by default on 2 cores (docs/benchmarks.md).
ORDERS ?= 200000,1000000
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --orders $(ORDERS) $(ARGS)

bench-silver: $(STAMP)
	$(BIN)/python -m benchmarks.silver_pairs $(ARGS)

# The CI deploy role's policy per stack (ARGS="staging" for other stacks); a test fails when it is stale.
deploy-policy: $(STAMP)
	$(BIN)/python -m tests.infra.deploy_policy $(ARGS)

clean:
	rm -rf $(VENV) data build .mypy_cache .ruff_cache .pytest_cache
