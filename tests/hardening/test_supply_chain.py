"""Supply chain: the lock pins hashes, the image installs with them, and serving loads nothing executable.

The server reads two files from the artifact, ``metadata.json`` (json) and ``booster.ubj`` (XGBoost's own
binary format, parsed by libxgboost); no module that `serve` imports can unpickle anything.
"""

from __future__ import annotations

import ast
import pickle
import shutil
import sys
import tomllib
from pathlib import Path

from conftest import ROOT

from scl_delay import artifact
from scl_delay.artifact import BOOSTER_FILE, METADATA_FILE, load_model

PACKAGE = ROOT / "src" / "scl_delay"
EXECUTABLE_FORMATS = {
    "pickle",
    "_pickle",
    "cPickle",
    "joblib",
    "marshal",
    "dill",
    "cloudpickle",
    "shelve",
    "torch",
    "skops",
    "importlib",
    "runpy",
    "imp",
}
DANGEROUS_CALLS = {"eval", "exec", "compile", "__import__"}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(top-level module names imported, package-relative modules imported) by one source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top, local = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from .x import y / from . import x
                local |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif node.module and node.module.startswith("scl_delay"):
                parts = node.module.split(".")
                local |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
            elif node.module:
                top.add(node.module.split(".")[0])
    return top, local


def serving_modules() -> list[Path]:
    """serve.py and every package module it reaches through imports."""
    todo, seen = [ROOT / "serve.py"], []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        for name in _imports(path)[1]:
            candidate = PACKAGE / f"{name}.py"
            if candidate.is_file():
                todo.append(candidate)
    return seen


def test_serving_modules_never_import_an_executable_format():
    modules = serving_modules()
    assert PACKAGE / "server.py" in modules and PACKAGE / "artifact.py" in modules, modules
    for path in modules:
        top, _ = _imports(path)
        assert not top & EXECUTABLE_FORMATS, (
            f"{path.relative_to(ROOT)} imports {sorted(top & EXECUTABLE_FORMATS)}"
        )
        calls = {
            n.func.id
            for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        assert not calls & DANGEROUS_CALLS, (
            f"{path.relative_to(ROOT)} calls {sorted(calls & DANGEROUS_CALLS)}"
        )


def test_the_booster_is_saved_in_xgboost_format_and_metadata_as_json(model_dir):
    assert BOOSTER_FILE.endswith((".ubj", ".json"))
    assert METADATA_FILE.endswith(".json")
    assert (model_dir / BOOSTER_FILE).read_bytes()[
        :1
    ] == b"{"  # UBJSON: an object marker, not a pickle opcode
    for path in model_dir.iterdir():
        head = path.read_bytes()[:2] if path.is_file() else b""
        assert not head.startswith(b"\x80"), f"{path.name} looks like a pickle"


class _Bomb:
    """Unpickling this writes a marker file: proof that something unpickled the artifact."""

    marker: Path

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def test_loading_the_artifact_reads_only_the_two_known_files(model_dir, tmp_path):
    """A folder with only metadata.json and booster.ubj loads; planted pickles beside them are never
    opened."""
    folder = tmp_path / "model"
    folder.mkdir()
    for name in (METADATA_FILE, BOOSTER_FILE):
        shutil.copy(model_dir / name, folder / name)
    marker = tmp_path / "unpickled"
    bomb = _Bomb()
    bomb.marker = marker
    for name in ("model.pkl", "model.joblib", "booster.pkl", "predictor.pickle", "__init__.py"):
        (folder / name).write_bytes(pickle.dumps(bomb))

    opened: list[str] = []
    watching = [True]

    def audit(event: str, args: tuple) -> None:
        if watching[0] and event == "open" and args and isinstance(args[0], (str, bytes, Path)):
            opened.append(str(args[0]))
        if watching[0] and event == "pickle.find_class":
            opened.append(f"pickle.find_class {args}")

    sys.addaudithook(audit)  # cannot be removed: it turns itself off below
    try:
        model = load_model(folder)
    finally:
        watching[0] = False
    assert model.version
    inside = {Path(p).name for p in opened if not p.startswith("pickle") and Path(p).parent == folder}
    assert inside <= {METADATA_FILE, BOOSTER_FILE}, opened
    assert not [p for p in opened if p.startswith("pickle")], opened
    assert not marker.exists()


def test_artifact_module_names_every_file_it_owns():
    names = {v for k, v in vars(artifact).items() if k.endswith("_FILE") and isinstance(v, str)}
    assert {BOOSTER_FILE, METADATA_FILE} <= names


def test_the_lock_pins_every_package_with_hashes():
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    unhashed = [
        p["name"]
        for p in lock["package"]
        if p.get("source", {}).get("registry")
        and not all("hash" in w for w in p.get("wheels", []))
        or p.get("source", {}).get("registry")
        and not p.get("wheels")
        and "hash" not in p.get("sdist", {})
    ]
    assert not unhashed, unhashed


def test_the_image_installs_every_package_pinned_with_hashes():
    """Every `pip install` in the Dockerfile (runtime deps, and hatchling for the wheel stage) reads a
    requirements file with --require-hashes; every line of those files is an exact pin followed by hashes."""
    dockerfile = (ROOT / "container" / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert len(installs) >= 3, installs
    for line in installs:
        for command in line.split("&&"):
            if "pip install" in command and "--no-index" not in command:  # --no-index: the local wheel only
                assert "--require-hashes" in command and " -r " in command, command
    for name in ("requirements.txt", "build-requirements.txt"):
        text = (ROOT / "container" / name).read_text(encoding="utf-8")
        pins = [
            line for line in text.splitlines() if line and not line[0].isspace() and not line.startswith("#")
        ]
        assert pins and all("==" in line and line.rstrip().endswith("\\") for line in pins), (name, pins[:3])
        assert text.count("--hash=sha256:") >= len(pins), name
