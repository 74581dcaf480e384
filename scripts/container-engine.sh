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
# with debootstrap and imported once, a python3 stand-in for python:3.11-slim is built on it once (both
# are reused while they are in podman's storage), builds use chroot isolation with the host's CA bundle
# mounted for pip only, and containers run with runc through a wrapper that drops process.rlimits (the
# sandbox refuses setrlimit). SCL_CONTAINER_ENGINE=docker|podman forces an engine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${SCL_IMAGE:-localhost/scl-delay:dev}"
DEBIAN_IMAGE="localhost/debian:bookworm"
PY_BASE_IMAGE="localhost/scl-python:3.11-bookworm"  # stands in for python:3.11-slim
DEBIAN_MIRROR="${SCL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/scl-delay"
RUNC_WRAPPER="$CACHE/runc-no-rlimits"
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

runc_wrapper() {
  # podman calls the runtime with the OCI bundle (--bundle DIR, default the cwd); drop process.rlimits.
  [ -x "$RUNC_WRAPPER" ] && return
  mkdir -p "$CACHE"
  cat >"$RUNC_WRAPPER.tmp" <<'EOF'
#!/usr/bin/env python3
"""runc, minus process.rlimits in the bundle's config.json (this sandbox refuses setrlimit)."""
import json, os, sys
args = sys.argv[1:]
bundle = os.getcwd()
for i, arg in enumerate(args):
    if arg in ("--bundle", "-b") and i + 1 < len(args):
        bundle = args[i + 1]
    elif arg.startswith("--bundle="):
        bundle = arg.split("=", 1)[1]
config = os.path.join(bundle, "config.json")
if ("create" in args or "run" in args) and os.path.exists(config):
    with open(config) as f:
        spec = json.load(f)
    if spec.get("process", {}).pop("rlimits", None) is not None:
        with open(config, "w") as f:
            json.dump(spec, f)
os.execvp("runc", ["runc", *args])
EOF
  chmod +x "$RUNC_WRAPPER.tmp"
  mv "$RUNC_WRAPPER.tmp" "$RUNC_WRAPPER"
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
    log "building $PY_BASE_IMAGE (Debian python3 3.11, python3-venv, ca-certificates), once"
    local ctx
    ctx="$(mktemp -d)"
    cat >"$ctx/Containerfile" <<EOF
FROM $DEBIAN_IMAGE
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      python3 python3-venv ca-certificates >/dev/null \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python3"]
EOF
    podman_build -q -t "$PY_BASE_IMAGE" "$ctx" >/dev/null
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
  runc_wrapper
  podman --runtime "$RUNC_WRAPPER" run "$@"
}

run() {
  if [ "$(engine)" = docker ]; then exec docker run "$@"; fi
  runc_wrapper
  exec podman --runtime "$RUNC_WRAPPER" run "$@"
}

demo() {
  # An /opt/ml tree as SageMaker lays it out, synthetic flights made by the image itself, `train`, then `serve`.
  local dir="${SCL_DEMO_DIR:-$ROOT/.demo/container/opt_ml}" port="${PORT:-8080}"
  rm -rf "$dir/model" "$dir/output"
  mkdir -p "$dir/input/config" "$dir/input/data/training" "$dir/model" "$dir/output"
  echo '{"num_round": "200", "early_stopping_rounds": "20"}' >"$dir/input/config/hyperparameters.json"
  echo '{"training": {"ContentType": "text/csv", "TrainingInputMode": "File"}}' \
    >"$dir/input/config/inputdataconfig.json"
  engine_run --rm --no-healthcheck -v "$dir:/opt/ml" "$IMAGE" python -c \
    "from scl_delay.synthetic import generate; generate(20000, seed=7).to_csv('/opt/ml/input/data/training/flights.csv', index=False)"
  engine_run --rm --no-healthcheck --network none -v "$dir:/opt/ml" "$IMAGE" train
  log "serving on http://localhost:$port (Ctrl-C stops it). Try:"
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
