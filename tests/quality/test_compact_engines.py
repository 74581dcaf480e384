"""The compact engines (the NumPy tree walk and the leaf masks) give XGBoost's very probabilities, on every
row, whatever the request size.

Models are fitted in-process on a time prefix of the data, so later rows carry airlines and destinations
the vocabulary never saw (scored as missing, as training scores them). Some training values are blanked
so that both default directions occur on numeric splits; ``max_cat_to_onehot=1`` makes partition splits
(sets of several categories) instead of one-hot ones. Runs on synthetic data always, and on every row of
the real dataset when SCL_DATASET names it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest

from scl_delay import leaf_masks
from scl_delay.dataset import load_channel
from scl_delay.features import build_features, fit_feature_spec
from scl_delay.hyperparameters import parse_hyperparameters
from scl_delay.model import Predictor, Split, fit_booster, predict_proba
from scl_delay.synthetic import generate

VARIANTS = {
    "full, one-hot categories": ("full", {}),
    "full, partition categories, depth 6": ("full", {"max_cat_to_onehot": 1, "max_depth": 6}),
    "challenge": ("challenge", {}),
}
DEEP = "full, depth 8"  # trees of up to 256 leaves: more than a leaf mask holds
MODELS = {**VARIANTS, DEEP: ("full", {"max_depth": 8})}
CHUNK_ROWS = 1000  # the walk holds rows x trees node ids at once: check in chunks


@pytest.fixture(scope="module", params=["synthetic", "SCL_DATASET"])
def data_file(request, tmp_path_factory) -> Path:
    if request.param == "SCL_DATASET":
        named = os.environ.get("SCL_DATASET")
        if not named:
            pytest.skip("SCL_DATASET is not set (CI sets it to ../shared/data/dataset_SCL.csv)")
        return Path(named)
    path = tmp_path_factory.mktemp("walk") / "flights.csv"
    generate(6000, seed=11).to_csv(path, index=False)
    return path


@functools.cache
def fit_on_prefix(data_file: Path, variant: str) -> tuple[Predictor, np.ndarray]:
    """A predictor fitted on the first 70% of flights by time, and the features of every flight."""
    feature_set, overrides = MODELS[variant]
    flights = load_channel(data_file, max_invalid_fraction=1.0)
    order = np.argsort(flights.columns.scheduled, kind="stable")
    cut_train, cut_valid = int(len(order) * 0.7), int(len(order) * 0.8)
    train, valid = (
        flights.columns.subset(order[:cut_train]),
        flights.columns.subset(order[cut_train:cut_valid]),
    )
    spec = fit_feature_spec(train, feature_set)
    hp = parse_hyperparameters({"num_round": 150, "early_stopping_rounds": 20, "eta": 0.1, **overrides})
    X_train = build_features(train, spec)
    rng = np.random.default_rng(3)
    numeric = np.array([t == "q" for t in spec.types])
    X_train[(rng.random(X_train.shape) < 0.03) & numeric] = np.nan  # both default directions get learned
    booster = fit_booster(
        Split(X_train, flights.label[order[:cut_train]]),
        Split(build_features(valid, spec), flights.label[order[cut_train:cut_valid]]),
        spec,
        hp,
    )
    predictor = Predictor.from_bytes(bytes(booster.save_raw("ubj")), spec, threshold=0.5)
    return predictor, build_features(flights.columns, spec)


@pytest.mark.quality
@pytest.mark.timeout(600)
@pytest.mark.parametrize("engine", ["walk", "masks"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_compact_engine_gives_xgboosts_probabilities_on_every_row(data_file, variant, engine):
    predictor, X = fit_on_prefix(data_file, variant)
    scorer = getattr(predictor, engine)
    assert scorer is not None, f"the {engine} engine turned itself off for this model"
    rng = np.random.default_rng(5)
    blanked = X.copy()
    blanked[rng.random(X.shape) < 0.05] = np.nan
    rows = np.concatenate([X, blanked, scorer.probe_rows(5000, seed=9)])
    unknown = np.isnan(X[:, [i for i, t in enumerate(predictor.spec.types) if t == "c"]]).any(axis=1)
    if predictor.spec.feature_set == "full" and data_file.name != "flights.csv":
        assert unknown.any(), "the prefix should leave later destinations unknown"
    worst, differing = 0.0, 0
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        scored = scorer.predict_proba(chunk)
        expected = predict_proba(predictor.booster, chunk, predictor.iteration_range)
        worst = max(worst, float(np.abs(scored.astype(np.float64) - expected).max()))
        differing += int(np.count_nonzero(scored != expected))
    assert worst <= 1e-6, f"max |{engine} - XGBoost| = {worst:.3g} over {len(rows)} rows"
    assert differing == 0, f"{differing} of {len(rows)} rows differ in some bit from XGBoost"
    some = rows[rng.choice(len(rows), 3000, replace=False)]  # one row at a time takes its own path
    one_by_one = np.concatenate([scorer.predict_proba(some[i : i + 1]) for i in range(len(some))])
    assert np.array_equal(one_by_one, predict_proba(predictor.booster, some, predictor.iteration_range))


@pytest.mark.quality
def test_predictor_answers_the_same_whichever_engine_scores_a_request(data_file):
    predictor, X = fit_on_prefix(data_file, "full, one-hot categories")
    assert predictor.walk_max_rows == 1, "with the leaf masks on, the walk takes single rows only"
    rows = X[: 2 * predictor.masks.block_rows + 7]  # the masks score more than a block of rows block by block
    one_by_one = np.concatenate([predictor.predict_proba(rows[i : i + 1]) for i in range(100)])  # the walk
    in_small_batches = np.concatenate([predictor.predict_proba(rows[i : i + 7]) for i in range(0, 700, 7)])
    as_one_batch = predictor.predict_proba(rows)
    expected = predict_proba(predictor.booster, rows, predictor.iteration_range)
    assert np.array_equal(as_one_batch, expected)
    assert np.array_equal(one_by_one, expected[:100])
    assert np.array_equal(in_small_batches, expected[:700])


@pytest.mark.quality
def test_trees_too_wide_for_leaf_masks_go_to_the_walk_and_xgboost(data_file):
    predictor, X = fit_on_prefix(data_file, DEEP)
    assert predictor.masks is None, "trees of up to 256 leaves do not fit a 64-bit mask"
    doc, trees = predictor._model_json()
    with pytest.raises(ValueError, match="leaf masks hold at most 64"):  # that reason, not another
        leaf_masks.from_xgboost_json(doc, trees)
    assert predictor.walk is not None and predictor.walk_max_rows > 1
    rows = X[: predictor.walk_max_rows + 50]
    expected = predict_proba(predictor.booster, rows, predictor.iteration_range)
    assert np.array_equal(predictor.predict_proba(rows), expected)  # more rows than the walk takes: XGBoost
    walked = predictor.predict_proba(rows[: predictor.walk_max_rows])
    assert np.array_equal(walked, expected[: predictor.walk_max_rows])
