"""The walk's logistic: the one-row path (Python floats rounded to float32) gives the bits of the array
path."""

import numpy as np

from scl_delay.tree_walk import sigmoid, sigmoid_one


def test_one_row_sigmoid_gives_the_array_paths_bits():
    rng = np.random.default_rng(1)
    edges = [0.0, -0.0, 88.7, -88.7, 89.0, -89.0, 1e-30, np.inf, -np.inf]
    margins = np.concatenate([rng.normal(0, 3, 50_000), rng.uniform(-100, 100, 20_000), edges]).astype(
        np.float32
    )
    singles = [sigmoid_one(m) for m in margins.tolist()]
    assert all(p == float(np.float32(p)) for p in singles)  # already float32 values, not rounded later
    one_by_one = np.array(singles, dtype=np.float32)
    assert np.array_equal(one_by_one.view(np.int32), sigmoid(margins).view(np.int32))
