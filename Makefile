# PeerLink: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PEERLINK_DATABASE_URL ?= sqlite+aiosqlite:///var/peerlink.db

.PHONY: run test lint typecheck pytest openapi bench bench-million soak clean sandbox browser

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) is needed (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/peerlink migrate
	$(BIN)/peerlink seed
	$(BIN)/peerlink up

test: browser lint typecheck pytest

# The browser tests drive Debian's headless Chromium through its chromedriver (tests/browser): installed
# here when missing, with sudo when not root. Nothing else is downloaded for them.
CHROMIUM_PACKAGES := chromium chromium-driver
CHROMIUM_BIN ?= /usr/bin/chromium
CHROMEDRIVER_BIN ?= /usr/bin/chromedriver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if [ -x $(CHROMIUM_BIN) ] && [ -x $(CHROMEDRIVER_BIN) ]; then :; else \
	  echo "installing $(CHROMIUM_PACKAGES) for the browser tests"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(CHROMIUM_PACKAGES); fi
	@test -x $(CHROMIUM_BIN) && test -x $(CHROMEDRIVER_BIN)

lint: $(STAMP)
	$(BIN)/ruff check service mappings tests
	$(BIN)/ruff format --check service mappings tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest-xdist: PYTEST_WORKERS processes (many tests wait on subprocesses and I/O, so more than the cores),
# a test file per unit of work (its module fixtures set up once), the end-to-end files first (conftest).
PYTEST_WORKERS ?= 3
pytest: $(STAMP) browser
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

sandbox: $(STAMP)
	$(BIN)/peerlink sandbox

openapi: $(STAMP)
	$(BIN)/peerlink openapi --out openapi/peerlink.json

# the million-resource bench and the 10-minute soak have targets of their own (long; need PostgreSQL)
LONG_BENCHES := bench_million bench_soak

bench: $(STAMP)
	for f in tests/bench/bench_*.py; do b=$$(basename $$f .py); case " $(LONG_BENCHES) " in *" $$b "*) continue;; esac; \
	  $(BIN)/python -m tests.bench.$$b || exit 1; done

bench-million: $(STAMP)
	$(BIN)/python -m tests.bench.bench_million $(BENCH_ARGS)

soak: $(STAMP)
	$(BIN)/python -m tests.bench.bench_soak $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
