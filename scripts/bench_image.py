#!/usr/bin/env python3
"""Measure the image against its floors and print a markdown table (exit 1 when a floor is missed).

    .venv/bin/python scripts/bench_image.py [--runs 5] [--no-build] [--no-rebuild-check]

- size: bytes the image adds on top of its base (image size minus base size, from `image inspect`);
  floor 480 MB (10^6 bytes).
- start to /ping: from `<engine> run IMAGE serve` (the engine's own start-up included) to the first 200 on
  /ping, median of --runs starts; floor 3 s.
- rebuild: the build context is copied to a temp folder, built, then a .py file (src/scl_delay/server.py and
  serve.py) is changed and it is built again; the dependency layer (the `COPY --from=deps /opt/venv`) must be
  the same layer id in both images, and the deps stage must report "Using cache" / "CACHED".

Uses scripts/container-engine.sh, so docker where a daemon runs, else podman.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from local_aws.machine import describe
from local_aws.process import PORT_ENV, LocalProcess
from local_aws.real_dataset import find_real_dataset, why_absent
from scl_delay.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]

ENGINE = ROOT / "scripts" / "container-engine.sh"
IMAGE = os.environ.get("SCL_IMAGE", "localhost/scl-delay:bench")
SIZE_FLOOR_BYTES = 480_000_000
PING_FLOOR_S = 3.0
ENGINE_FILES = ("scripts/container-engine.sh", "scripts/runc-no-rlimits", "container/base.Containerfile")


def context_paths() -> list[str]:
    """What the image build reads: the paths .dockerignore lets in (its `!` lines) and the engine's files."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line[1:].rstrip("/") for line in lines if line.startswith("!")] + [".dockerignore", *ENGINE_FILES]


def sh(
    *args: str, root: Path = ROOT, image: str = IMAGE, check: bool = True, **kw
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(root / "scripts" / "container-engine.sh"), *args],
        check=check,
        text=True,
        env={**os.environ, "SCL_IMAGE": image},
        **kw,
    )


def build(root: Path = ROOT, image: str = IMAGE) -> subprocess.CompletedProcess:
    """`container-engine.sh build`, its output kept; on failure the engine's own error, then exit 1."""
    result = sh("build", root=root, image=image, capture_output=True, check=False)
    if result.returncode != 0:
        sys.exit(
            f"bench_image: building {image} failed ({result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-4000:]}"
        )
    return result


def inspect(image: str) -> dict:
    return json.loads(sh("cli", "image", "inspect", image, capture_output=True).stdout)[0]


def opt_ml_tree(root: Path) -> Path:
    """An /opt/ml tree on the real dataset (found as local_aws.real_dataset finds it), else synthetic data."""
    for sub in ("input/config", "input/data/training", "model", "output"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    real = find_real_dataset()
    if real is not None:
        shutil.copy2(real, root / "input/data/training/flights.csv")
        print(f"bench_image: training in the image on {real}", file=sys.stderr)
    else:
        generate(4000, seed=11).to_csv(root / "input/data/training/flights.csv", index=False)
        print(f"bench_image: training on 4,000 synthetic rows ({why_absent()})", file=sys.stderr)
    (root / "input/config/hyperparameters.json").write_text(json.dumps({"num_round": "50"}))
    (root / "input/config/inputdataconfig.json").write_text(
        json.dumps({"training": {"ContentType": "text/csv"}})
    )
    return root


def start_to_ping(opt_ml: Path, deadline_s: float = 30) -> float:
    """Seconds from `<engine> run IMAGE serve` to the first 200 on /ping (local_aws.process does the wait)."""
    name = f"scl-delay-bench-{uuid.uuid4().hex[:10]}"
    command = [str(ENGINE), "run", "--rm", "--no-healthcheck", "--network", "host", "--name", name]
    command += ["-e", PORT_ENV, "-v", f"{opt_ml}:/opt/ml:ro", IMAGE, "serve"]
    serve = LocalProcess.start(command, {**os.environ, "SCL_IMAGE": IMAGE}, opt_ml / f"{name}.log")
    try:
        serve.wait_ping(deadline_s)
        return time.monotonic() - serve.started
    finally:
        sh("cli", "kill", "--signal", "TERM", name, check=False, capture_output=True)
        serve.stop()
        sh("cli", "rm", "--force", name, check=False, capture_output=True)


def deps_layer(image: str, base: str) -> str:
    """The first layer the image adds over its base: the dependency venv (COPY --from=deps /opt/venv)."""
    base_layers = inspect(base)["RootFS"]["Layers"]
    layers = inspect(image)["RootFS"]["Layers"]
    assert layers[: len(base_layers)] == base_layers, "image is not built on the base"
    return layers[len(base_layers)]


def rebuild_check(base: str) -> tuple[bool, str, float]:
    with tempfile.TemporaryDirectory(prefix="scl-bench-ctx-") as tmp:
        ctx = Path(tmp)
        for rel in context_paths():
            (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / rel).is_dir():
                shutil.copytree(ROOT / rel, ctx / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(ROOT / rel, ctx / rel)
        before_tag, after_tag = f"{IMAGE}-before", f"{IMAGE}-after"
        build(ctx, before_tag)
        for rel in ("src/scl_delay/server.py", "serve.py"):
            with open(ctx / rel, "a") as f:
                f.write(f"\n# bench_image.py touched this file at {time.time()}\n")
        started = time.monotonic()
        out = build(ctx, after_tag)
        rebuild_s = time.monotonic() - started
        log = out.stdout + out.stderr
        same = deps_layer(before_tag, base) == deps_layer(after_tag, base)
        # The deps stage's RUN (pip install) must come from the cache: podman prints "--> Using cache",
        # docker (BuildKit) prints "CACHED" for it.
        pip_step = [i for i, line in enumerate(log.splitlines()) if "require-hashes" in line]
        lines = log.splitlines()
        cached = bool(pip_step) and any(
            ("Using cache" in lines[i + k] or "CACHED" in lines[i + k])
            for i in pip_step
            for k in range(8)
            if i + k < len(lines)
        )
        if not pip_step:  # docker's plain progress folds the step differently: fall back to the layer id
            cached = same
        sh("cli", "rmi", before_tag, after_tag, check=False, capture_output=True)
        how = f"deps layer id unchanged: {same}; pip step from cache: {cached}; rebuild {rebuild_s:.1f} s"
        return same and cached, how, rebuild_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-build", action="store_true", help="measure the existing SCL_IMAGE")
    parser.add_argument(
        "--no-rebuild-check", action="store_true", help="skip the two-build layer-reuse check (minutes)"
    )
    args = parser.parse_args()
    engine = sh("engine", capture_output=True).stdout.strip()
    base = sh("base", capture_output=True).stdout.strip()
    if not args.no_build:
        started = time.monotonic()
        build()
        print(f"built {IMAGE} with {engine} in {time.monotonic() - started:.1f} s", file=sys.stderr)

    added = int(inspect(IMAGE)["Size"]) - int(inspect(base)["Size"])

    with tempfile.TemporaryDirectory(prefix="scl-bench-optml-") as tmp:
        opt_ml = opt_ml_tree(Path(tmp))
        print(f"bench_image: `train` in {IMAGE}", file=sys.stderr, flush=True)
        train = sh(
            "run",
            "--rm",
            "--no-healthcheck",
            "--network",
            "none",
            "-v",
            f"{opt_ml}:/opt/ml",
            IMAGE,
            "train",
            capture_output=True,
            check=False,
        )
        if train.returncode != 0:
            print(train.stdout[-2000:], train.stderr[-2000:], file=sys.stderr)
            return 1
        print(f"bench_image: start to /ping, {args.runs} runs after one warm-up", file=sys.stderr, flush=True)
        start_to_ping(opt_ml)  # warm the engine's caches once; not counted
        pings = [start_to_ping(opt_ml) for _ in range(args.runs)]
    ping_s = statistics.median(pings)

    if args.no_rebuild_check:
        rebuild_ok, how = True, "not measured (--no-rebuild-check)"
    else:
        print(
            "bench_image: two builds of a copied context for the layer-reuse check",
            file=sys.stderr,
            flush=True,
        )
        rebuild_ok, how, _ = rebuild_check(base)

    rows = [
        (
            "layers added on top of the base",
            f"{added / 1e6:.1f} MB ({added:,} bytes; base `{base}`)",
            f"<= {SIZE_FLOOR_BYTES / 1e6:.0f} MB",
            added <= SIZE_FLOOR_BYTES,
        ),
        (
            "container start to first /ping 200",
            (f"{ping_s:.2f} s median of {len(pings)} (min {min(pings):.2f}, max {max(pings):.2f})"),
            f"<= {PING_FLOOR_S:.0f} s",
            ping_s <= PING_FLOOR_S,
        ),
        ("rebuild after a .py change reuses the dependency layers", how, "deps layer reused", rebuild_ok),
    ]
    print(f"Image `{IMAGE}`, engine {engine}; machine: {describe()}\n")
    print("| measure | figure | floor | ok |")
    print("|---|---|---|---|")
    for name, figure, floor, ok in rows:
        print(f"| {name} | {figure} | {floor} | {'yes' if ok else 'NO'} |")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
