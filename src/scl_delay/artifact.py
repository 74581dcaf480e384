"""The model folder: file names, atomic writing, loading for serving. No pickle anywhere.

``metadata.json`` is written last and marks the artifact complete: a folder without it is not a model.
It records the booster file's size and sha256, checked before XGBoost parses the file: a truncated or
altered booster is refused with a clear reason (libxgboost can hang or exhaust memory on a cut file).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ArtifactError
from .features import FeatureSpec
from .model import Predictor, xgb
from .schema import InputSchema

BOOSTER_FILE = "booster.ubj"
METADATA_FILE = "metadata.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LoadedModel:
    predictor: Predictor
    metadata: Mapping
    spec: FeatureSpec
    input_schema: InputSchema

    @property
    def version(self) -> str:
        return self.metadata["model_version"]

    @property
    def threshold(self) -> float:
        return self.predictor.threshold


def write_artifact(
    model_dir: Path,
    booster: xgb.Booster,
    metadata: Mapping,
    metrics: Mapping,
    extra_files: Mapping[str, bytes],
) -> None:
    """Write every file to a scratch folder inside ``model_dir``, then move each into place, metadata last."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / METADATA_FILE).unlink(missing_ok=True)  # a half-replaced folder must not look complete
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=model_dir))
    try:
        booster.save_model(scratch / BOOSTER_FILE)
        _write_json(scratch / METRICS_FILE, metrics)
        for name, data in extra_files.items():
            (scratch / name).write_bytes(data)
        _write_json(
            scratch / METADATA_FILE,
            {"format_version": FORMAT_VERSION, **metadata, "booster": _file_digest(scratch / BOOSTER_FILE)},
        )
        for path in scratch.iterdir():
            _fsync(path)
        for name in [p.name for p in scratch.iterdir() if p.name != METADATA_FILE] + [METADATA_FILE]:
            os.replace(scratch / name, model_dir / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_json(path: Path, doc: Mapping) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")


def _digest(name: str, data: bytes) -> dict:
    return {"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _file_digest(path: Path) -> dict:
    return _digest(path.name, path.read_bytes())


def _read_booster(model_dir: Path, metadata: Mapping) -> bytes:
    """The booster's bytes, once they match the size and sha256 in metadata.json: XGBoost parses these very
    bytes, so nothing can change between the check and the load."""
    expected = metadata.get("booster")
    if not isinstance(expected, Mapping):
        raise ArtifactError(
            f"{METADATA_FILE} in {model_dir} does not describe {BOOSTER_FILE} (bytes, sha256)"
        )
    try:
        data = (model_dir / BOOSTER_FILE).read_bytes()
    except OSError as e:
        raise ArtifactError(f"cannot read {BOOSTER_FILE} in {model_dir}: {e}") from None
    found = _digest(BOOSTER_FILE, data)
    if found["bytes"] != expected.get("bytes") or found["sha256"] != expected.get("sha256"):
        raise ArtifactError(
            f"{BOOSTER_FILE} in {model_dir} is truncated or altered: {found['bytes']} bytes, "
            f"sha256 {found['sha256'][:12]}; {METADATA_FILE} expects {expected.get('bytes')} "
            f"bytes, sha256 {str(expected.get('sha256'))[:12]}"
        )
    return data


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def read_metadata(model_dir: Path) -> dict:
    path = model_dir / METADATA_FILE
    if not path.is_file():
        raise ArtifactError(f"no model at {model_dir}: {METADATA_FILE} is missing (has `train` completed?)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ArtifactError(f"{path} is not readable JSON: {e}") from None
    if doc.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: format_version {doc.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    return doc


def load_model(model_dir: Path) -> LoadedModel:
    """Load the booster and metadata written by `train`; ``ArtifactError`` when anything is off."""
    metadata = read_metadata(model_dir)
    booster = _read_booster(model_dir, metadata)
    try:
        spec = FeatureSpec.from_dict(metadata["features"])
        predictor = Predictor.from_bytes(booster, spec, float(metadata["threshold"]))
    except (KeyError, TypeError, ValueError, xgb.core.XGBoostError) as e:
        raise ArtifactError(
            f"model at {model_dir} is incomplete or corrupt: {type(e).__name__}: {e}"
        ) from None
    if predictor.booster.num_features() != len(spec.names):
        raise ArtifactError(
            f"{BOOSTER_FILE} expects {predictor.booster.num_features()} features, "
            f"{METADATA_FILE} lists {len(spec.names)}"
        )
    return LoadedModel(predictor, metadata, spec, spec.input_schema())
