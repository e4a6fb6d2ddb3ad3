# The two commands that matter: `make run` (the studio on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run run-prod test bench chaos install install-dev migrate clean

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"' \
	  || { echo "Python 3.11 or newer is needed as '$(PYTHON)'."; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { echo "Could not create a virtualenv: on Debian/Ubuntu run 'apt-get install python3-venv'."; exit 1; }
	$(PIP) install -q -U pip

$(VENV)/.installed: requirements.txt | $(PY)
	$(PIP) install -q -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PIP) install -q -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# fal's JS client for tests/gateway/test_js_client.py, from the committed lock file; only where npm
# exists (without Node those tests skip, or fail under CI=true).
JS_TESTS := tests/gateway/js
NODE_DEPS := $(if $(shell command -v npm),$(JS_TESTS)/node_modules/.package-lock.json)

$(JS_TESTS)/node_modules/.package-lock.json: $(JS_TESTS)/package.json $(JS_TESTS)/package-lock.json
	npm ci --prefix $(JS_TESTS) --no-audit --no-fund
	@touch $@

migrate: install
	$(PY) manage.py migrate --noinput

# Web server on 127.0.0.1:$(PORT) (default 8000), the django-q2 worker cluster and — when no
# FAL_KEY / FAL_QUEUE_URL is set — the local fal simulator, in one foreground group (Ctrl-C stops all).
run: migrate
	$(PY) manage.py ensure_demo_user
	@if [ -z "$$FAL_KEY" ] && [ -z "$$FAL_QUEUE_URL" ]; then \
	  echo "No FAL_KEY: using the local fal simulator on 127.0.0.1:$${FALSIM_PORT:-8765}"; \
	  exec $(VENV)/bin/honcho start -p $${PORT:-8000} web worker falsim; \
	else \
	  exec $(VENV)/bin/honcho start -p $${PORT:-8000} web worker; \
	fi

# Production mode (docs/production.md): DEBUG defaults to false, so SECRET_KEY, ALLOWED_HOSTS and
# STUDIO_SIGNING_KEY must be set; the settings' own message says what is missing. Then migrate,
# collect static files (hashed and compressed, served by whitenoise) and run Procfile.prod — gunicorn
# on 127.0.0.1:$(PORT) (default 8000; BIND overrides), the worker cluster and, without FAL_KEY /
# FAL_QUEUE_URL, the local simulator — in one foreground group (Ctrl-C stops all).
run-prod: export DEBUG ?= false
run-prod: install
	@out=$$($(PY) manage.py check --deploy 2>&1) || { \
	  if printf '%s\n' "$$out" | grep -q 'ImproperlyConfigured: '; then \
	    printf '%s\n' "$$out" | sed -n 's/^.*ImproperlyConfigured: /Not starting in production mode: /p' >&2; \
	  else printf '%s\n' "$$out" >&2; fi; \
	  echo "See docs/production.md for the settings production needs." >&2; exit 1; }; \
	  printf '%s\n' "$$out"
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	@if [ -z "$$FAL_KEY" ] && [ -z "$$FAL_QUEUE_URL" ]; then \
	  echo "No FAL_KEY: using the local fal simulator on 127.0.0.1:$${FALSIM_PORT:-8765}"; \
	  exec $(VENV)/bin/honcho -f Procfile.prod start -p $${PORT:-8000} web worker falsim; \
	else \
	  exec $(VENV)/bin/honcho -f Procfile.prod start -p $${PORT:-8000} web worker; \
	fi

test: install-dev $(NODE_DEPS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install-dev
	$(PY) -m bench $(BENCH_ARGS)

# Reliability under faults, SIGKILLs and outages (chaos/__main__.py): N jobs (default 200; text-to-video,
# image-to-video and gateway jobs from fal's Python client) against the simulator with every fault kind
# at 10 %, worker processes killed every few seconds, fal locking the account, storage refusing writes
# and (on PostgreSQL, with --pg-ctl) a database restart; audits and exits non-zero on a lost, stuck or
# doubled job, an orphaned object, quota drift, a job failed by an outage or one slowed by more than
# 60 s. CHAOS_ARGS="--jobs 50 --no-webhooks" etc.
chaos: install-dev
	$(PY) -m chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm test-db*.sqlite3* media bench-report.json $(JS_TESTS)/node_modules
