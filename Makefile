# Every target works on a fresh clone with only Python 3.11+ installed: the
# first one to run creates .venv from the lock file.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/dev.lock pyproject.toml | cksum | cut -d' ' -f1)
PORT ?= 8000
LIVE_PORT ?= $(shell echo $$(( $(PORT) + 1 )))
export PORT LIVE_PORT

.PHONY: install run web live worker scheduler consume migrate test test-fast lint fmt lock bench clean \
	vendor screenshots

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.lock
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

## The whole system in the foreground: web server, live process, Celery worker, scheduler
## and the queue consumer.
## Ctrl-C stops them all.
run: migrate
	@rm -rf var/prometheus && mkdir -p var/prometheus
	@echo "Parley: web (API, admin, docs) on http://localhost:$(PORT)/"
	@echo "        live (long polls, event streams) on http://localhost:$(LIVE_PORT)/"
	@echo "        operator console on http://localhost:$(LIVE_PORT)/console/ (staff users: manage.py createsuperuser)"
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus PATH=$(CURDIR)/$(BIN):$$PATH \
		$(BIN)/honcho start --procfile Procfile

web: migrate
	$(BIN)/gunicorn --config config/gunicorn.py config.wsgi

## The live process alone: the ASGI server of requests that wait, on LIVE_PORT.
live: migrate
	$(BIN)/python -m config.live

worker: install
	$(BIN)/celery --app config worker --loglevel INFO

scheduler: install
	$(BIN)/celery --app config beat --loglevel INFO --schedule var/celerybeat-schedule

## The queue consumer alone: events from INTAKE_BROKER_URL (filesystem:// by default).
consume: migrate
	$(BIN)/python manage.py consume

## The whole suite, end-to-end tests included.
test: install
	$(BIN)/pytest

## Everything but the end-to-end tests.
test-fast: install
	$(BIN)/pytest -m "not e2e"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	$(BIN)/hadolint Dockerfile

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Regenerate the lock files from pyproject.toml.
lock: install
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 pyproject.toml -o requirements/main.lock
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --extra dev pyproject.toml -o requirements/dev.lock
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --extra dev --extra bench pyproject.toml -o requirements/bench.lock

## Load benchmark of the production configuration (PostgreSQL, Redis, gunicorn, Celery).
bench: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/bench.lock
	BENCH_PARTS="$(BENCH_PARTS)" $(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache staticfiles

## The console's browser files (htmx, Pico.css; axe-core for the tests), refreshed from the
## versions pinned in parley/console/npm. Needs npm; nothing of npm runs at run time.
CONSOLE_NPM := parley/console/npm
CONSOLE_VENDOR := parley/console/static/console/vendor
AXE_DIR := tests/e2e/axe
vendor:
	@rm -rf var/npm && mkdir -p var/npm $(CONSOLE_VENDOR) $(AXE_DIR)
	cp $(CONSOLE_NPM)/package.json $(CONSOLE_NPM)/package-lock.json $(CONSOLE_NPM)/.npmrc var/npm/
	cd var/npm && npm ci --ignore-scripts --silent
	cp var/npm/node_modules/htmx.org/dist/htmx.min.js $(CONSOLE_VENDOR)/
	cp var/npm/node_modules/htmx.org/LICENSE $(CONSOLE_VENDOR)/htmx.LICENSE
	cp var/npm/node_modules/@picocss/pico/css/pico.classless.min.css $(CONSOLE_VENDOR)/
	cp var/npm/node_modules/@picocss/pico/LICENSE.md $(CONSOLE_VENDOR)/pico.LICENSE.md
	cp var/npm/node_modules/axe-core/axe.min.js $(AXE_DIR)/
	cp var/npm/node_modules/axe-core/LICENSE $(AXE_DIR)/axe-core.LICENSE
	cd var/npm && node -p "Object.entries(require('./package-lock.json').packages) \
		.filter(([k]) => k).map(([k, v]) => k.slice(13) + ' ' + v.version + ' ' + v.license) \
		.join('\n')" > $(CURDIR)/$(CONSOLE_VENDOR)/VERSIONS.txt

## Screenshots of the console for the README (docs/), taken by its browser tests.
screenshots: install
	CONSOLE_SCREENSHOTS=$(CURDIR)/docs $(BIN)/pytest tests/e2e/test_console_browser.py -k screenshots -p no:randomly -q
