# gpurent: the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.venv/bin:$(PATH)
PY := .venv/bin/python

.PHONY: setup demo test test-contracts test-foundry test-oracle gas slither clean

setup:
	@bash tools/setup.sh

demo: setup
	$(PY) -m oracle.cli.main demo

test: setup test-contracts test-foundry test-oracle slither

test-contracts:
	brownie test tests/brownie

test-foundry:
	forge test

test-oracle:
	$(PY) -m pytest -p no:pytest-brownie tests/oracle

gas: setup
	$(PY) tools/gas_report.py

slither: setup
	slither . --compile-force-framework foundry --fail-medium

clean:
	rm -rf build .venv node_modules
