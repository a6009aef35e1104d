# The two commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup demo demo-clean test lint unit

setup:
	bash scripts/setup.sh

# Runs the whole flow on the embedded local setup (local ClearML servers, site hosts as containers).
demo: setup
	bash scripts/demo.sh

# Removes what the demo left running: the site-host containers and their volumes, the dev server, its files.
demo-clean:
	bash scripts/demo.sh --clean

# Lint, unit, integration and molecule tests; ends with pytest's "N passed, N failed" line.
test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint:
	$(VENV)/bin/pytest tests/lint

unit:
	$(VENV)/bin/pytest tests/unit
