# The two commands a fresh clone needs:
#   make demo   set up, then train on the built-in synthetic data, serve it and invoke it
#   make test   set up (venv + system packages the tests need), then run every test
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
PY := .venv/bin/python

.PHONY: help setup demo test test-fast lint bench-train
help:
	@echo "make demo   - set up, train on synthetic data, serve on 127.0.0.1:8080, invoke, stop"
	@echo "make test   - set up and run all tests (unit, contract, container, aws)"
	@echo "make test-fast - unit + contract tests only"

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools && .tools/bin/pip install --quiet uv==$(UV_VERSION)

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	@touch $@

setup: .venv/.synced

demo: setup
	scripts/demo.sh

test: setup
	scripts/install-test-deps.sh
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not container and not aws"

bench-train: setup
	$(PY) scripts/bench_train.py
