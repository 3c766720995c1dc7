# Quick start:  make demo   |   make test
# Python 3.11+ is the only prerequisite: uv is installed into .tools/ when it is missing,
# and every Python package comes from uv.lock.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
ARGS ?=
PYTEST_ARGS ?=

.PHONY: test test-fast demo sandbox lint typecheck check bench clean

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
	$(VENV)/bin/pytest -rs $(PYTEST_ARGS)

# The rules and views on fakes, in seconds (no sandbox, no SSH, no ZooKeeper); `make test`
# runs them too, beside every real-service test.
FAST_TESTS := tests/test_envfile.py tests/test_redact.py tests/test_runbook_units.py \
	tests/test_blocks.py tests/test_view.py tests/test_clusters.py tests/test_settings.py tests/test_host_read_values.py::test_backup_names_are_read_strictly \
	tests/test_host_read_values.py::test_a_name_holding_a_newline_stays_one_name \
	tests/test_host_read_values.py::test_markdown_fences_outlast_any_backticks_in_the_output \
	tests/test_packaged_hosts.py::test_active_tasks_are_counted_from_the_active_states_only \
	tests/test_state.py tests/test_events.py tests/test_no_step_ids.py

test-fast: $(VENV)/.synced
	$(VENV)/bin/pytest -q $(FAST_TESTS)

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
