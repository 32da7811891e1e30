"""A spec from the user's own file may name their code (model.factory, a family that runs user code):
it must import from the spec's directory or the current one and build a network that maps the data's
rows to one logit per class. Those directories also go on PYTHONPATH, so the Ray this process starts
(its trial processes inherit the environment) imports the same module."""
from __future__ import annotations

from pathlib import Path

from service.spec.checks import Checks
from service.spec.schema import SweepSpec
from trainers.data import Dataset
from trainers.families import get_family, user_code_families
from trainers.families.scope import FAMILY_KEY
from trainers.train_config import split_params
from trainers.tables import TableEncoding, is_table


class LocalCode(Checks):
    def __init__(self, spec_dir: Path):
        self.dirs = [str(Path(spec_dir).resolve()), str(Path.cwd())]

    def after_data(self, spec: SweepSpec, dataset: Dataset) -> list[str]:
        coded = user_code_families(spec.families())
        if not coded:
            return []
        import torch

        from trainers.families.factory import add_code_dirs

        add_code_dirs(self.dirs)
        spec._code_dirs = list(self.dirs)  # kept with the sweep: resume and ensemble import it again
        # one trial's values: fixed ones, else each dimension's first endpoint
        values = {k: v.endpoints()[0] for k, v in spec.search.space.items() if k != FAMILY_KEY}
        problems = []
        for family in coded:
            x, width = dataset.x[:2], dataset.x.shape[1]
            if is_table(dataset.x):  # the factory builds on the encoded width, as each fold's fit will
                encoding = TableEncoding.fit(dataset.x, get_family(family).table_encoding)
                x, width = encoding.transform(dataset.x[:2]), encoding.width
            base = spec.base_model_config(width, dataset.n_outputs, dataset.task)
            try:
                model_cfg, _ = split_params({**values, **spec.search.fixed, FAMILY_KEY: family}, base)
                with torch.no_grad():
                    out = get_family(family).build(model_cfg).eval()(torch.as_tensor(x))
            except ValueError as err:
                return [str(err) if str(err).startswith("model.factory") else f"model.factory: {err}"]
            except Exception as err:  # noqa: BLE001 - the user's code failing is a spec problem, not a crash
                return [f"model.factory: a factory that builds and runs expected, but {spec.model.factory} raised "
                        f"{type(err).__name__}: {str(err)[:200]}"]
            if tuple(out.shape) != (2, dataset.n_outputs):
                problems.append(f"model.factory: logits of shape (rows, {dataset.n_outputs}) expected, but "
                                f"{spec.model.factory}'s network returned {tuple(out.shape)} for 2 rows")
        return problems
