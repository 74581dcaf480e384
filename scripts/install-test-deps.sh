#!/usr/bin/env bash
# System packages the test suite needs beyond the venv. Idempotent; quiet when all is there.
# The container suite needs an engine: docker with a live daemon, else podman + runc + debootstrap
# (installed here with apt; see ../shared/notes/containers.md). The base image itself is made, once,
# by the suite's first build (scripts/container-engine.sh base).
set -euo pipefail
"$(dirname "$0")/container-engine.sh" setup
