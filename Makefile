# ceilgrid: every target sets up what it needs on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install dev test test-fast stack-test bench train lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip uv
	@# Bytecode compiled now, not on first import: start-up stays at its figure even
	@# where Python may not write it (PYTHONDONTWRITEBYTECODE, a read-only tree).
	@$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[test]'
	@$(BIN)/python -m compileall -q ceilgrid_assets
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install ceilgrid with its test dependencies

dev: $(STAMP)  ## local Postgres + dagster dev on 127.0.0.1:3000 with example buildings in the inbox and a first training
	CEILGRID_FIRST_START_TRAINING=1 $(BIN)/python -m ceilgrid_assets.dev.server

test: $(STAMP)  ## the whole suite (starts Postgres, Docker, nginx, Chromium as needed)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)  ## the suite without slow, docker and browser tests
	$(BIN)/python -m pytest -q -m "not slow and not docker and not browser"

stack-test: $(STAMP)  ## only the full compose stack: images built here, docker compose up, driven through nginx, torn down
	$(BIN)/python -m pytest -q -m stack ceilgrid_assets_tests/deploy/test_deploy_stack.py

bench: $(STAMP)  ## layout benchmark: start-up, per room, buildings end to end, largest room (ORIGINAL=DIR adds the original pipeline)
	$(BIN)/python scripts/bench_layout.py $(if $(ORIGINAL),--original $(ORIGINAL))

train: $(STAMP)  ## train the default learned models into the cache .ceilgrid/models (not committed)
	$(BIN)/ceilgrid train --out .ceilgrid/models

lint: $(STAMP)  ## ruff (rules in pyproject.toml), formatting, and the import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ceilgrid
