"""A fitted scikit-learn forest as flat arrays, walked for every (row, tree) pair at once.

scikit-learn predicts a forest one tree at a time (a joblib task and an input check per tree): about
0.1-0.2 ms a tree whatever the rows, so a served ensemble of five 100-tree fold models spent ~100 ms on
a single row. Here every tree's nodes sit in one array and one step moves all (row, tree) pairs down a
level; a leaf points at itself, so max_depth steps reach every leaf. The walk is scikit-learn's own
(`Tree.apply`): the row as float32, NaN follows missing_go_to_left, else `x <= threshold` goes left.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

# rows up to which a model predicts through its flat form: its cost grows with rows x trees x depth, while
# scikit-learn's per-tree walk has a fixed cost per tree that many rows amortise (from a few dozen rows here)
FLAT_MAX_ROWS = 16


@dataclass(frozen=True)
class FlatForest:
    roots: np.ndarray  # (trees,) the root's node index in the flat arrays
    feature: np.ndarray  # (nodes,) a leaf's is 0 (never read: it points at itself)
    threshold: np.ndarray  # (nodes,) float64, as the tree compares
    left: np.ndarray  # (nodes,)
    right: np.ndarray  # (nodes,)
    missing_left: np.ndarray  # (nodes,) bool
    value: np.ndarray  # (nodes, outputs) a leaf's class fractions, or a regression leaf's mean
    depth: int  # the deepest tree's depth: steps that reach every leaf

    @classmethod
    def of(cls, forest) -> "FlatForest":
        trees = [e.tree_ for e in forest.estimators_]
        sizes = np.array([t.node_count for t in trees])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        parts = {k: [] for k in ("feature", "threshold", "left", "right", "missing", "value")}
        for t, off in zip(trees, offsets):
            own = np.arange(t.node_count) + off
            leaf = t.children_left == -1
            parts["feature"].append(np.where(leaf, 0, t.feature))
            parts["threshold"].append(t.threshold)
            parts["left"].append(np.where(leaf, own, t.children_left + off))
            parts["right"].append(np.where(leaf, own, t.children_right + off))
            parts["missing"].append(t.missing_go_to_left.astype(bool))
            parts["value"].append(t.value[:, 0, :])  # single output: (nodes, classes or 1)
        cat = {k: np.concatenate(v) for k, v in parts.items()}
        return cls(offsets.astype(np.intp), cat["feature"].astype(np.intp), cat["threshold"].astype(np.float64),
                   cat["left"].astype(np.intp), cat["right"].astype(np.intp), cat["missing"],
                   cat["value"].astype(np.float64), max(t.max_depth for t in trees))

    def leaves(self, x: np.ndarray, split=None) -> np.ndarray:
        """(rows, trees) leaf indices of the rows (float32 for a forest, float64 for hist_gb).
        split(node, value, go_left): where a model's splits are more than a threshold, the (rows, trees)
        go-left decisions corrected at those nodes."""
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        for _ in range(self.depth):
            value = x[rows, self.feature[node]]
            go_left = np.where(np.isnan(value), self.missing_left[node], value <= self.threshold[node])
            if split is not None:
                go_left = split(node, value, go_left)
            node = np.where(go_left, self.left[node], self.right[node])
        return node

    def mean_value(self, x) -> np.ndarray:
        """(rows, outputs) the trees' leaf values averaged: a forest's predict_proba (or predict)."""
        x = np.asarray(x, dtype=np.float32)
        return self.value[self.leaves(x)].sum(axis=1) / len(self.roots)


# model -> (its list of trees, how many, its flat form), made on first use; beside the model, not on it,
# so that saving a model never writes it (skops would refuse the type on loading). A model refitted (a new
# list) or grown since (warm_start: a longer one) is flattened again
_FLAT: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _cached(model, trees: list, make):
    kept = _FLAT.get(model)
    if kept is None or kept[0] is not trees or kept[1] != len(trees):
        kept = _FLAT[model] = (trees, len(trees), make(model))
    return kept[2]


def flat(forest) -> FlatForest:
    """The forest's flat form."""
    return _cached(forest, forest.estimators_, FlatForest.of)


class NotFlat(ValueError):
    """A fitted model in a form the flat walk does not know (another scikit-learn's): it predicts itself."""


@dataclass(frozen=True)
class FlatBoosted:
    """A fitted HistGradientBoosting model's trees, walked like FlatForest but as scikit-learn's
    predictor walks them (`_predict_one_from_raw_data`): float64 rows, NaN follows missing_go_to_left,
    a categorical split sends the categories in its bitset left, other known ones right, and treats a
    negative or unknown category as missing. The leaves' values add up per output onto the baseline."""

    forest: FlatForest  # value: (nodes, 1) leaf values; threshold: num_threshold
    categorical: np.ndarray  # (nodes,) bool
    bitset: np.ndarray  # (nodes,) row of `left_bits` (a numeric split's is 0, never read)
    left_bits: np.ndarray  # (splits, 8) uint32: categories that go left, per categorical split
    known_bits: np.ndarray  # (categorical features, 8) uint32: categories seen in training
    known_row: np.ndarray  # (features,) a feature's row of known_bits
    outputs: int  # trees per iteration
    # with categorical features scikit-learn first reorders the columns (categorical ones first) and
    # codes each category as its index among those seen in training (unknown: NaN): the order, and the
    # seen categories of the leading columns; None: the rows as they are
    order: np.ndarray | None = None
    categories: tuple[np.ndarray, ...] = ()

    @classmethod
    def of(cls, model) -> "FlatBoosted":
        predictors = [p for iteration in model._predictors for p in iteration]
        sizes = np.array([len(p.nodes) for p in predictors])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        bit_offsets = np.concatenate([[0], np.cumsum([len(p.raw_left_cat_bitsets) for p in predictors])[:-1]])
        nodes = np.concatenate([p.nodes for p in predictors])
        owner = np.repeat(offsets, sizes)
        own = np.arange(len(nodes))
        leaf = nodes["is_leaf"].astype(bool)
        categorical = nodes["is_categorical"].astype(bool) & ~leaf
        forest = FlatForest(offsets, np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp),
                            nodes["num_threshold"].astype(np.float64),
                            np.where(leaf, own, nodes["left"].astype(np.intp) + owner),
                            np.where(leaf, own, nodes["right"].astype(np.intp) + owner),
                            nodes["missing_go_to_left"].astype(bool), nodes["value"].astype(np.float64)[:, None],
                            int(nodes["depth"].max()))
        left_bits = np.concatenate([p.raw_left_cat_bitsets for p in predictors] + [np.zeros((1, 8), np.uint32)])
        bitset = np.where(categorical, nodes["bitset_idx"].astype(np.intp) + np.repeat(bit_offsets, sizes), 0)
        known_bits, known_row = model._bin_mapper.make_known_categories_bitsets()
        if len(known_bits) == 0:
            known_bits = np.zeros((1, 8), np.uint32)
        order, categories = None, ()
        if model._preprocessor is not None:
            index = model._preprocessor.output_indices_
            mask = model.is_categorical_
            order = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
            if index["encoder"] != slice(0, int(mask.sum())):
                raise NotFlat("the categorical columns do not lead the preprocessed rows")
            encoder = model._preprocessor.named_transformers_["encoder"]
            categories = tuple(np.asarray(c, dtype=np.float64)[~np.isnan(np.asarray(c, dtype=np.float64))]
                               for c in encoder.categories_)
        return cls(forest, categorical, bitset.astype(np.intp), left_bits.astype(np.uint32),
                   known_bits.astype(np.uint32), known_row.astype(np.intp), int(model.n_trees_per_iteration_),
                   order, categories)

    def _coded(self, x: np.ndarray) -> np.ndarray:
        if self.order is None:
            return x
        x = x[:, self.order]
        for j, seen in enumerate(self.categories):
            at = np.minimum(np.searchsorted(seen, x[:, j]), max(len(seen) - 1, 0))
            hit = seen[at] == x[:, j] if len(seen) else np.zeros(len(x), bool)
            x[:, j] = np.where(hit, at, np.nan)
        return x

    @staticmethod
    def _in(bits: np.ndarray, row: np.ndarray, category: np.ndarray) -> np.ndarray:
        return ((bits[row, category >> 5] >> (category & 31).astype(np.uint32)) & 1).astype(bool)

    def _split(self, node: np.ndarray, value: np.ndarray, go_left: np.ndarray) -> np.ndarray:
        """go_left with the categorical splits among these nodes decided by their bitsets."""
        cat = self.categorical[node]
        if not cat.any():
            return go_left
        missing = self.forest.missing_left[node]
        # as scikit-learn casts: a category is a byte; below 0 (or past a byte) it is missing
        valid = cat & (value >= 0) & (value < 256)
        code = np.where(valid, value, 0).astype(np.intp)
        in_left = self._in(self.left_bits, self.bitset[node], code)
        known = self._in(self.known_bits, self.known_row[self.forest.feature[node]], code)
        by_category = np.where(valid, np.where(in_left, True, np.where(known, False, missing)), missing)
        return np.where(cat & ~np.isnan(value), by_category, go_left)

    def raw(self, model, x) -> np.ndarray:
        """(rows, trees per iteration): the model's `_raw_predict`."""
        x = self._coded(np.asarray(x, dtype=np.float64))
        node = self.forest.leaves(x, self._split)
        leaves = self.forest.value[node, 0].reshape(len(x), -1, self.outputs)
        out = np.zeros((len(x), self.outputs)) + model._baseline_prediction
        for i in range(leaves.shape[1]):  # iteration by iteration, the order scikit-learn adds them in
            out += leaves[:, i]
        return out


def flat_boosted(model) -> FlatBoosted | None:
    """The model's flat form, or None where it has a form this walk does not know."""
    def make(model):
        try:
            return FlatBoosted.of(model)
        except (NotFlat, AttributeError, KeyError):
            return None

    return _cached(model, model._predictors, make)
