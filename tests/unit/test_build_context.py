"""Every file the Dockerfiles COPY is in the build context: .dockerignore lets it in, and the copy of the
context that scripts/bench_image.py builds for its rebuild check holds it (it once left out
container/build-requirements.txt, and `make bench-image` crashed)."""

import importlib.util
import re
from pathlib import Path

from conftest import ROOT

COPY = re.compile(r"^COPY\s+(?!--from)(.+)$", re.MULTILINE)


def copied_sources() -> set[str]:
    sources = set()
    for dockerfile in (ROOT / "container").glob("*file"):
        for line in COPY.findall(dockerfile.read_text()):
            sources.update(p.rstrip("/") for p in line.split()[:-1] if not p.startswith("--"))
    return sources


def bench_image():
    spec = importlib.util.spec_from_file_location("bench_image", ROOT / "scripts" / "bench_image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def covered(path: str, allowed: list[str]) -> bool:
    return any(path == a or path.startswith(a + "/") for a in allowed)


def test_every_copied_file_is_let_in_by_dockerignore_and_copied_by_bench_image():
    sources = copied_sources()
    assert "container/build-requirements.txt" in sources and "src" in sources, sources
    allowed = [
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] == "!"
    ]
    context = bench_image().context_paths()
    for source in sources:
        assert covered(source, allowed), f"{source} is COPY'd but .dockerignore keeps it out"
        assert covered(source, context), f"{source} is COPY'd but bench_image.py leaves it out of its context"
        assert (ROOT / source).exists(), source


def test_bench_image_context_holds_the_engine_files_it_runs():
    context = bench_image().context_paths()
    for rel in ("scripts/container-engine.sh", "scripts/runc-no-rlimits", "container/base.Containerfile"):
        assert rel in context and Path(ROOT / rel).is_file()
