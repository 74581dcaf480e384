"""An XGBoost tree ensemble as flat NumPy arrays, walked one level per step for every tree at once.

XGBoost's ``inplace_predict`` costs ~270 µs per call however few rows it gets (a fixed cost per call);
this walk costs ~20-30 µs for one row and grows with the rows, so single rows use it and larger requests
go to ``leaf_masks`` (or, for trees too wide for those, XGBoost past a few dozen rows: ``model.Predictor``
picks by row count). It reproduces XGBoost's own arithmetic: the
float32 comparison ``x < split_condition``, missing values to each node's default child, categorical
splits by set membership (a category in the node's set goes right; a negative, too large or absent
category goes left, as ``common::Decision`` does), leaf values summed in float32 in tree order from the
base margin (XGBoost's float32 logit of its base score), then the logistic in float32.

Every node is rewritten as one test, "row value < threshold", choosing the first of its two children when
true and the second when false; NaN compares false, so the second child is the default one:

- numeric split, missing goes right: ``x < cond`` picks (left, right);
- numeric split, missing goes left: ``-x < -prev(cond)`` is ``x >= cond`` in float32, picks (right, left);
- categorical split: a per-request column per node holding 1 if the category is in the node's set, 0 if
  not, NaN if missing (negated when missing goes left), tested against 0.5 (or -0.5) the same way;
- leaf: a constant 0 column against 1, always true, and its first child is itself.

So one step for all trees is four gathers, a comparison and a subtraction. Only pure NumPy: no scipy,
no compiler, no new dependency.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np


def _libm(name: str):
    """The C library's float function ``name`` (``expf``, ``logf``: what XGBoost calls); None where it
    cannot be loaded. Through ``PyDLL``, which keeps the GIL: ``CDLL`` releases it on every call, and a
    serving thread then waits for another thread to give it back."""
    try:
        function = getattr(ctypes.PyDLL(ctypes.util.find_library("m") or "libm.so.6"), name)
    except (OSError, AttributeError):
        return None
    function.restype, function.argtypes = ctypes.c_float, [ctypes.c_float]
    return function


_EXPF, _LOGF = _libm("expf"), _libm("logf")
_MAX_EXPONENT, _EPSILON = float(np.float32(88.7)), float(np.float32(1e-16))
_FLOAT32 = struct.Struct("f")


def _f32(x: float) -> float:
    """``x`` rounded to float32. A sum or quotient of float32 values computed in float64 and rounded so is
    the float32 operation's own result (53 >= 2 x 24 + 2 bits: double rounding is innocuous)."""
    return _FLOAT32.unpack(_FLOAT32.pack(x))[0]


_ZERO = np.zeros(1, dtype=np.float32)
# NumPy releases the GIL while it copies, compares or gathers more values than this in one call, and a
# serving thread that lets it go waits for another thread to give it back (up to 5 ms, and tens of µs of
# CPU under load): the one-row path keeps every call within it for models of fewer than 500 trees (its
# steps handle one node id per tree at once).
GIL_KEEPING_SIZE = 500


def logit(base_score: float) -> np.float32:
    """The base margin of a logistic model as XGBoost's ``ProbToMargin`` computes it, in float32:
    ``-logf(1 / p - 1)``. The same logit in float64, rounded, differs in the last bit for most base scores
    (65% of 20,000 random ones), and every probability with it."""
    p = np.float32(base_score)
    odds_against = float(np.float32(1) / p - np.float32(1))
    if _LOGF is None:
        return np.float32(-np.log(np.float32(odds_against)))
    return np.float32(-_LOGF(odds_against))


def sigmoid(margin: np.ndarray) -> np.ndarray:
    """XGBoost's ``common::Sigmoid`` in float32: 1 / (expf(min(-x, 88.7)) + 1 + 1e-16).

    NumPy's float32 ``exp`` differs from the C library's ``expf`` in the last bit for ~18% of values,
    and a float64 ``exp`` rounded to float32 for ~0.01%; the C function itself gives the very bits
    XGBoost gives, so a record's probability, and its decision at a threshold that is itself a training
    score, never depend on which engine scored it. A call per row costs ~0.3 µs."""
    x = np.minimum(-margin, np.float32(_MAX_EXPONENT))
    if _EXPF is None:
        e = np.exp(x.astype(np.float64)).astype(np.float32)
    else:
        e = np.fromiter(map(_EXPF, x.tolist()), dtype=np.float32, count=len(x))
    return np.float32(1) / (e + np.float32(1) + np.float32(_EPSILON))


def sigmoid_one(margin: float) -> float:
    """``sigmoid`` of one float32 margin, in Python floats rounded to float32 (no NumPy call)."""
    if _EXPF is None:
        return float(sigmoid(np.array([margin], dtype=np.float32))[0])
    e = _EXPF(min(-margin, _MAX_EXPONENT))
    return _f32(1.0 / _f32(_f32(e + 1.0) + _EPSILON))


@dataclass(frozen=True)
class CategoricalTests:
    """The distinct categorical tests on one feature: each one's value for every category, by row."""

    feature: int
    columns: slice  # where these tests' values sit in the augmented row
    edges: np.ndarray  # float32 [0, 1, ..., k, inf, nan]: a code's table row is bisect_right(bounds, code)
    bounds: tuple[float, ...]  # the same without the NaN, for one row at a time
    table: np.ndarray  # float32 (k + 4, tests): below 0, codes 0..k-1, k and above, inf, missing

    def values(self, codes: np.ndarray) -> np.ndarray:
        rows = np.floor(codes) + 1  # the table row of codes 0..k-1; NaN stays NaN
        # below 0 -> row 0; k and above (inf too) -> row k + 1, which holds what the inf row holds
        np.clip(rows, 0, len(self.edges) - 2, out=rows)
        rows[np.isnan(rows)] = len(self.edges)  # missing: the last row
        tests = self.table.shape[1]
        return self.table.reshape(-1)[rows.astype(np.intp)[:, None] * tests + np.arange(tests)]

    def row_pieces(self, code: float) -> tuple[np.ndarray, ...]:
        """``values`` for one code, with Python's bisect (NaN last), in pieces of at most
        ``GIL_KEEPING_SIZE`` values."""
        row = len(self.edges) if code != code else bisect.bisect_right(self.bounds, code)
        return tuple(piece[row] for piece in self._pieces)

    @cached_property
    def _pieces(self) -> tuple[np.ndarray, ...]:
        """The table cut by columns, each piece contiguous: copying a row of more values would release the
        GIL."""
        starts = range(0, self.table.shape[1], GIL_KEEPING_SIZE)
        return tuple(np.ascontiguousarray(self.table[:, i : i + GIL_KEEPING_SIZE]) for i in starts)


@dataclass(frozen=True)
class TreeWalk:
    """Flat node arrays of an ensemble; see the module docstring for the one-test-per-node encoding."""

    column: np.ndarray  # intp per node: which value of the augmented row the node tests
    threshold: np.ndarray  # float32 per node
    second_child: np.ndarray  # intp per node: the child taken when the test is false; the other is one less
    leaf_value: np.ndarray  # float32 per node (0 for split nodes)
    roots: np.ndarray  # intp per tree: first a one-leaf tree holding the base margin, then XGBoost's order
    depth: int  # steps that take every root to a leaf
    features: int
    row_width: int
    categorical: tuple[CategoricalTests, ...]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(delay) for each row of a float32 feature matrix, as XGBoost computes it."""
        rows = X.shape[0]
        values = self._augmented_rows(np.asarray(X, dtype=np.float32))
        column, threshold, second_child = self.column, self.threshold, self.second_child
        first_column, first_threshold, first_step = self._first_level
        if rows == 1:  # one row: no offsets (each NumPy call costs ~0.5 µs here, whatever its size)
            node = first_step - (values[first_column] < first_threshold)
            for _ in range(self.depth - 1):
                node = second_child[node] - (values[column[node]] < threshold[node])
            margin = np.add.accumulate(self.leaf_value[node]).item(-1)  # float32 sums, in tree order
            return np.array([sigmoid_one(margin)], dtype=np.float32)
        offset = (np.arange(rows, dtype=np.intp) * self.row_width)[:, None]
        node = first_step - (values[first_column + offset] < first_threshold)
        for _ in range(self.depth - 1):
            node = second_child[node] - (values[column[node] + offset] < threshold[node])
        margin = np.add.accumulate(self.leaf_value[node], axis=1)[:, -1]  # float32, in tree order
        return sigmoid(margin)

    @cached_property
    def _first_level(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The roots' columns, thresholds and second children: the first step needs no gather of its own (a
        leaf's step keeps it where it is, so a walk of depth 0 takes this step harmlessly)."""
        roots = self.roots
        return self.column[roots], self.threshold[roots], self.second_child[roots]

    def probe_rows(self, rows: int, seed: int = 0) -> np.ndarray:
        """Feature rows that reach every kind of branch, to check the walk against XGBoost: each value is
        one of its feature's split conditions or a float32 step either side, a category (in range, out of
        range, negative), or missing."""
        rng = np.random.default_rng(seed)
        X = np.empty((rows, self.features), dtype=np.float32)
        f = self.features
        for feature in range(f):
            conditions = np.r_[
                self.threshold[self.column == feature],
                np.nextafter(-self.threshold[self.column == f + feature], np.float32(np.inf)),
            ].astype(np.float32)
            candidates = [conditions, np.nextafter(conditions, np.float32(-np.inf)), [np.nan, 0.0]]
            candidates += [np.arange(-1, len(t.edges)) for t in self.categorical if t.feature == feature]
            X[:, feature] = rng.choice(np.concatenate(candidates).astype(np.float32), rows)
        return X

    def _augmented_rows(self, X: np.ndarray) -> np.ndarray:
        """[x, -x, 0, one value per distinct categorical test] for each row, flattened."""
        if X.shape[0] == 1:
            x, floats = X[0], X.tolist()[0]
            cat_values = [
                piece for tests in self.categorical for piece in tests.row_pieces(floats[tests.feature])
            ]
            return np.concatenate((x, -x, _ZERO, *cat_values))
        f = self.features
        out = np.empty((X.shape[0], self.row_width), dtype=np.float32)
        out[:, :f] = X
        np.negative(X, out=out[:, f : 2 * f])
        out[:, 2 * f] = 0.0
        for tests in self.categorical:
            out[:, tests.columns] = tests.values(X[:, tests.feature])
        return out.ravel()


def from_xgboost_json(doc: Mapping, trees: Sequence[int] | None = None) -> TreeWalk:
    """Build the walk from XGBoost's JSON model (``Booster.save_raw("json")``), for the trees numbered in
    ``trees`` (default all). Raises ValueError for anything it does not reproduce exactly."""
    return _assemble(*ensemble(doc, trees))


def ensemble(doc: Mapping, trees: Sequence[int] | None = None) -> tuple[list[Mapping], int, np.float32]:
    """The trees numbered in ``trees`` (default all) of XGBoost's JSON model, its feature count and its base
    margin; ValueError for a model that is not one binary logistic tree ensemble."""
    learner = doc["learner"]
    objective = learner["objective"]["name"]
    if objective not in ("binary:logistic", "reg:logistic"):
        raise ValueError(f"objective {objective!r} is not supported")
    booster = learner["gradient_booster"]
    if booster.get("name") != "gbtree":
        raise ValueError(f"booster {booster.get('name')!r} is not supported")
    params = learner["learner_model_param"]
    if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) != 1:
        raise ValueError("only single-output models are supported")
    all_trees = booster["model"]["trees"]
    chosen = [all_trees[i] for i in (range(len(all_trees)) if trees is None else trees)]
    base_margin = logit(float(str(params["base_score"]).strip("[]")))
    return chosen, int(params["num_feature"]), base_margin


def _assemble(trees: list[Mapping], features: int, base_margin: np.float32) -> TreeWalk:
    zero_column = 2 * features
    nodes = 1 + sum(int(t["tree_param"]["num_nodes"]) for t in trees)
    column = np.full(nodes, zero_column, dtype=np.intp)
    threshold = np.ones(nodes, dtype=np.float32)
    second_child = np.arange(1, nodes + 1, dtype=np.intp)  # leaves stay where they are
    leaf_value = np.zeros(nodes, dtype=np.float32)
    leaf_value[0] = base_margin  # XGBoost starts every sum from the base margin
    roots, depth, next_free = [0], 0, 1
    cat_nodes: dict[tuple, list[int]] = {}  # (feature, categories going right, missing goes left) -> nodes
    for tree in trees:
        left, right = tree["left_children"], tree["right_children"]
        cond = np.asarray(tree["split_conditions"], dtype=np.float32)
        categorical = categorical_sets(tree)
        roots.append(next_free)
        queue = [(0, next_free, 0)]  # (XGBoost node id, our position, level)
        next_free += 1
        while queue:
            nid, at, level = queue.pop()
            if left[nid] == -1:
                leaf_value[at] = cond[nid]  # a leaf's split_condition holds its value
                depth = max(depth, level)
                continue
            feature, default_left = tree["split_indices"][nid], bool(tree["default_left"][nid])
            if nid in categorical:
                cat_nodes.setdefault((feature, tuple(categorical[nid]), default_left), []).append(at)
                threshold[at] = -0.5 if default_left else 0.5
                first, second = (right[nid], left[nid]) if default_left else (left[nid], right[nid])
            elif default_left:
                column[at] = features + feature
                threshold[at] = -np.nextafter(cond[nid], np.float32(-np.inf))
                first, second = right[nid], left[nid]
            else:
                column[at] = feature
                threshold[at] = cond[nid]
                first, second = left[nid], right[nid]
            second_child[at] = next_free + 1
            queue += [(first, next_free, level + 1), (second, next_free + 1, level + 1)]
            next_free += 2
    categorical_tests = _categorical_tests(cat_nodes, column, first_column=2 * features + 1)
    width = 2 * features + 1 + sum(t.table.shape[1] for t in categorical_tests)
    roots_array = np.asarray(roots, dtype=np.intp)
    return TreeWalk(
        column, threshold, second_child, leaf_value, roots_array, depth, features, width, categorical_tests
    )


def categorical_sets(tree: Mapping) -> dict[int, list[int]]:
    """Node id -> the categories that go right, for the tree's categorical split nodes."""
    sets = {}
    categories = tree.get("categories", [])
    for nid, start, size in zip(
        tree.get("categories_nodes", []),
        tree.get("categories_segments", []),
        tree.get("categories_sizes", []),
    ):
        sets[nid] = categories[start : start + size]
    return {nid: sets.get(nid, []) for nid, kind in enumerate(tree["split_type"]) if kind == 1}


def _categorical_tests(
    cat_nodes: dict[tuple, list[int]], column: np.ndarray, first_column: int
) -> tuple[CategoricalTests, ...]:
    """One table per categorical feature, its tests side by side in the augmented row; points each
    categorical node's ``column`` at its test. A test's value is NaN for a missing category, 1 for one in
    its set (goes right), 0 for any other (a negative or too large code included), negated where missing
    goes left so that the node's threshold of -0.5 picks the right child first."""
    out, next_column = [], first_column
    for feature in sorted({feature for feature, _, _ in cat_nodes}):
        tests = [(members, flip, nodes) for (f, members, flip), nodes in cat_nodes.items() if f == feature]
        k = max((max(members) + 1 for members, _, _ in tests if members), default=0)
        table = np.zeros((k + 4, len(tests)), dtype=np.float32)  # rows: <0, 0..k-1, >=k, inf, missing
        table[k + 3] = np.nan
        for j, (members, flip, nodes) in enumerate(tests):
            table[np.asarray(members, dtype=np.intp) + 1, j] = 1.0
            if flip:
                table[:, j] *= -1.0
            column[nodes] = next_column + j
        edges = np.r_[np.arange(k + 1), np.inf, np.nan].astype(np.float32)
        columns = slice(next_column, next_column + len(tests))
        out.append(CategoricalTests(feature, columns, edges, tuple(edges[:-1].tolist()), table))
        next_column += len(tests)
    return tuple(out)
