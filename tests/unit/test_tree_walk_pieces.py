"""The one-row walk reads a categorical feature's tests in pieces small enough that NumPy keeps the GIL
while copying them (it lets it go above ``GIL_KEEPING_SIZE`` values, and a serving thread then waits)."""

import numpy as np

from scl_delay.tree_walk import GIL_KEEPING_SIZE, CategoricalTests


def test_a_wide_test_table_is_read_in_pieces_that_keep_the_gil():
    k, tests = 70, 2 * GIL_KEEPING_SIZE + 37  # wider than the SCL model's 779 destination tests
    # rows: <0, 0..k-1, >=k, inf, NaN; the inf row as the one before it, as _categorical_tests builds them
    table = np.random.default_rng(0).random((k + 4, tests), dtype=np.float32)
    table[k + 2], table[k + 3] = table[k + 1], np.nan
    edges = np.r_[np.arange(k + 1), np.inf, np.nan].astype(np.float32)
    cats = CategoricalTests(8, slice(19, 19 + tests), edges, tuple(edges[:-1].tolist()), table)
    for code in (-1.0, 0.0, 3.0, 69.0, 70.0, 1e9, float("inf"), float("nan")):
        pieces = cats.row_pieces(code)
        assert all(len(piece) <= GIL_KEEPING_SIZE and piece.flags.c_contiguous for piece in pieces)
        whole_row = cats.values(np.array([code], dtype=np.float32))[0]
        assert np.array_equal(np.concatenate(pieces), whole_row, equal_nan=True)
