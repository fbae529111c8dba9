# ringmaster: one entry point for people and CI.
SHELL := /bin/bash
PY ?= python3
UV_VERSION := 0.13.8
# Through the interpreter, not PATH: a freshly pip-installed script may have no shim yet (pyenv).
UV := $(PY) -m uv
VENV := .venv
BIN := $(VENV)/bin
SANDBOX_DIR ?= .sandbox

.PHONY: install lint typecheck layers unit test sandbox demo down pictures clean

## install: build .venv from nothing (idempotent) with every extra, plus the system packages the local stack needs,
## and the pinned unleash-server (npm ci into sandbox/unleash-server/node_modules, skipped when up to date).
install:
	@$(UV) --version 2>/dev/null | grep -q "$(UV_VERSION)" || $(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --all-extras --python $(PY) --quiet
	@bash scripts/install-system-deps.sh
	@$(BIN)/python -m sandbox.unleash install

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

layers:
	$(BIN)/lint-imports

## unit: the test suite, two files at a time (most tests wait on Temporal timers and servers, not CPU:
## two workers halve the wall time on 2 cores); PYTEST_ARGS= runs it in one process.
PYTEST_ARGS ?= -n 2 --dist loadfile
unit:
	$(BIN)/pytest $(PYTEST_ARGS)

## test: install, then ruff, mypy --strict, the layer rule, and the whole test suite.
test: install lint typecheck layers unit

## sandbox: start (or reuse) the whole local stack in $(SANDBOX_DIR): emulated clusters, traffic,
## Prometheus, a Temporal dev server with its UI, a worker on the current code; then `source $(SANDBOX_DIR)/env`.
sandbox: install
	$(BIN)/python -m sandbox up --dir $(SANDBOX_DIR)

## demo: `make sandbox`, then through the CLI a good release approved by a second person (four eyes)
## and promoted, and a bad one rolled back.
demo: sandbox
	$(BIN)/python -m sandbox.demo --dir $(SANDBOX_DIR)

## down: stop everything `make sandbox` or `make demo` started; no process or port is left behind.
down:
	-$(BIN)/python -m sandbox down --dir $(SANDBOX_DIR)

## pictures: docs/pictures/releases.png and release.png, taken from the Temporal UI of the sandbox in
## $(SANDBOX_DIR) by headless Chromium (Debian's `chromium`, which nothing here installs: the script
## says how). A running sandbox is left running; without one the demo runs there first and is stopped after.
pictures: install
	$(BIN)/python scripts/ui_pictures.py --dir $(SANDBOX_DIR)

clean: down
	rm -rf $(VENV) $(SANDBOX_DIR) .mypy_cache .ruff_cache .pytest_cache
