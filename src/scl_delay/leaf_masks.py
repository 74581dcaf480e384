"""An XGBoost tree ensemble scored by leaf masks, every tree at once (QuickScorer: Lucchese et al.,
"QuickScorer: a Fast Algorithm to Rank Documents with Additive Ensembles of Regression Trees", SIGIR 2015).

Number each tree's leaves left to right and give it a bit mask of them, all set. A split node that sends a
row right rules out the leaves of its left subtree; the leaf the row reaches is the leftmost one that no node
rules out, whichever way the nodes off its path send it. A node's verdict depends on one feature only, so for
each feature the split conditions of all trees cut its values into bins, and one table row per bin holds, for
every tree, the AND of what that tree's nodes on the feature rule out. Scoring a row is then one table row
per feature ANDed together, the lowest set bit of each tree's mask, and that leaf's value: a few whole-array
NumPy passes over rows x trees, however deep the trees (up to 64 leaves: a tree's mask is one unsigned
integer).

The verdicts are XGBoost's own, as ``tree_walk`` reproduces them (the float32 comparison
``x < split_condition``, missing values to the node's default child, a category in a categorical node's set
going right and a negative, too large or absent one left), and so is the sum: the base margin (XGBoost's
float32 logit of its base score), then the leaf values in tree order, in float32, then XGBoost's logistic.
Measured on the default model (277 trees of depth 4, 9 features; README, "Benchmarks"): 50-70 µs for one
row and 1.4-1.8 µs a row at 1,000 rows, where XGBoost's ``inplace_predict`` costs 200-300 µs and 5-6 µs a
row; the level-by-level walk stays faster for one row (20-30 µs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .tree_walk import categorical_sets, ensemble, sigmoid

MAX_LEAVES = 64  # leaves of the widest tree: its mask must fit an unsigned integer
# rows scored at once: each array of rows x trees (masks, terms) stays within this many bytes
BLOCK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class FeatureMasks:
    """One feature's bins and, per bin, what each tree's nodes on that feature rule out."""

    feature: int
    edges: np.ndarray  # float32, sorted: a value's bin is how many edges it reaches (searchsorted right)
    masks: np.ndarray  # (len(edges) + 2, trees): a row per bin, then one for missing values

    def rows(self, x: np.ndarray) -> np.ndarray:
        bins = np.searchsorted(self.edges, x, side="right")
        bins[np.isnan(x)] = len(self.edges) + 1
        return self.masks[bins]

    def representatives(self) -> np.ndarray:
        """A value of each bin, in table order: below the first edge, each edge, missing."""
        below = np.nextafter(self.edges[:1], np.float32(-np.inf))
        return np.r_[below, self.edges, np.nan].astype(np.float32)


@dataclass(frozen=True)
class LeafMasks:
    features: tuple[FeatureMasks, ...]  # those some node splits on
    leaf_values: np.ndarray  # float32 (trees x widest), each tree's leaves left to right, padded with zeros
    leaf_offsets: np.ndarray  # per tree, where its leaves start in ``leaf_values`` flattened
    base_margin: np.float32
    width: int  # features of a row

    @property
    def block_rows(self) -> int:
        """Rows scored at once (3,771 for the default model's 277 trees): per row, a mask and a float32 term
        per tree, whichever is wider."""
        mask_bytes = self.features[0].masks.itemsize if self.features else 1
        return max(BLOCK_BYTES // ((len(self.leaf_offsets) + 1) * max(mask_bytes, 4)), 1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(delay) for each row of a float32 feature matrix, as XGBoost computes it."""
        X = np.asarray(X, dtype=np.float32)
        block = self.block_rows
        if X.shape[0] <= block:
            return sigmoid(self._margins(X))
        return sigmoid(np.concatenate([self._margins(X[i : i + block]) for i in range(0, X.shape[0], block)]))

    def _margins(self, X: np.ndarray) -> np.ndarray:
        rows, trees = X.shape[0], len(self.leaf_offsets)
        mask = found = None
        for feature in self.features:
            found = feature.rows(X[:, feature.feature])
            mask = found if mask is None else np.bitwise_and(mask, found, out=mask)
        if mask is None:  # no tree splits: every tree is its root leaf
            mask = np.ones((rows, trees), dtype=np.uint8)
        spare = found if found is not mask else None  # the last feature's rows, no longer needed
        # unsigned: -m is the two's complement, and m & -m keeps the lowest set bit
        lowest = np.bitwise_and(mask, np.negative(mask, out=spare), out=mask)
        leaf = np.bitwise_count(np.subtract(lowest, 1, out=lowest))  # the lowest set bit's position
        # trees by rows from here on (transposing the one-byte leaf numbers is the cheapest place)
        where = np.add(
            leaf.T, self.leaf_offsets[:, None], out=np.empty((trees, rows), self.leaf_offsets.dtype)
        )
        terms = np.empty((trees + 1, rows), dtype=np.float32)
        terms[0] = self.base_margin
        np.take(self.leaf_values.ravel(), where, out=terms[1:], mode="wrap")  # valid: "wrap" skips a copy
        if rows == 1:  # a reduce over one column pairs the terms up; accumulate adds them in order
            return np.add.accumulate(terms[:, 0])[-1:]
        # over the first axis of a C-ordered array, NumPy adds row after row into the sums: float32 in tree
        # order, as XGBoost adds them (tests/unit/test_leaf_masks.py pins it)
        return np.add.reduce(terms, axis=0)

    def probe_rows(self, rows: int, seed: int = 0) -> np.ndarray:
        """Feature rows drawn from every bin of every feature (missing and out-of-range values included), to
        check the masks against XGBoost."""
        rng = np.random.default_rng(seed)
        X = np.zeros((rows, self.width), dtype=np.float32)
        for feature in self.features:
            X[:, feature.feature] = rng.choice(feature.representatives(), rows)
        return X


def from_xgboost_json(doc: Mapping, trees: Sequence[int] | None = None) -> LeafMasks:
    """Build the masks from XGBoost's JSON model (``Booster.save_raw("json")``), for the trees numbered in
    ``trees`` (default all). Raises ValueError for anything they do not reproduce exactly."""
    chosen, width, base_margin = ensemble(doc, trees)
    shapes = [_Tree(tree) for tree in chosen]
    widest = max((len(s.leaves) for s in shapes), default=1)
    if widest > MAX_LEAVES:
        raise ValueError(f"a tree has {widest} leaves; leaf masks hold at most {MAX_LEAVES}")
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if np.iinfo(t).bits >= widest)
    leaf_values = np.zeros((len(shapes), widest), dtype=np.float32)
    for t, shape in enumerate(shapes):
        leaf_values[t, : len(shape.leaves)] = shape.values
    features = tuple(
        _feature_masks(feature, shapes, dtype)
        for feature in range(width)
        if any(feature in s.edges for s in shapes)
    )
    # the narrowest index type: a leaf's position (uint8) plus its tree's offset stays in it
    offsets = (np.arange(len(shapes)) * widest).astype(np.min_scalar_type(leaf_values.size))
    return LeafMasks(features, leaf_values, offsets, base_margin, width)


class _Tree:
    """One XGBoost tree: its leaves left to right, and for each split node its feature, verdict rule and the
    leaves of its left subtree."""

    def __init__(self, tree: Mapping):
        self.left, self.right = tree["left_children"], tree["right_children"]
        self.features, self.default_left = tree["split_indices"], tree["default_left"]
        self.conditions = np.asarray(tree["split_conditions"], dtype=np.float32)
        self.categories = {nid: set(members) for nid, members in categorical_sets(tree).items()}
        self.leaves: list[int] = []
        self.left_leaves: dict[int, tuple[int, int]] = {}  # split node -> [first, end) of its left subtree
        self._number(0)
        self.values = self.conditions[self.leaves]  # a leaf's split_condition holds its value
        self.edges: dict[int, set[float]] = {}  # feature -> the values where a verdict may change
        for nid in self.left_leaves:
            found = self.edges.setdefault(self.features[nid], set())
            if nid in self.categories:
                found.update(range(max(self.categories[nid], default=-1) + 2))  # 0..k: below, each, above
            else:
                found.add(float(self.conditions[nid]))

    def _number(self, root: int) -> None:
        stack = [(root, False)]  # iterative: (node, its left subtree already numbered)
        starts: dict[int, int] = {}
        while stack:
            nid, visited = stack.pop()
            if self.left[nid] == -1:
                self.leaves.append(nid)
            elif not visited:
                starts[nid] = len(self.leaves)
                stack += [(nid, True), (self.left[nid], False)]
            else:
                self.left_leaves[nid] = (starts[nid], len(self.leaves))
                stack.append((self.right[nid], False))

    def goes_right(self, nid: int, x: np.ndarray) -> np.ndarray:
        """The node's verdict for each value of ``x``: True where it sends the value right."""
        missing = np.isnan(x)
        if nid in self.categories:
            codes = np.floor(np.where(missing, -1, x))
            right = np.isin(codes, list(self.categories[nid])) & (codes >= 0)
        else:
            with np.errstate(invalid="ignore"):
                right = ~(x < self.conditions[nid])
        return np.where(missing, not self.default_left[nid], right)


def _feature_masks(feature: int, shapes: list[_Tree], dtype: type) -> FeatureMasks:
    edges = np.array(sorted(set().union(*(s.edges.get(feature, ()) for s in shapes))), dtype=np.float32)
    table = FeatureMasks(
        feature, edges, np.full((len(edges) + 2, len(shapes)), np.iinfo(dtype).max, dtype=dtype)
    )
    values = table.representatives()
    for t, shape in enumerate(shapes):
        for nid, (first, end) in shape.left_leaves.items():
            if shape.features[nid] == feature:
                ruled_out = dtype(((1 << end) - 1) ^ ((1 << first) - 1))
                table.masks[shape.goes_right(nid, values), t] &= ~ruled_out
    return table
