# The two commands: `make demo` and `make test`. Everything they need installs from here.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps demo test lint typecheck unit stack-up stack-down bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "clinflow needs Python 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[stack,dev]'
	touch $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

install: $(STAMP) system-deps

demo: install
	$(BIN)/clinflow stack up
	$(BIN)/clinflow worker --detach --restart
	$(BIN)/clinflow demo intake samples/intake/protocol-signature-page.txt
	$(BIN)/clinflow demo packets
	$(BIN)/clinflow demo clinical

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

stack-up: install
	$(BIN)/clinflow stack up

stack-down:
	$(BIN)/clinflow stack down

bench: install
	$(BIN)/python bench/bench_object_store_upload.py --size-mb 1024

clean: stack-down
	rm -rf .clinflow
