"""One loaded model behind a dynamic batcher (@serve.batch): requests queue, run as one forward pass."""
from __future__ import annotations

import numpy as np
from ray import serve
from ray.serve.exceptions import RayServeException

from serving.loader import Source, load_predictor
from serving.records import inputs_of, records_frame
from trainers.ensemble.predictor import EnsemblePredictor


def _in_replica() -> bool:
    try:
        serve.get_replica_context()
        return True
    except RayServeException:
        return False


class ModelRunner:
    def __init__(self, name: str, source: Source, max_batch_size: int, batch_wait_timeout_s: float,
                 num_gpus: float = 0.0, predictor: EnsemblePredictor | None = None, version: str | None = None):
        self.name, self.source = name, source
        if predictor is None:
            predictor, version = load_predictor(source, num_gpus)
        self.predictor, self.version = predictor, version or "0"
        self.aliases = [source.registered_name] if source.registered_name else []
        self.regression = self.predictor.regression
        # a regression model answers values: nothing to give probabilities of
        self.outputs = (("predictions",) if self.regression else ("probabilities", "predictions")) \
            + (("votes",) if self.members > 1 else ())
        # a batcher per instance: @serve.batch on a method would share one queue between instances.
        # Outside a Serve replica (tests of the routes in-process) requests run one by one.
        self._batched = self._run_one
        if _in_replica():
            self._batched = serve.batch(max_batch_size=max_batch_size,
                                        batch_wait_timeout_s=batch_wait_timeout_s)(self._run_batch)
        # a table model's columns, each its own input (serving.records); None: one matrix input
        self.inputs = inputs_of(self.predictor.schema) if self.predictor.schema is not None else None
        # the probe: a row of zeros, or a record with every value missing (what a table model must take too)
        self._probe = (np.zeros((1, self.predictor.n_features), dtype=np.float32) if self.inputs is None
                       else records_frame([{}], self.inputs, 1))
        self.check()

    @property
    def members(self) -> int:
        return len(self.predictor.models)

    @property
    def n_features(self) -> int:  # known without a call: the routes' OpenAPI document states it
        return self.predictor.n_features

    async def describe(self) -> dict:
        p = self.predictor
        return {"name": self.name, "aliases": self.aliases, "version": self.version, "source": self.public_source,
                "kind": p.kind, "method": p.method, "members": self.members, "n_features": p.n_features,
                "classes": p.classes, "outputs": list(self.outputs), "inputs": self.inputs, "task": p.task.name}

    @property
    def public_source(self) -> str:
        """What clients see: a models:/ URI as given, a bundle directory by its content version only
        (a server path tells a client where to look on the host)."""
        return self.source.text if self.source.registered_name else f"bundle:{self.version}"

    async def ready(self) -> bool:
        return True  # constructed means loaded and probed; Serve's check_health repeats the probe

    async def _run_batch(self, xs: list) -> list[tuple[np.ndarray, np.ndarray]]:
        """xs: matrices, or a table model's DataFrames of records (one per request)."""
        sizes = [len(x) for x in xs]
        if len(xs) == 1:
            joined = xs[0]
        elif self.inputs is None:
            joined = np.concatenate(xs)
        else:
            import pandas as pd

            joined = pd.concat(xs, ignore_index=True)
        member = self.predictor.member_proba(joined)
        proba = self.predictor.combine(member)
        bounds = np.cumsum(sizes)[:-1]
        return list(zip(np.split(proba, bounds), np.split(member, bounds, axis=1)))

    async def _run_one(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (await self._run_batch([x]))[0]

    async def predict(self, x: np.ndarray, votes: bool = False) -> dict:
        """{"probabilities": (rows, classes), "labels": per row, "votes": per row per member or None,
        "version", "bad_rows": rows whose member or combined probabilities are not finite}. A regression
        model: "labels" are the predicted values and "votes" each member's, "probabilities" None.

        Finite float32 features can still overflow a network (3e38 times a weight is inf, inf - inf is
        NaN); labels and votes of such rows are argmaxes of NaN, so the caller refuses them all."""
        proba, member = await self._batched(x)
        finite = np.isfinite(proba).all(1) & np.isfinite(member).all((0, 2))
        bad_rows = np.flatnonzero(~finite).tolist()
        if self.regression:
            return {"probabilities": None, "labels": proba[:, 0].tolist(),
                    "votes": member[:, :, 0].T.tolist() if votes else None, "version": self.version,
                    "bad_rows": bad_rows}
        classes = self.predictor.classes
        voted = [[classes[i] for i in row] for row in member.argmax(2).T] if votes else None
        return {"probabilities": proba, "labels": [classes[i] for i in proba.argmax(1)], "votes": voted,
                "version": self.version, "bad_rows": bad_rows}

    def check(self) -> None:
        """A real forward pass on one row; raises when the model cannot predict."""
        proba = self.predictor.predict_proba(self._probe)
        if self.regression:
            if proba.shape != (1, 1) or not np.isfinite(proba).all():
                raise RuntimeError(f"model {self.name!r}: one finite predicted value expected, but got {proba!r}")
            return
        if proba.shape != (1, self.predictor.n_classes) or not np.isfinite(proba).all() \
                or abs(float(proba.sum()) - 1.0) > 1e-3:
            raise RuntimeError(f"model {self.name!r}: one finite probability row summing to 1 expected, "
                               f"but got {proba!r}")
