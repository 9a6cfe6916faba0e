# WattStream: every target CI runs too. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The venv is rebuilt whenever pyproject.toml changes.
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help install run test chaos lint bench bench-parts bench-peer up down status migrate clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Python >= 3.11 is needed (found $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null \
	  || { echo "installing python3-venv"; apt-get install -y -q --no-install-recommends python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## create .venv with the project and its tools (pip)

# The bench's peer stream processor (Quix Streams) in a venv of its own: its pins exclude the
# project's pydantic (see [dependency-groups] in pyproject.toml). bench/worker_catchup.py runs
# it with .venv-peer/bin/python and says so when it is missing.
PEER_VENV  ?= .venv-peer
PEER_STAMP := $(PEER_VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

$(PEER_STAMP): pyproject.toml
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install -q --upgrade pip
	$(PEER_VENV)/bin/pip install -q --group bench-peer
	rm -f $(PEER_VENV)/.installed-* && touch $@

bench-peer: $(PEER_STAMP) ## create .venv-peer with the peer stream processor of the benches (Quix Streams)

run: install ## install what is missing, start the cluster and the whole pipeline (Ctrl-C stops all)
	$(BIN)/wattstream run

test: install ## install what is missing, start the local services, run the whole test suite
	$(BIN)/wattstream services test-tools
	$(BIN)/wattstream services up
	$(BIN)/pytest $(PYTEST_ARGS)

CHAOS_ROUNDS ?= 3
chaos: install ## kill -9 each component CHAOS_ROUNDS times (3) under load, then audit delivery
	$(BIN)/wattstream services test-tools
	WATTSTREAM_CHAOS_ROUNDS=$(CHAOS_ROUNDS) $(BIN)/pytest -s -p no:randomly tests/faults/test_chaos.py $(PYTEST_ARGS)

lint: install ## ruff, mypy strict, import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install bench-peer ## the whole pipeline under load vs its parts' ceilings (bench/results/pipeline.*)
	$(BIN)/python bench/pipeline.py

bench-parts: install bench-peer ## every other benchmark script in bench/ (figures, JSON in bench/results/)
	@for b in bench/*.py; do [ "$$b" = bench/pipeline.py ] && continue; \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done

up: install ## start the local services (Mosquitto, Kafka, PostgreSQL); harmless when running
	$(BIN)/wattstream services up

down: install ## stop the local services
	$(BIN)/wattstream services down

status: install ## show the local services
	$(BIN)/wattstream services status

migrate: install ## upgrade the local database to the newest schema
	$(BIN)/wattstream services up
	eval "$$($(BIN)/wattstream services env)" && $(BIN)/wattstream migrate

clean: ## stop the services and remove .venv and .wattstream
	-$(BIN)/wattstream services down
	rm -rf $(VENV) $(PEER_VENV) .wattstream
