# One command each on a fresh machine: `make run` (the whole stack) and `make test`.
# Both create .venv and install the pinned requirements first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint jstest unit integration faults multihost bench bench-peer venv clean

$(STAMP): requirements/base.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	touch $@

venv: $(STAMP)

# axe-core (npm registry, pinned in package-lock.json) for the browser tests' accessibility check.
AXE := tests/integration/node_modules/axe-core/axe.min.js
$(AXE): tests/integration/package.json tests/integration/package-lock.json
	npm ci --prefix tests/integration --no-audit --no-fund --loglevel=error
	touch $@

## make run: Redis (REDIS_URL or embedded), migrations, demo user, then web, workers and Flower.
## It reads only the environment (DJANGO_ENV_FILE empty) and writes .env for other shells.
run: $(STAMP)
	DJANGO_ENV_FILE= DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py runstack

## make test: lint and type checks, then every test (unit, integration, faults, browser, multi-host).
## The multi-host tests run beside the others, in a pytest session of their own: they mostly wait
## (failovers, heartbeats) in namespaces, Redis and PostgreSQL of their own, and test database 11
## of the test Redis keeps the two sessions apart. Their output follows the other session's.
test: $(STAMP) $(AXE) lint jstest
	@log=$$(mktemp /tmp/jobs-multihost-XXXXXX.log); \
	TEST_REDIS_DB=11 $(BIN)/python -m pytest -p no:cacheprovider -m multihost tests/multihost > $$log 2>&1 & mh=$$!; \
	$(BIN)/python -m pytest -m "not multihost"; rest=$$?; \
	wait $$mh; multihost=$$?; echo "--- the multi-host session (pytest -m multihost tests/multihost):"; cat $$log; rm -f $$log; \
	echo "make test: other tests exit $$rest, multi-host tests exit $$multihost"; \
	test $$rest -eq 0 -a $$multihost -eq 0

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_DEBUG=1 $(BIN)/mypy .

## make jstest: the page's pure ES modules (templates/static/jobs/) under node:test, no npm packages.
## The shell expands the file list: node 20 reads no globs, and node 22+ no longer searches a directory.
jstest:
	node --test tests/js/*.test.mjs

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not browser and not faults and not multihost"

integration: $(STAMP) $(AXE)
	$(BIN)/python -m pytest -m "integration or browser"

## make faults: the fault suite alone (processes killed, Redis restarted mid-job).
faults: $(STAMP)
	$(BIN)/python -m pytest -m faults -s

## make multihost: the multi-host tests alone (hosts as network namespaces; needs root and iproute2).
multihost: $(STAMP)
	$(BIN)/python -m pytest tests/multihost -m multihost -s

## make bench: end-to-end latency and throughput figures on the real stack.
bench: $(STAMP)
	$(BIN)/python -m tests.bench

## make bench-peer: the same jobs watched through the project and through celery-progress
## (its own venv, .bench/peer-venv, built on first use), CPU per 1,000 updates side by side.
bench-peer: $(STAMP)
	$(BIN)/python -m tests.bench_peer

clean:
	rm -rf $(VENV) .bench .pytest_cache .mypy_cache .ruff_cache tests/integration/node_modules
