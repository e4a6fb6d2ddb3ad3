# The two commands that matter: `make run` (the studio on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test bench install install-dev migrate clean

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
	  exec $(VENV)/bin/honcho start web worker falsim; \
	else \
	  exec $(VENV)/bin/honcho start web worker; \
	fi

test: install-dev $(NODE_DEPS)
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install-dev
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 test-db*.sqlite3* media bench-report.json
