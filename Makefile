# Quick start:  make demo   |   make test
# Python 3.11+ is the only prerequisite: uv is installed into .tools/ when it is missing,
# and every Python package comes from uv.lock.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
ARGS ?=
PYTEST_ARGS ?=

.PHONY: test demo sandbox lint typecheck check bench clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --quiet
	@touch $@

test: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check --quiet .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: $(VENV)/.synced
	$(VENV)/bin/aurora-restore demo $(ARGS)

sandbox: $(VENV)/.synced
	$(VENV)/bin/aurora-restore sandbox --dir .sandbox $(ARGS)

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.synced
	$(VENV)/bin/mypy

bench: $(VENV)/.synced
	@for b in benchmarks/*.py; do $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
