# gpurent: the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.venv/bin:$(PATH)
PY := .venv/bin/python

.PHONY: setup demo test lint-imports test-contracts test-foundry test-oracle test-e2e test-provider test-web gas slither clean

setup:
	@bash tools/setup.sh

demo: setup
	$(PY) -m oracle.cli.main demo

test: setup
	GPURENT_STRICT=1 $(MAKE) -k --no-print-directory lint-imports slither test-foundry test-contracts test-oracle test-e2e test-provider test-web

# Imports point one way (pyproject.toml [tool.importlinter]: core -> chain -> actions -> services -> cli/demo).
lint-imports:
	lint-imports

test-contracts:
	brownie test tests/brownie

test-foundry:
	forge test
	forge snapshot --match-contract GasSnapshotTest --check

test-oracle:
	$(PY) -m pytest -p no:pytest-brownie tests/oracle

test-e2e:
	$(PY) -m pytest -p no:pytest-brownie tests/e2e

# The provider daemon against a real dockerd it starts itself (root; tools/setup.sh installs docker.io).
test-provider:
	$(PY) -m pytest -p no:pytest-brownie tests/provider

# The web pages in headless Debian Chromium (Playwright) against anvil, three real nodes and `gpurent web`.
test-web:
	$(PY) -m pytest -p no:pytest-brownie tests/web

gas: setup
	$(PY) tools/gas_report.py

slither:
	slither . --compile-force-framework foundry --fail-medium

clean:
	rm -rf build .venv node_modules
