"""The `train` pipeline behind SageMaker's training contract.

settings -> hyperparameters -> channels -> features -> fit -> threshold -> evaluation -> artifact,
printing each stage with its timing and every metric on its own line (``metric <split>:<name>=<number>``).
``main`` is the one failure boundary: it writes ``output/failure`` (cause first) and exits non-zero.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import __version__
from .artifact import REPORT_FILE, write_artifact
from .baseline import baseline_proba, fit_logistic_baseline
from .dataset import LabeledFlights, channel_files, load_channel
from .errors import DatasetError, InputError
from .failure import fail, raise_on_sigterm
from .features import build_features, fit_feature_spec
from .git import head_commit
from .hyperparameters import Hyperparameters, parse_hyperparameters
from .metric_lines import metric_lines
from .metrics import classification_metrics, pr_curve, tune_threshold
from .model import Split, fit_booster, predict_proba
from .report import render_figures, render_markdown, sample_pr_curves
from .schema import FlightColumns
from .settings import TrainSettings

GIT_COMMIT_ENV = "SCL_DELAY_GIT_COMMIT"
MIN_ROWS = 50


def _say(message: str) -> None:
    print(message, flush=True)


@contextmanager
def stage(name: str) -> Iterator[None]:
    started = time.perf_counter()
    _say(f"stage {name}: started")
    yield
    _say(f"stage {name}: done in {time.perf_counter() - started:.2f} s")


@dataclass(frozen=True)
class Splits:
    train: LabeledFlights
    validation: LabeledFlights
    test: LabeledFlights


def read_hyperparameters(settings: TrainSettings, overrides: Mapping[str, str]) -> Hyperparameters:
    values = {}
    if settings.hyperparameters_file.is_file():
        try:
            values = json.loads(settings.hyperparameters_file.read_text(encoding="utf-8"))
        except ValueError as e:
            raise InputError(f"{settings.hyperparameters_file.name} is not valid JSON: {e}") from None
        if not isinstance(values, dict):
            raise InputError(f"{settings.hyperparameters_file.name} must hold a JSON object")
    return parse_hyperparameters({**values, **overrides})


def read_input_config(settings: TrainSettings) -> dict:
    """inputdataconfig.json / resourceconfig.json, when SageMaker wrote them; checks declared channels
    exist."""
    configs = {}
    for key, path in (
        ("channels", settings.input_data_config_file),
        ("resources", settings.resource_config_file),
    ):
        if path.is_file():
            try:
                configs[key] = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as e:
                raise InputError(f"{path.name} is not valid JSON: {e}") from None
    channels = configs.get("channels", {})
    if channels and "training" not in channels:
        raise DatasetError(f"inputdataconfig.json declares channels {sorted(channels)} but not 'training'")
    return configs


def _subset(flights: LabeledFlights, index: np.ndarray) -> LabeledFlights:
    mask = np.zeros(len(flights.label), dtype=bool)
    mask[index] = True
    return LabeledFlights(flights.columns.subset(mask), flights.label[mask], int(mask.sum()))


def split_flights(flights: LabeledFlights, validation: LabeledFlights | None, hp: Hyperparameters) -> Splits:
    """Test split (random share, or the most recent weeks), then validation from the rest unless given.

    With ``split=time`` validation is the most recent part of the rest, just before the test weeks.
    """
    n = len(flights.label)
    validation_share = (
        0.0 if validation is not None else hp.validation_size
    )  # a channel costs no training rows
    if hp.split == "random":
        # RandomState.permutation is what scikit-learn's train_test_split uses: same seed, same test rows.
        order = np.random.RandomState(hp.seed).permutation(n)
        n_test = int(np.ceil(hp.test_size * n))
        test, rest = order[:n_test], order[n_test:]
        n_val = int(np.ceil(validation_share * len(rest)))
        val, train = rest[:n_val], rest[n_val:]
    else:
        scheduled = flights.columns.scheduled
        cutoff = scheduled.max() - np.timedelta64(hp.test_weeks * 7, "D")
        by_time = np.argsort(scheduled, kind="stable")
        is_test = scheduled[by_time] > cutoff
        test, rest = by_time[is_test], by_time[~is_test]
        n_val = int(np.ceil(validation_share * len(rest)))
        train, val = rest[: len(rest) - n_val], rest[len(rest) - n_val :]
    splits = Splits(_subset(flights, train), validation or _subset(flights, val), _subset(flights, test))
    for name in ("train", "validation", "test"):
        part = getattr(splits, name)
        if len(part.label) < MIN_ROWS or part.label.min() == part.label.max():
            raise DatasetError(
                f"the {name} split has {len(part.label)} rows with "
                f"{int(part.label.sum())} delayed: it needs at least {MIN_ROWS} rows and both "
                f"classes (more data, or other test_size/test_weeks/validation_size)"
            )
    return splits


def dataset_sha256(channel: Path) -> str:
    digest = hashlib.sha256()
    for path in channel_files(channel):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def git_commit(env: Mapping[str, str]) -> str:
    return env.get(GIT_COMMIT_ENV) or head_commit(Path(__file__).parent)


def run(settings: TrainSettings, overrides: Mapping[str, str], env: Mapping[str, str]) -> dict:
    """Train, evaluate and write the artifact; returns metrics. Raises InputError for bad input."""
    with stage("configure"):
        hp = read_hyperparameters(settings, overrides)
        configs = read_input_config(settings)
        _say(f"hyperparameters {json.dumps(hp.model_dump())}")
        if "resources" in configs:
            _say(f"resources {json.dumps(configs['resources'])}")
    with stage("load"):
        flights = load_channel(settings.training_channel, hp.max_invalid_fraction)
        validation = (
            load_channel(settings.validation_channel, hp.max_invalid_fraction)
            if settings.validation_channel.exists()
            else None
        )
        quality = flights.quality() | ({"validation": validation.quality()} if validation else {})
        for name, part in (("training", flights), ("validation", validation)):
            if part is not None:
                _say(
                    f"data {name} {json.dumps(part.quality() | {'problems': part.quality()['problems'][:5]})}"
                )
    with stage("split"):
        splits = split_flights(flights, validation, hp)
        _say(
            f"rows train={len(splits.train.label)} validation={len(splits.validation.label)} "
            f"test={len(splits.test.label)}"
        )
    with stage("features"):
        # vocabularies from every usable row, all splits: a destination first seen in the test weeks is a
        # known value, scored with its own code, not a refusal at serving time
        every_row = FlightColumns.concatenate(
            [flights.columns] + ([validation.columns] if validation else [])
        )
        spec = fit_feature_spec(every_row, hp.feature_set)
        model_splits = {
            k: Split(build_features(getattr(splits, k).columns, spec), getattr(splits, k).label)
            for k in ("train", "validation", "test")
        }
        base_spec = fit_feature_spec(every_row, "challenge")
        base_splits = {
            k: Split(build_features(getattr(splits, k).columns, base_spec), getattr(splits, k).label)
            for k in ("train", "validation", "test")
        }
    with stage("fit"):
        booster = fit_booster(model_splits["train"], model_splits["validation"], spec, hp, say=_say)
        baseline = fit_logistic_baseline(base_splits["train"].X, base_splits["train"].y, hp.seed)
    with stage("evaluate"):
        evaluation = evaluate(booster, baseline, model_splits, base_splits, hp)
        evaluation["data"] = flights.quality() | {"problems": len(flights.problems)}
        evaluation["best_iteration"] = int(booster.attr("best_iteration") or booster.num_boosted_rounds() - 1)
    with stage("write"):
        metadata = _metadata(booster, spec, hp, evaluation, settings, env)
        curves = evaluation.pop("_curves")
        evaluation["pr_curve"] = sample_pr_curves(curves[0])  # the PR comment's inline chart
        figures = render_figures(*curves)
        report = render_markdown(evaluation, metadata)
        settings.output_data_dir.mkdir(parents=True, exist_ok=True)  # first: a complete artifact means exit 0
        (settings.output_data_dir / "data_quality.json").write_text(json.dumps(quality, indent=2))
        write_artifact(
            settings.model_dir, booster, metadata, evaluation, {REPORT_FILE: report.encode(), **figures}
        )
    print_metrics(evaluation)
    return evaluation


def evaluate(
    booster,
    baseline,
    model_splits: dict[str, Split],
    base_splits: dict[str, Split],
    hp: Hyperparameters,
) -> dict:
    val, test = model_splits["validation"], model_splits["test"]
    p_val, p_test = predict_proba(booster, val.X), predict_proba(booster, test.X)
    threshold = tune_threshold(val.y, p_val, hp.target_recall)
    b_val = baseline_proba(baseline, base_splits["validation"].X)
    b_test = baseline_proba(baseline, base_splits["test"].X)
    b_threshold = tune_threshold(val.y, b_val, hp.target_recall)
    test_metrics = classification_metrics(test.y, p_test, threshold)
    _warn_if_off_target(classification_metrics(val.y, p_val, threshold)["recall"], hp.target_recall, p_val)
    majority = classification_metrics(test.y, np.zeros(len(test.y)), 0.5)
    model_pr = pr_curve(test.y, p_test)
    base_pr = pr_curve(test.y, b_test)
    return {
        "validation": classification_metrics(val.y, p_val, threshold),
        "test": test_metrics,
        "baselines": {
            "logistic_regression": classification_metrics(test.y, b_test, b_threshold),
            "majority": majority,
        },
        "_curves": (
            {"model": (model_pr[1], model_pr[0]), "logistic regression": (base_pr[1], base_pr[0])},
            (test_metrics["recall"], test_metrics["precision"]),
            test_metrics["confusion_matrix"],
        ),
    }


RECALL_TOLERANCE = 0.05


def _warn_if_off_target(recall: float, target: float, scores: np.ndarray) -> None:
    """Say so when the threshold search could not land near the target (a score with few levels)."""
    if abs(recall - target) > RECALL_TOLERANCE:
        _say(
            f"warning: the decision threshold reaches validation recall {recall:.3f}, not the target "
            f"{target}: the validation score has only {len(np.unique(scores))} levels"
        )


def _metadata(
    booster, spec, hp: Hyperparameters, evaluation: dict, settings: TrainSettings, env: Mapping[str, str]
) -> dict:
    raw = bytes(booster.save_raw("ubj"))
    return {
        "model_version": hashlib.sha256(raw).hexdigest()[:12],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "package_version": __version__,
        "git_commit": git_commit(env),
        "dataset_sha256": dataset_sha256(settings.training_channel),
        "hyperparameters": hp.model_dump(),
        "threshold": evaluation["validation"]["threshold"],
        "target_recall": hp.target_recall,
        "validation_recall": evaluation["validation"]["recall"],
        "features": spec.to_dict(),
        "input_schema": spec.input_schema().to_dict(),
    }


def print_metrics(evaluation: dict) -> None:
    for line in metric_lines(evaluation):
        _say(line)


def main(
    settings: TrainSettings, overrides: Mapping[str, str] | None = None, env: Mapping[str, str] = os.environ
) -> int:
    started = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, raise_on_sigterm)
    try:
        run(settings, overrides or {}, env)
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - the one failure boundary
        return fail(settings, error)
    finally:
        signal.signal(signal.SIGTERM, previous)
    _say(f"training complete in {time.perf_counter() - started:.2f} s; artifact in {settings.model_dir}")
    return 0
