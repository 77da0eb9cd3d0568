# Everything a fresh machine needs: `make demo` and `make test` do all set-up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench soak clean postgres tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	# badx12 (independent X12 envelope parser for the tests) pins click 7, which nothing else
	# allows; it only uses click for its own command line, so it goes in without its pins.
	$(BIN)/python -m pip install -q --no-deps 'badx12==0.2.2' 'dicttoxml>=1.7.4'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hub demo

# The suite needs PostgreSQL on 127.0.0.1:5432; start the local cluster if it is down.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || \
	  (command -v pg_ctlcluster >/dev/null && \
	   pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n 1) main start && \
	   for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done) || \
	  echo "PostgreSQL not available: PostgreSQL store tests will be reported as errors"

# promtool (Debian's prometheus package) checks the /metrics exposition and Prometheus config;
# headless chromium renders the dashboard in its test.
tools:
	@command -v promtool >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) || \
	  echo "promtool unavailable: metrics are checked with the client parser only"
	@command -v chromium >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) || \
	  echo "chromium unavailable: the dashboard rendering test is skipped"

test: $(STAMP) postgres tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy hub connectors schemas
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy hub connectors schemas

bench: $(STAMP) postgres
	$(BIN)/hub bench

# Kill -9 the roles round after round for as long as asked, then print what it proved.
SOAK_SECONDS ?= 3600
soak: $(STAMP) postgres
	$(BIN)/python tests/reliability/soak.py --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
