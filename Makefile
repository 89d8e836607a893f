# Notiflow — fixed verbs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help install run test lint fmt bench migrate vendor clean topology

help: ## Show this help
	@grep -hE '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install Notiflow with its dev tools (idempotent)

run: install ## Start Notiflow on its embedded defaults (SQLite in this folder)
	$(BIN)/notiflow serve --host $(HOST) --port $(PORT)

test: install ## Run the test suite (SQLite and PostgreSQL)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install ## Format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## Run the benchmarks and print their tables
	$(BIN)/python -m bench

topology: install ## docker-compose.yml's processes without Docker, on PostgreSQL: a 10,000-message mailing
	$(BIN)/python -m pytest tests/test_deploy_topology.py -q -s

migrate: install ## Bring the database schema up to date
	$(BIN)/notiflow migrate

vendor: ## Fetch the vendored front-end assets again from npm (src/notiflow/static/vendor)
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	$(PYTHON) scripts/vendor.py

.PHONY: screenshots
screenshots: install ## Save PNGs of the admin UI's pages, from a demo, in docs/screenshots (needs Chromium)
	$(BIN)/python scripts/screenshots.py

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
