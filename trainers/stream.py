"""k-fold training on rows that stream through Ray Data instead of sitting in every trial's memory.

Fold membership is assigned once, on the driver, from the labels alone (one integer per row: small
even when the features are not) with the same scikit-learn splitter as the in-memory path, so the
folds are exactly the ones `trainers.kfold.make_folds` gives. Each file's read task gets its rows'
tags (`pos`: the row's place in the training split, -1 for held-out rows; `fold`) and emits them
beside the rows, so no order between tasks has to be kept.

A Ray Train worker reads its shard (`ray.train.get_dataset_shard`) and trains the k fold models,
each from its own pass over the stream per epoch (the rows outside its fold; memory stays a few
batches, whatever the data's size). A last pass per epoch
predicts each fold's rows with the model that did not see them (out-of-fold probabilities).
Feature scaling is fitted from streamed moments (sums and squares per fold), as the in-memory
path fits it on each fold's training rows.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


STREAM_TASK_CPUS = 0.1  # CPUs each Ray Data read task asks for (the trial reserves one such slot)
STREAM_ABOVE_BYTES = 2 * 2**30  # data.stream "auto": Parquet files larger than this stream
DATA_BUNDLE = 1  # index of the trial's placement-group bundle that Ray Data's tasks run in


@dataclass
class StreamPlan:
    """What a trial needs to read the training rows from the source; picklable."""

    paths: list[str]  # Parquet files, in the order the in-memory loader concatenates them
    target: str
    classes: list  # label value of each class index (np.unique order, as load_dataset)
    pos: np.ndarray  # per source row: position in the training split, -1 for held-out rows
    fold: np.ndarray  # per source row: fold of a training row, -1 for held-out rows
    batch_rows: int = 4096  # rows per block read from the stream
    seed: int = 0  # local shuffle of the training pass
    feature_columns: list[str] = field(default_factory=list)
    shard_rows: list[int] = field(default_factory=list)  # rows of each file (from Parquet metadata)


def plan_for(paths: list[str], target: str, classes: list, train_idx: np.ndarray, folds: list[np.ndarray],
             n_rows: int, seed: int = 0) -> StreamPlan:
    """folds: validation positions within the training split (make_folds' output)."""
    import pyarrow.parquet as pq

    pos = np.full(n_rows, -1, dtype=np.int64)
    pos[train_idx] = np.arange(len(train_idx))
    fold_of_pos = np.empty(len(train_idx), dtype=np.int64)
    for k, val in enumerate(folds):
        fold_of_pos[val] = k
    fold = np.full(n_rows, -1, dtype=np.int64)
    fold[train_idx] = fold_of_pos
    columns = [c for c in pq.read_schema(paths[0]).names if c != target]
    shard_rows = [pq.ParquetFile(p).metadata.num_rows for p in paths]
    if sum(shard_rows) != n_rows:
        raise ValueError(f"the Parquet files hold {sum(shard_rows)} rows, but the dataset has {n_rows}")
    return StreamPlan(list(paths), target, list(classes), pos, fold, seed=seed, feature_columns=columns,
                      shard_rows=shard_rows)


def ray_dataset(plan: StreamPlan):
    """The training rows as a Ray Dataset of {"x", "y", "pos", "fold"} batches, held-out rows dropped.

    Each file is read in record batches by a task of its own (pyarrow, STREAM_TASK_CPUS each), tagged with
    its rows' positions and folds, so no row order has to be preserved between tasks. Inside a Tune
    trial the tasks run in the trial's own bundle (DATA_BUNDLE): Ray Data otherwise sizes itself from
    what Ray Train's resource coordinator leaves over, which on a small node is nothing, and waits."""
    import ray
    import ray.data
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = ray.util.get_current_placement_group()
    if group is not None and len(group.bundle_specs) > DATA_BUNDLE:
        ctx = ray.data.DataContext.get_current()
        ctx.scheduling_strategy = ctx.scheduling_strategy_large_args = PlacementGroupSchedulingStrategy(
            group, placement_group_bundle_index=DATA_BUNDLE)
    offsets = np.concatenate([[0], np.cumsum(plan.shard_rows)]).astype(int)
    shards = [{"path": path, "pos": plan.pos[a:b], "fold": plan.fold[a:b]}
              for path, a, b in zip(plan.paths, offsets[:-1], offsets[1:])]
    reader = _ShardReader(plan.feature_columns, plan.target, np.asarray(plan.classes), plan.batch_rows)
    return ray.data.from_items(shards, override_num_blocks=len(shards)).map_batches(
        reader, batch_size=1, batch_format="numpy", num_cpus=STREAM_TASK_CPUS)


class _ShardReader:
    """Reads one Parquet file in record batches; yields its training rows with their tags."""

    def __init__(self, features: list[str], target: str, classes: np.ndarray, batch_rows: int):
        self.features, self.target, self.classes, self.batch_rows = features, target, classes, batch_rows

    def __call__(self, item: dict):
        import pyarrow.parquet as pq

        pos, fold, start = item["pos"][0], item["fold"][0], 0
        for record in pq.ParquetFile(item["path"][0]).iter_batches(batch_size=self.batch_rows,
                                                                   columns=[*self.features, self.target]):
            stop = start + record.num_rows
            keep = pos[start:stop] >= 0
            x = np.stack([record.column(c).to_numpy(zero_copy_only=False).astype(np.float32)
                          for c in self.features], 1)[keep]
            labels = record.column(self.target).to_numpy(zero_copy_only=False)[keep]
            yield {"x": x, "y": np.searchsorted(self.classes, labels).astype(np.int64),
                   "pos": pos[start:stop][keep], "fold": fold[start:stop][keep]}
            start = stop


def _moments(shard, k: int, n_features: int, batch_rows: int):
    """Per fold: (rows, sum, sum of squares) of the rows outside it."""
    import torch

    count = np.zeros(k, dtype=np.int64)
    total = np.zeros((k, n_features))
    squares = np.zeros((k, n_features))
    for batch in shard.iter_batches(batch_size=batch_rows, batch_format="numpy"):
        x = batch["x"].astype(np.float64)
        for f in range(k):
            inside = batch["fold"] == f
            count[f] += int(inside.sum())
            total[f] += x[inside].sum(0)
            squares[f] += (x[inside] ** 2).sum(0)
    # outside fold f = everything minus fold f
    return [(int(count.sum() - count[f]), torch.as_tensor(total.sum(0) - total[f], dtype=torch.float32),
             torch.as_tensor(squares.sum(0) - squares[f], dtype=torch.float32)) for f in range(k)]


def _outside(shard, k: int, batch_rows: int, seed: int):
    """One pass over the stream: the (x, y) rows outside fold k, locally shuffled, in batches of
    batch_rows (the last one shorter) — the batches, and so the steps per epoch, of the in-memory path."""
    import torch

    xs, ys, held = [], [], 0
    for b in shard.iter_batches(batch_size=batch_rows, batch_format="numpy",
                                local_shuffle_buffer_size=max(batch_rows * 8, 1024), local_shuffle_seed=seed):
        keep = b["fold"] != k
        xs.append(b["x"][keep])
        ys.append(b["y"][keep])
        held += int(keep.sum())
        if held >= batch_rows:
            x, y = np.concatenate(xs), np.concatenate(ys)
            whole = held - held % batch_rows
            for start in range(0, whole, batch_rows):
                yield torch.as_tensor(x[start:start + batch_rows]), torch.as_tensor(y[start:start + batch_rows])
            xs, ys, held = [x[whole:]], [y[whole:]], held - whole
    if held:
        yield torch.as_tensor(np.concatenate(xs)), torch.as_tensor(np.concatenate(ys))


def train_folds_streamed(shard, data, params: dict, report, device) -> dict:
    """The streamed counterpart of trainers.kfold.train_folds for the torch families, one worker:
    after each epoch `report(metrics, checkpoint_dir or None)`; checkpoints hold the same files
    (fold models, OOF probabilities and their positions, curves), so ensembles and records work
    unchanged. `data`: the trial's TrialData (its stream plan, folds' count, metric, seeds,
    checkpoint epochs). Returns the last metrics."""
    import torch

    from trainers.checkpoint import save_model
    from trainers.families import get_family
    from trainers.train_config import split_params
    from trainers.metrics import score
    from trainers.families.config import ModelConfig

    plan, n_folds, metric = data.stream, len(data.folds), data.metric
    model_cfg, train_cfg = split_params(params, ModelConfig.model_validate(data.base_model))
    family = get_family(model_cfg.family)
    if not family.is_torch:
        raise ValueError(f"data.stream needs a torch family (rows arrive in batches), but got {family.name!r}")
    n_features = int(model_cfg.in_features)
    empty_x, empty_y = np.zeros((0, n_features), np.float32), np.zeros(0, np.int64)
    fits = [family.start(model_cfg, train_cfg, empty_x, empty_y, data.fold_seed(k, params), device) for k in range(n_folds)]
    for fit, (count, total, squares) in zip(fits, _moments(shard, n_folds, n_features, plan.batch_rows)):
        fit.model.standardize.fit_moments(count, total.to(fit.device), squares.to(fit.device))
    curves: list[list[dict]] = [[] for _ in range(n_folds)]
    metrics: dict = {}
    for epoch in range(train_cfg.epochs):
        losses = [fit.train_epoch(_outside(shard, k, train_cfg.batch_size, data.fold_seed(k, params) + epoch))
                  for k, fit in enumerate(fits)]
        oof = [([], [], []) for _ in range(n_folds)]  # per fold: probabilities, labels, positions
        for batch in shard.iter_batches(batch_size=plan.batch_rows, batch_format="numpy"):
            for k, fit in enumerate(fits):
                inside = batch["fold"] == k
                if inside.any():
                    oof[k][0].append(fit.predict_proba(batch["x"][inside]))
                    oof[k][1].append(batch["y"][inside])
                    oof[k][2].append(batch["pos"][inside])
        rows = []
        for k in range(n_folds):
            proba, y_val = np.concatenate(oof[k][0]), np.concatenate(oof[k][1])
            row = {"epoch": epoch + 1, "train_loss": losses[k], "val_loss": score("log_loss", y_val, proba),
                   f"val_{metric}": score(metric, y_val, proba)}
            curves[k].append(row)
            rows.append((row, proba))
        metrics = {metric: float(np.mean([r[f"val_{metric}"] for r, _ in rows])),
                   "val_loss": float(np.mean([r["val_loss"] for r, _ in rows])),
                   "train_loss": float(np.mean([r["train_loss"] for r, _ in rows])),
                   "epoch": epoch + 1, "fold_scores": [r[f"val_{metric}"] for r, _ in rows],
                   "n_classes": int(model_cfg.n_classes)}
        if not data.checkpoints_at(epoch + 1, train_cfg.epochs):
            report(metrics, None)
            continue
        positions = [np.concatenate(parts[2]) for parts in oof]
        with tempfile.TemporaryDirectory(prefix="raysemble-stream-") as tmp:
            for k, ((_, proba), fit) in enumerate(zip(rows, fits)):
                save_model(Path(tmp) / f"fold_{k}.pt", fit.model, model_cfg, extra={"params": params, "fold": k})
                torch.save(fit.state(), Path(tmp) / f"fold_{k}.state.pt")
                np.save(Path(tmp) / f"oof_{k}.npy", proba)
                np.save(Path(tmp) / f"val_idx_{k}.npy", positions[k])
                (Path(tmp) / f"curves_{k}.json").write_text(
                    json.dumps({key: [r[key] for r in curves[k]] for key in curves[k][0]}))
            report(metrics, Path(tmp))
    return metrics

