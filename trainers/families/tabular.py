"""Families on a table's rows: the family's table encoding is fitted on the fit's own training rows (a
fold's, never its validation rows), and the family fits on the encoded matrix. The encoding goes into
the model's config (ModelConfig.table), so the saved model carries it to every later prediction."""
from __future__ import annotations

import numpy as np

from trainers.families._base import Family, Fit
from trainers.tables import Table, TableEncoding


class TableFit(Fit):
    def __init__(self, family: Family, model_cfg, fit_cfg, table: Table, y: np.ndarray, seed: int,
                 device="cpu", data_parallel=None):
        self.encoding = TableEncoding.fit(table, family.table_encoding)
        self.model_cfg = model_cfg.model_copy(update={"table": self.encoding, "in_features": self.encoding.width})
        self.inner = family.start(self.model_cfg, fit_cfg, self.encoding.transform(table), y, seed, device,
                                  data_parallel)

    @property
    def rounds(self) -> int:
        return self.inner.rounds

    @property
    def done(self) -> int:
        return self.inner.done

    @property
    def model(self):
        return self.inner.model

    def advance(self) -> float:
        return self.inner.advance()

    def predict_proba(self, x: Table) -> np.ndarray:
        return self.inner.predict_proba(self.encoding.transform(x))

    def state(self) -> dict:
        return self.inner.state()

    def restore(self, model, state: dict) -> None:
        self.inner.restore(model, state)
