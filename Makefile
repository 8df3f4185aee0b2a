# queshot — every target sets itself up on a fresh machine.
# COUCHDB_URL points everything at a real CouchDB; without it the embedded
# pouchdb-server (pinned in package.json) is used.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The dev server's port: QUESHOT_DEV_PORT (as queshot reads it), or DEV_PORT=
# on make's command line; every target and every queshot command uses the same.
DEV_PORT ?= $(or $(QUESHOT_DEV_PORT),5989)
export QUESHOT_DEV_PORT := $(DEV_PORT)
# Where the dev server keeps its data, pid and log.
DEV_DIR ?= .devserver
DEVSERVER := $(BIN)/python -m queshot.devserver --state $(DEV_DIR)

# $(call with_dev_server,COMMAND): run COMMAND with a dev server answering on
# DEV_PORT (started in the background if none does, and left running for
# Fauxton); if COMMAND fails, a server this target started is stopped again
# (not when it was interrupted, 130: Ctrl-C ends `make dev`). With
# COUCHDB_URL, just COMMAND.
ifdef COUCHDB_URL
with_dev_server = $(1)
else
with_dev_server = started=$$($(DEVSERVER) --dir $(DEV_DIR)/data --background) || exit $$?; \
	$(1) || { status=$$?; [ "$$started" != started ] || [ $$status = 130 ] || $(DEVSERVER) --stop; \
	exit $$status; }
endif

.PHONY: setup dev-server dev-server-stop push-designdocs demo test test-quick lint bench dev

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# The dev server in the foreground (Ctrl-C stops it); data kept in .devserver/.
dev-server-stop:
	@$(DEVSERVER) --stop

dev-server: setup
ifdef COUCHDB_URL
	@echo "COUCHDB_URL is set: using $$($(BIN)/python -c 'import os; from queshot.couch import safe_url; print(safe_url(os.environ["COUCHDB_URL"]))'); no dev server started."
else
	$(DEVSERVER) --dir $(DEV_DIR)/data
endif

# Provision every database named by QUESHOT_DB (comma-separated; default queshot).
# Without COUCHDB_URL a dev server is started in the background if none answers.
push-designdocs: setup
	@$(call with_dev_server,$(BIN)/queshot push)

# The main job end to end; without COUCHDB_URL on the dev server (left running for Fauxton).
demo: setup
	@$(call with_dev_server,$(BIN)/queshot demo)

test: setup
	$(BIN)/pytest -q

# Everything but the race, chaos, outage and cluster runs (a few minutes less).
test-quick: setup
	$(BIN)/pytest -q -m "not slow and not cluster"

lint: setup
	$(BIN)/ruff check queshot tests
	$(BIN)/ruff format --check queshot tests

bench: setup
	$(BIN)/queshot bench

# The development loop (Ctrl-C ends it): a dev server (left running, as for
# push-designdocs), design docs pushed again on every save, and a worker whose
# handler (queshot/examples/hello.py) is re-imported on every save.
dev: setup
	@$(call with_dev_server,$(BIN)/queshot push && { \
	$(BIN)/queshot push --watch & pusher=$$!; \
	trap 'kill $$pusher 2>/dev/null' EXIT INT TERM; \
	$(BIN)/queshot worker queshot.examples.hello:handle --queue dev --reload; })
