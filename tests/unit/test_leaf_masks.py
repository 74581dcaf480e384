"""The leaf masks against XGBoost on a small in-process model, and the NumPy behaviour their sum relies on;
the tree walk too where the base margin is concerned.

Every row of the real dataset is compared in tests/quality/test_compact_engines.py; here the odd inputs: NaN
in every feature, categories below, inside and above the trained range, non-integer codes, one row, more rows
than a block, and trees too wide for a mask.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from scl_delay import leaf_masks, tree_walk

TYPES = ["q", "q", "q", "c", "c"]


def fitted(max_depth: int, rounds: int = 40) -> xgb.Booster:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(4000, len(TYPES))).astype(np.float32)
    X[:, 3], X[:, 4] = rng.integers(0, 25, len(X)), rng.integers(0, 6, len(X))
    X[rng.random(X.shape) < 0.08] = np.nan
    y = np.nan_to_num(X[:, 0]) + (X[:, 3] % 4 == 1) - (X[:, 4] == 2) + rng.normal(size=len(X)) > 0.3
    data = xgb.DMatrix(X, y.astype(int), feature_types=TYPES, enable_categorical=True)
    params = {"objective": "binary:logistic", "max_depth": max_depth, "max_cat_to_onehot": 1, "nthread": 1}
    # scale_pos_weight 1.3: a base score (0.504...) whose float64 logit is one bit off XGBoost's float32 one
    return xgb.train({**params, "scale_pos_weight": 1.3}, data, rounds)


def odd_rows(count: int) -> np.ndarray:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(count, len(TYPES))).astype(np.float32) * 3
    X[:, 3] = rng.integers(-3, 30, count) + rng.choice([0.0, 0.5], count)  # out of range, non-integer
    X[:, 4] = rng.integers(-1, 8, count)
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


@pytest.mark.parametrize("depth", [1, 4, 6])
def test_leaf_masks_give_xgboosts_bits(depth):
    booster = fitted(depth)
    masks = leaf_masks.from_xgboost_json(json.loads(booster.save_raw("json")))
    rows = np.concatenate([odd_rows(masks.block_rows + 300), masks.probe_rows(2000)])
    expected = booster.inplace_predict(rows)
    assert np.array_equal(masks.predict_proba(rows), expected)  # more rows than a block: block by block
    one_by_one = np.concatenate([masks.predict_proba(rows[i : i + 1]) for i in range(200)])
    assert np.array_equal(one_by_one, expected[:200])
    assert masks.predict_proba(rows[:0]).shape == (0,)


def test_the_base_margin_is_xgboosts_float32_logit():
    booster = fitted(2, rounds=1)
    doc = json.loads(booster.save_raw("json"))
    base_score = float(doc["learner"]["learner_model_param"]["base_score"].strip("[]"))
    assert base_score != 0.5
    # a float64 logit rounded to float32 is one bit off here, and with it most probabilities
    for engine in (leaf_masks.from_xgboost_json(doc), tree_walk.from_xgboost_json(doc)):
        rows = odd_rows(500)
        assert np.array_equal(engine.predict_proba(rows), booster.inplace_predict(rows))


def test_trees_wider_than_a_mask_are_refused():
    doc = json.loads(fitted(8, rounds=3).save_raw("json"))
    with pytest.raises(ValueError, match="leaf masks hold at most 64"):
        leaf_masks.from_xgboost_json(doc)


@pytest.mark.parametrize("columns", [2, 3, 7, 8, 9, 1000])
def test_numpy_reduces_the_first_axis_row_after_row(columns):
    """What ``LeafMasks`` relies on for XGBoost's float32 sum in tree order: over the first axis of a
    C-ordered 2-D array with two columns or more, ``np.add.reduce`` adds each row into the sums in turn
    (pairwise summation, which rounds differently, applies only along a contiguous reduced axis, as with one
    column)."""
    rng = np.random.default_rng(columns)
    for _ in range(20):
        terms = (rng.normal(size=(300, columns)) * rng.choice([1e-3, 1.0, 1e3], (300, 1))).astype(np.float32)
        in_order = terms[0].copy()
        for row in terms[1:]:
            in_order += row
        assert np.array_equal(np.add.reduce(terms, axis=0), in_order)
