# The two commands a fresh clone needs:
#   make demo   set up, then train on the built-in synthetic data, serve it and invoke it
#   make test   set up (venv + system packages the tests need), then run every test
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
PY := .venv/bin/python

.PHONY: help setup demo test test-fast audit lint image image-demo rehearse rehearse-image bench bench-train bench-serve bench-image reliability
help:
	@echo "make demo        set up, train (the real dataset when found, else synthetic), serve on 127.0.0.1:8080, invoke, stop"
	@echo "make test        set up and run all tests (unit, contract, hardening, container, aws, quality)"
	@echo "make test-fast   unit tests and the HTTP contract of one live server (under a minute)"
	@echo "make help        this list"
	@echo "make setup       the venv (.venv) from uv.lock, installing uv into .tools/ when missing"
	@echo "make audit       pip-audit of every locked package (needs PyPI's JSON API and OSV)"
	@echo "make lint        ruff (rules, line length), ruff format --check, mypy over src/, hadolint, zizmor, workflow schema"
	@echo "make image       build the image (docker, else podman)"
	@echo "make image-demo  train inside the image, then serve it on localhost:\$$PORT (8080; Ctrl-C stops it)"
	@echo "make rehearse    the whole PR -> merge loop against a local moto server, no AWS account"
	@echo "make rehearse-image  the same, with the training job running inside the image"
	@echo "make bench       bench-train, bench-serve and bench-image (tables for the README)"
	@echo "make bench-train     training wall time and quality on the real dataset (scripts/bench_train.py)"
	@echo "make bench-serve     serving throughput, p99 and memory with wrk (scripts/bench_serve.py)"
	@echo "make bench-image     image size over its base, start to /ping, layer reuse (scripts/bench_image.py)"
	@echo "make reliability     the reliability measurements, rewriting docs/reliability.md (scripts/reliability.py)"

$(CURDIR)/.tools/bin/uv:
	@echo "setup: installing uv $(UV_VERSION) into .tools/ (no uv on PATH)"
	python3 -m venv .tools && .tools/bin/pip install --disable-pip-version-check uv==$(UV_VERSION)

# uv prints what it downloads and installs (the first time about 200 MB, a minute or two); later runs are silent.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	@echo "setup: installing the locked dependencies into .venv/ (uv sync --frozen)"
	$(UV) sync --frozen
	@touch $@

setup: .venv/.synced

demo: setup
	scripts/demo.sh

test: setup
	scripts/install-test-deps.sh
	$(PY) -m pytest

# Under a minute on 2 idle cores: unit tests and the live-server contract; no image, moto, load, real data
# or the train contract's ~30 `train` processes (the `slow` marker, tests/conftest.py).
test-fast: setup
	$(PY) -m pytest tests/unit tests/contract -m "not slow"

# Known vulnerabilities in every locked package. Needs PyPI's JSON API and OSV: runs in GitHub's ci.yml,
# not in .ci/run (the sandbox's package mirror serves neither, so pip-audit would audit nothing there).
audit: | $(UV)
	$(UV) export --frozen --all-groups --no-emit-project --format requirements-txt > .audit-requirements.txt
	$(UV) tool run pip-audit==2.10.1 --strict --require-hashes --disable-pip -r .audit-requirements.txt

lint: setup
	$(PY) -m pytest -q tests/unit/test_lint.py tests/unit/test_workflows.py \
	  tests/container/test_image.py::test_hadolint_finds_nothing_in_the_dockerfile

image: setup
	scripts/install-test-deps.sh
	scripts/container-engine.sh build

image-demo: image
	scripts/container-engine.sh demo

rehearse: setup
	$(PY) scripts/rehearse.py

rehearse-image: image
	$(PY) scripts/rehearse.py --image localhost/scl-delay:dev

bench: bench-train bench-serve bench-image

bench-train: setup
	$(PY) scripts/bench_train.py

bench-serve: setup
	$(PY) scripts/bench_serve.py

bench-image: setup
	scripts/install-test-deps.sh
	$(PY) scripts/bench_image.py

reliability: setup
	$(PY) scripts/reliability.py
