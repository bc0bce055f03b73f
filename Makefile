# Python 3.12 or newer (set PYTHON=... to choose); uv comes from PyPI if missing.
PYTHON ?= $(shell scripts/find-python)
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
DEMO_PORT ?= 8000

.PHONY: install demo demo-cloudflare run test test-postgres test-django52 lint typecheck check samples clean

.tools/bin/uv:
	python3 -m pip install --quiet --target .tools/lib uv
	mkdir -p .tools/bin && ln -sf ../lib/bin/uv .tools/bin/uv

$(VENV)/.installed: pyproject.toml uv.lock | $(filter .tools/bin/uv,$(UV))
	$(UV) sync --frozen --all-extras --python "$(PYTHON)"
	touch $@

install: $(VENV)/.installed

# The same locked packages, but Django 5.2 LTS instead of the locked 6.x.
VENV52 := .venv-django52
$(VENV52)/.installed: pyproject.toml uv.lock | $(filter .tools/bin/uv,$(UV))
	$(UV) venv -q --allow-existing --python "$(PYTHON)" $(VENV52)
	$(UV) export -q --frozen --all-extras --no-hashes --no-emit-project \
		| grep -v '^django==' > $(VENV52)/requirements.txt
	$(UV) pip install -q -p $(VENV52) -r $(VENV52)/requirements.txt "django>=5.2,<6" -e .
	touch $@

# wrangler and miniflare, which run the Worker in workerd for its tests.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

demo: install
	$(PY) -m example_project.demo.run_demo

# The demo again, published to and pulled from the local Cloudflare Queues
# emulator through Cloudflare's REST API, as a site on Cloudflare would.
EMULATOR_PORT ?= 8787
demo-cloudflare: install
	@set -e; \
	$(MANAGE) cf_ingest_emulator --port $(EMULATOR_PORT) --queue ai-ingest \
		--token demo-emulator-token > var/emulator.log 2>&1 & emulator=$$!; \
	trap 'kill $$emulator 2>/dev/null' EXIT; \
	for _ in $$(seq 50); do grep -q "Point the site" var/emulator.log 2>/dev/null && break; sleep 0.2; done; \
	CF_API_BASE_URL=http://127.0.0.1:$(EMULATOR_PORT)/client/v4 \
	CF_ACCOUNT_ID=$$(sed -n 's/.*CF_ACCOUNT_ID=//p' var/emulator.log) \
	CF_AI_INGEST_QUEUE_ID=ai-ingest CF_API_TOKEN=demo-emulator-token \
	$(PY) -m example_project.demo.run_demo

run: install
	$(MANAGE) migrate --no-input
	$(MANAGE) runserver 127.0.0.1:$(DEMO_PORT)

test: install node_modules/.package-lock.json
	$(PY) -m pytest $(PYTEST_ARGS)

test-postgres: install node_modules/.package-lock.json
	DATABASE_ENGINE=postgresql $(PY) -m pytest $(PYTEST_ARGS)

test-django52: $(VENV52)/.installed node_modules/.package-lock.json
	$(VENV52)/bin/python -m pytest $(PYTEST_ARGS)

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
	rm -rf $(VENV) $(VENV52) .tools var .pytest_cache .mypy_cache .ruff_cache
