"""The ensemble predictor: members of any family; torch members of one architecture run as one
vmapped forward, the others (scikit-learn families) beside them through their family's proba().

A bundle on disk is a directory:
  bundle.json  {"kind", "method", "weights", "stacker", "classes", "n_features", "members": [file, ...]}
               method: a combiner of trainers.ensemble.combiners; stacker: its fitted state (if any)
  m000.pt ...  one file per member, trainers.checkpoint format (config + state_dict), weights-only.
A student is a bundle with one member.
"""
from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call, stack_module_state

from trainers.atomic import atomic_file, write_atomic
from trainers.loop import as_device
from trainers.checkpoint import load_model, save_model
from trainers.data.common import check_labels
from trainers.ensemble.combiners import DEFAULT_COMBINER, get_combiner
from trainers.families import build_model, get_family
from trainers.families.config import ModelConfig
from trainers.tables import as_table
from trainers.tables.encoding import Encoder
from trainers.task import get_task


PREDICT_CHUNK_ROWS = 2048  # rows per forward of a member group


class _Group:
    """Members sharing one ModelConfig: parameters stacked, one vmapped call.

    A group of one (a student, a lone architecture) is called directly: vmap's per-call set-up
    (~0.1 ms on CPU) would be several times the forward of a small student at batch 1.
    """

    def __init__(self, models: list[torch.nn.Module], device: torch.device | None = None):
        # vmap over convolutions runs them as grouped convs, which CPU kernels do slowly (3 small
        # cnns: 3.8 ms vmapped vs 1.6 ms looped at batch 1): there, the members run one by one
        conv = any(isinstance(m, torch.nn.Conv2d) for m in models[0].modules())
        self.looped = models if conv and (device is None or device.type == "cpu") and len(models) > 1 else None
        self.single = models[0] if len(models) == 1 else None
        if self.single is not None or self.looped is not None:
            return
        self.params, self.buffers = stack_module_state(models)
        self.base = copy.deepcopy(models[0]).to("meta")

        def one(params, buffers, x):
            return functional_call(self.base, (params, buffers), (x,))

        self.forward = torch.vmap(one, in_dims=(0, 0, None))

    def to(self, device):
        if self.single is not None or self.looped is not None:
            for model in self.looped or [self.single]:
                model.to(device)
            return self
        self.params = {k: v.to(device) for k, v in self.params.items()}
        self.buffers = {k: v.to(device) for k, v in self.buffers.items()}
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.single is not None:
            return self.single(x).unsqueeze(0)
        if self.looped is not None:
            return torch.stack([m(x) for m in self.looped])
        return self.forward(self.params, self.buffers, x)


class EnsemblePredictor:
    def __init__(self, models: list, configs: list[ModelConfig], method: str = DEFAULT_COMBINER,
                 weights: list[float] | None = None, stacker: dict | None = None, classes: list | None = None,
                 kind: str = "ensemble", device: str | torch.device = "cpu"):
        if not models or len(models) != len(configs):
            raise ValueError(f"as many configs as models (>= 1) expected, but got {len(models)} models "
                             f"and {len(configs)} configs")
        get_combiner(method)  # a ValueError naming the known ones
        # members of a table's rows each encode it their own way (fitted on their own training rows), so
        # they share the table's schema, not their width
        schemas = {c.table.columns.model_dump_json() if c.table is not None else None for c in configs}
        widths = {c.in_features for c in configs if c.table is None}
        if len(schemas) != 1 or len(widths) > 1 or len({(c.n_classes, c.task) for c in configs}) != 1:
            raise ValueError("members must share their input (in_features, or a table's columns), n_classes and "
                             f"task, but got {sorted((c.in_features, c.n_classes, c.task, c.table is not None) for c in configs)}")
        families = [get_family(c.family) for c in configs]
        self.models = [m.eval() if f.is_torch else m for m, f in zip(models, families)]
        self.configs, self.method, self.kind = list(configs), method, kind
        self.weights = None if weights is None else [float(w) for w in weights]
        self.stacker = stacker
        self.schema = configs[0].table.columns if configs[0].table is not None else None
        # the columns a row has: a matrix's features, a table's raw columns (datetimes before expansion)
        self.n_features = len(self.schema.source_columns()) if self.schema else configs[0].in_features
        self.n_classes = configs[0].n_classes  # outputs: one per class, or a regression target's one value
        self.task = get_task(configs[0].task)
        if self.task.name == "regression":
            self.classes = []
        else:
            self.classes = list(classes) if classes is not None else list(range(self.n_classes))
        if self.classes:  # what serving sends back: finite, within int64, valid UTF-8 (a bundle made elsewhere)
            check_labels(np.array(self.classes, dtype=object), "classes")
        self.device = as_device(device)
        keys: dict[str, list[int]] = {}
        for i, (cfg, family) in enumerate(zip(configs, families)):
            if family.is_torch:
                keys.setdefault(cfg.model_dump_json(), []).append(i)
        self._lock = threading.Lock()
        self._groups = [(idx, _Group([self.models[i] for i in idx], self.device).to(self.device))
                        for idx in keys.values()]
        self._others = [(i, f) for i, f in enumerate(families) if not f.is_torch]
        # one Encoder per distinct table encoding: fold models of one trial often learnt the same one
        # (trees' category codes), and every call then encodes the rows once per encoding, not per member
        encoders: dict[str, Encoder] = {}
        self._encoder_of: list[Encoder | None] = []
        for c in configs:
            key = None if c.table is None else c.table.model_dump_json()
            if key is not None and key not in encoders:
                encoders[key] = Encoder(c.table)
            self._encoder_of.append(encoders.get(key))
        self._in_order = not self._others and [i for idx, _ in self._groups for i in idx] == list(range(len(models)))

    def rows(self, x):
        """The input as the members take it: a float32 matrix of n_features columns, or for a table's
        members a Table (from a Table, a pandas DataFrame or a list of records, through the schema)."""
        if self.schema is None:
            rows = np.asarray(x, dtype=np.float32)
            if rows.ndim != 2 or rows.shape[1] != self.n_features:
                raise ValueError(f"rows of {self.n_features} features expected, but got shape {tuple(rows.shape)}")
            return rows
        return as_table(x, self.schema)

    def _encoded(self, rows, i: int, done: dict) -> np.ndarray:
        """Member i's input: its own encoding of a table's rows (done: this call's, by encoder), or the
        matrix itself."""
        encoder = self._encoder_of[i]
        if encoder is None:
            return rows
        if encoder not in done:
            done[encoder] = encoder.transform(rows)
        return done[encoder]

    @property
    def regression(self) -> bool:
        return self.task.name == "regression"

    def member_proba(self, x) -> np.ndarray:
        """(members, rows, outputs) predictions in member order: class probabilities, or a regression
        target's one predicted value (trainers.task)."""
        rows, done = self.rows(x), {}
        if not len(rows):
            return np.zeros((len(self.models), 0, self.n_classes))
        # functional_call swaps the parameters of one shared module: one forward at a time
        with self._lock, torch.inference_mode():
            parts = []
            for idx, group in self._groups:
                # members of one group share their config, a table's encoding included: one encode each
                xt = torch.as_tensor(self._encoded(rows, idx[0], done), device=self.device)
                # in chunks: activations of every member for every row at once would not fit for large
                # inputs (the distiller's transfer set: 60k images, ~26 GB for 3 small cnns)
                parts.append((idx, self.task.outputs(torch.cat([group(xt[s:s + PREDICT_CHUNK_ROWS])
                                                                for s in range(0, len(xt), PREDICT_CHUNK_ROWS)], 1)
                                                     .float())))
        if self._in_order:
            # the usual bundle (torch members, grouped in member order): no scatter into a zero array,
            # which at batch 1 costs a student about a third of its call
            out = (parts[0][1] if len(parts) == 1 else torch.cat([p for _, p in parts])).cpu().numpy()
            return out.astype(np.float64)
        out = np.zeros((len(self.models), len(rows), self.n_classes))
        for idx, probs in parts:
            out[idx] = probs.cpu().numpy()
        for i, family in self._others:
            out[i] = family.proba(self.models[i], self._encoded(rows, i, done))
        return out

    def on(self, device: str | torch.device) -> "EnsemblePredictor":
        """This predictor on `device`: itself if it is there already, else a copy there (its members
        copied first: moving a module moves it in place, and the original stays where its caller
        uses it, e.g. the judge timing the CPU one)."""
        device = as_device(device)
        if device == self.device:
            return self
        return EnsemblePredictor(copy.deepcopy(self.models), self.configs, self.method, self.weights, self.stacker,
                                 self.classes, self.kind, device)

    def combine(self, member_probs: np.ndarray) -> np.ndarray:
        """(members, rows, classes) -> (rows, classes), this bundle's way (its combiner, weights, state)."""
        return get_combiner(self.method).combine(member_probs, self.weights, self.stacker)

    def predict_proba(self, x) -> np.ndarray:
        return self.combine(self.member_proba(x))

    def predict(self, x) -> list:
        """Each row's label, or a regression target's predicted value."""
        out = self.predict_proba(x)
        if self.regression:
            return out[:, 0].tolist()
        return [self.classes[i] for i in out.argmax(1)]

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = []
        sources = getattr(self, "sources", None) or [None] * len(self.models)
        for i, (model, cfg, source) in enumerate(zip(self.models, self.configs, sources)):
            files.append(f"m{i:03d}.pt")
            if source is not None and Path(source).is_file():
                # the file it was read from, as it is: a 300-tree forest takes a second to serialise again
                with atomic_file(directory / files[-1]) as f:
                    f.write(Path(source).read_bytes())
            else:
                save_model(directory / files[-1], model, cfg, sync=True)
        stacker = None if self.stacker is None else {k: np.asarray(v).tolist() for k, v in self.stacker.items()}
        # written last and atomically: its presence marks a complete bundle
        write_atomic(directory / "bundle.json", json.dumps({
            "kind": self.kind, "method": self.method, "weights": self.weights, "stacker": stacker,
            "classes": self.classes, "n_features": self.n_features, "members": files}, indent=1))
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> "EnsemblePredictor":
        directory = Path(directory)
        meta = json.loads((directory / "bundle.json").read_text())
        loaded = [load_model(directory / f) for f in meta["members"]]
        return cls([m for m, _, _ in loaded], [c for _, c, _ in loaded], meta["method"], meta["weights"],
                   meta["stacker"], meta["classes"], meta.get("kind", "ensemble"), device).read_from(
            [directory / f for f in meta["members"]])

    @classmethod
    def from_files(cls, paths: list[str | Path], **kwargs) -> "EnsemblePredictor":
        loaded = [load_model(p) for p in paths]
        return cls([m for m, _, _ in loaded], [c for _, c, _ in loaded], **kwargs).read_from(paths)

    def read_from(self, sources: list) -> "EnsemblePredictor":
        """Where each member was read from (None: built in memory); save() copies those files. Self."""
        if len(sources) != len(self.models):
            raise ValueError(f"a source per member must hold, but got {len(sources)} for {len(self.models)} members")
        self.sources = [None if s is None else Path(s) for s in sources]
        return self


    def families(self) -> list[str]:
        return [c.family for c in self.configs]


def loop_member_proba(models: list[torch.nn.Module], x: np.ndarray, task: str = "classification") -> np.ndarray:
    """The plain loop the vectorised path must match; kept for tests and benchmarks."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    outputs = get_task(task).outputs
    with torch.no_grad():
        return np.stack([outputs(m.eval()(xt)).numpy() for m in models]).astype(np.float64)


__all__ = ["EnsemblePredictor", "loop_member_proba", "build_model"]
