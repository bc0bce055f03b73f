# Python 3.12 or newer (set PYTHON=... to choose); uv comes from PyPI if missing.
PYTHON ?= $(shell scripts/find-python)
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
DEMO_PORT ?= 8000

.PHONY: install demo run test test-postgres lint typecheck check samples clean

.tools/bin/uv:
	python3 -m pip install --quiet --target .tools/lib uv
	mkdir -p .tools/bin && ln -sf ../lib/bin/uv .tools/bin/uv

$(VENV)/.installed: pyproject.toml uv.lock | $(filter .tools/bin/uv,$(UV))
	$(UV) sync --frozen --all-extras --python "$(PYTHON)"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m example_project.demo.run_demo

run: install
	$(MANAGE) migrate --no-input
	$(MANAGE) runserver 127.0.0.1:$(DEMO_PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-postgres: install
	DATABASE_ENGINE=postgresql $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy django_cf_ingest example_project

check: lint typecheck
	$(MANAGE) makemigrations --check --dry-run

samples: install
	$(PY) -m example_project.demo.samples

clean:
	rm -rf $(VENV) .tools var .pytest_cache .mypy_cache .ruff_cache
