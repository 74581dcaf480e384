#!/usr/bin/env bash
# One interface to build and run the scl-delay image with whichever engine works here.
#
#   scripts/container-engine.sh engine              print "docker" (live daemon) or "podman"
#   scripts/container-engine.sh setup               install podman/runc/debootstrap when no docker daemon (apt)
#   scripts/container-engine.sh base                make (once, cached) the base image; print its name
#   scripts/container-engine.sh build [ARGS...]     build container/Dockerfile as $SCL_IMAGE (extra ARGS to build)
#   scripts/container-engine.sh run [ARGS...]       `<engine> run ARGS...` (podman: through the runc wrapper)
#   scripts/container-engine.sh cli [ARGS...]       `<engine> ARGS...` (images, history, inspect, rm, ...)
#   scripts/container-engine.sh demo                train on synthetic data in the image, serve on localhost:8080
#   scripts/container-engine.sh lock                regenerate container/requirements.txt from uv.lock
#
# With a Docker daemon this is plain `docker build` / `docker run` on python:3.11-slim. Without one (CI),
# it follows ../shared/notes/containers.md: no registry can be reached, so a Debian bookworm base is made
# with debootstrap and imported once, container/base.Containerfile builds a python3 stand-in for
# python:3.11-slim on it once (both are reused while they are in podman's storage), builds use chroot
# isolation with the host's CA bundle mounted for pip only, and containers run with runc through
# scripts/runc-no-rlimits (the sandbox refuses setrlimit). SCL_CONTAINER_ENGINE=docker|podman forces an
# engine. This file only dispatches: the wrapper and the base image live in those two files.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${SCL_IMAGE:-localhost/scl-delay:dev}"
DEBIAN_IMAGE="localhost/debian:bookworm"
PY_BASE_IMAGE="localhost/scl-python:3.11-bookworm"  # stands in for python:3.11-slim
DEBIAN_MIRROR="${SCL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
RUNC_WRAPPER="$ROOT/scripts/runc-no-rlimits"  # runc minus the rlimits the sandbox refuses
BASE_CONTAINERFILE="$ROOT/container/base.Containerfile"
HOST_CA=/etc/ssl/certs/ca-certificates.crt

log() { echo "container-engine: $*" >&2; }

docker_live() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

engine() {
  if [ -n "${SCL_CONTAINER_ENGINE:-}" ]; then echo "$SCL_CONTAINER_ENGINE"; return; fi
  if docker_live; then echo docker; return; fi
  echo podman
}

setup() {
  if docker_live; then return; fi
  local missing=()
  for tool in podman runc debootstrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  [ "${#missing[@]}" -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${missing[*]}: install podman, runc and debootstrap (or start a Docker daemon)"
    return 1
  fi
  log "installing podman runc debootstrap (no Docker daemon here)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman runc debootstrap fuse-overlayfs uidmap >/dev/null
}

podman_build() {
  podman build --isolation chroot --format docker "$@"
}

base() {
  if [ "$(engine)" = docker ]; then echo "python:3.11-slim"; return; fi
  setup
  if ! podman image exists "$DEBIAN_IMAGE"; then
    local rootfs
    rootfs="$(mktemp -d)"
    log "debootstrap bookworm (minbase) for $DEBIAN_IMAGE, once"
    debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 \
      || { tail -20 "$rootfs.log" >&2; rm -rf "$rootfs"; return 1; }
    tar -C "$rootfs" -c . | podman import -q - "$DEBIAN_IMAGE" >/dev/null
    rm -rf "$rootfs" "$rootfs.log"
  fi
  if ! podman image exists "$PY_BASE_IMAGE"; then
    log "building $PY_BASE_IMAGE from container/base.Containerfile, once"
    local ctx
    ctx="$(mktemp -d)"  # an empty context: the Containerfile copies nothing
    podman_build -q -f "$BASE_CONTAINERFILE" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -t "$PY_BASE_IMAGE" "$ctx" \
      >/dev/null
    rm -rf "$ctx"
  fi
  echo "$PY_BASE_IMAGE"
}

build_args() {
  local version revision source
  version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml" | head -1)"
  revision="$(git -C "$ROOT" rev-parse --verify --quiet HEAD 2>/dev/null || echo unknown)"
  source="$(git -C "$ROOT" remote get-url origin 2>/dev/null || echo https://github.com/scl-delay/scl-delay)"
  printf '%s\n' --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "SOURCE=$source"
}

build() {
  local eng base_image
  eng="$(engine)"
  base_image="$(base)"
  local -a args
  mapfile -t args < <(build_args)
  if [ "$eng" = docker ]; then
    docker build -f "$ROOT/container/Dockerfile" -t "$IMAGE" "${args[@]}" "$@" "$ROOT"
  else
    podman_build -f "$ROOT/container/Dockerfile" -t "$IMAGE" --build-arg "BASE_IMAGE=$base_image" \
      -v "$HOST_CA:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt "${args[@]}" "$@" "$ROOT"
  fi
}

engine_run() {
  if [ "$(engine)" = docker ]; then docker run "$@"; return; fi
  podman --runtime "$RUNC_WRAPPER" run "$@"
}

run() {
  if [ "$(engine)" = docker ]; then exec docker run "$@"; fi
  exec podman --runtime "$RUNC_WRAPPER" run "$@"
}

port_busy() {
  # something already accepts connections on the port (bash's /dev/tcp; no extra tool)
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

demo() {
  # An /opt/ml tree as SageMaker lays it out, synthetic flights made by the image itself, `train`, then `serve`.
  local dir="${SCL_DEMO_DIR:-$ROOT/.demo/container/opt_ml}" port="${PORT:-8080}"
  if port_busy "$port"; then
    log "port $port is in use: stop what listens there, or choose another with PORT=8081 make image-demo"
    return 1
  fi
  rm -rf "$dir/model" "$dir/output"
  mkdir -p "$dir/input/config" "$dir/input/data/training" "$dir/model" "$dir/output"
  echo '{"num_round": "200", "early_stopping_rounds": "20"}' >"$dir/input/config/hyperparameters.json"
  echo '{"training": {"ContentType": "text/csv", "TrainingInputMode": "File"}}' \
    >"$dir/input/config/inputdataconfig.json"
  local real
  rm -f "$dir/input/data/training/"*
  if real="$(PYTHONPATH="$ROOT/src" python3 -m local_aws.real_dataset 2>"$dir/dataset.why")"; then
    log "1/3 data: the real dataset, $real, copied into $dir/input/data/training"
    cp "$real" "$dir/input/data/training/flights.csv"
  else
    log "1/3 data: 20,000 synthetic SCL-shaped flights, made by the image ($(cat "$dir/dataset.why"))"
    engine_run --rm --no-healthcheck -v "$dir:/opt/ml" "$IMAGE" \
      python -m scl_delay.synthetic --rows 20000 --out /opt/ml/input/data/training/flights.csv
  fi
  log "2/3 train in the image (no network), as SageMaker runs it"
  engine_run --rm --no-healthcheck --network none -v "$dir:/opt/ml" "$IMAGE" train
  log "3/3 serving on http://localhost:$port (Ctrl-C stops it). Try, from another shell:"
  log "  curl -s localhost:$port/invocations -H 'Content-Type: application/json' \\"
  log "    -d '{\"instances\":[{\"Fecha-I\":\"2017-01-01 23:30:00\",\"OPERA\":\"Grupo LATAM\",\"TIPOVUELO\":\"I\",\"Des-I\":\"KMIA\"}]}'"
  if [ "$(engine)" = docker ]; then
    local tty=()
    [ -t 0 ] && tty=(-it)  # Ctrl-C stops it from a terminal; -it would fail without one
    exec docker run --rm "${tty[@]}" -p "$port:8080" -v "$dir/model:/opt/ml/model:ro" "$IMAGE" serve
  fi
  # podman here has no bridge network: the host network, with the port passed as SageMaker would.
  run --rm --no-healthcheck --network host -e "SAGEMAKER_BIND_TO_PORT=$port" -v "$dir/model:/opt/ml/model:ro" \
    "$IMAGE" serve
}

lock() {
  local uv
  uv="$(command -v uv || echo "$ROOT/.tools/bin/uv")"
  {
    echo "# The image's runtime dependencies, pinned with hashes: generated from uv.lock by"
    echo "#   scripts/container-engine.sh lock"
    echo "# (uv export --frozen --no-dev --no-group aws --no-emit-project). Do not edit by hand."
    "$uv" export --frozen --no-dev --no-group aws --no-emit-project --no-header --format requirements-txt \
      --project "$ROOT"
  } >"$ROOT/container/requirements.txt"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  engine) engine ;;
  setup) setup ;;
  base) base ;;
  build) build "$@" ;;
  run) run "$@" ;;
  cli) if [ "$(engine)" = docker ]; then exec docker "$@"; else exec podman "$@"; fi ;;
  lock) lock ;;
  demo) demo ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
