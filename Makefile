# Everything runs inside .venv, made here with the machine's python3: the top-level package
# names (engine, staging, target, sandbox, tui) are generic and must never land in a shared
# interpreter.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deps-stamp
PYTEST_ARGS ?=

.PHONY: all demo test test-hard lint typecheck bench bench-quick sandbox clean deps

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"

# Reinstall only when the dependency list (or this install line) changes.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[postgres]" --group dev
	touch $(STAMP)

deps: $(STAMP)

## demo: the wizard against the built-in Cliniko sandbox, loading into ./clinic.db
demo: $(STAMP)
	$(BIN)/cliniko-switch demo

## lint: ruff, strict mypy on engine/staging/target/sandbox/tui, and the import contracts
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: lint, then the whole suite, the clinic store on SQLite and on a throwaway PostgreSQL
# (.ci/ensure-postgres installs PostgreSQL if missing); fails if any test fails or none ran
test: lint
	.ci/ensure-postgres
	$(BIN)/python -m pytest -q -m "not hard" $(PYTEST_ARGS)

## test-hard: the long reliability variants in full
test-hard: $(STAMP)
	.ci/ensure-postgres
	$(BIN)/python -m pytest -q -m "hard" $(PYTEST_ARGS)

## bench: benchmarks; results in bench/results/ and the README table. dlt, the alternative the
# download is compared with, is installed here for the benchmarks only (pyproject's bench group).
BENCH_DEPS = $(BIN)/python -c "import dlt, duckdb" 2>/dev/null \
	|| $(BIN)/python -m pip install --quiet --group bench

bench: $(STAMP)
	$(BENCH_DEPS)
	.ci/ensure-postgres
	$(BIN)/python -m bench

## bench-quick: the same in under five minutes
bench-quick: $(STAMP)
	$(BENCH_DEPS)
	.ci/ensure-postgres
	$(BIN)/python -m bench --quick

## sandbox: serve a small synthetic clinic on 127.0.0.1:8765
sandbox: $(STAMP)
	$(BIN)/cliniko-switch sandbox --size small --port 8765

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
