"""After the search: ensemble -> distill -> judge -> register -> report, for one finished sweep.

Everything lands under <sweep dir>/postsweep/: the ensemble and student bundles (each with a
provenance.json naming the trials and the dataset row ids it was built from) and state.json
(the last result). A bundle is written as soon as it exists, so a failed later step loses
nothing: rerun with `redo` naming only what should be rebuilt.

Held-out rows: selection uses the trials' out-of-fold predictions (training split only), refits
and distillation use the training split only, and the test rows are read for judgement alone.
The row ids are recorded and checked to be disjoint before anything is judged.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from service.judge import (LATENCY_TIME_S, JudgeRow, judge, judged_trials, latency_per_sample, print_rows,
                           trial_predictor)
from service.report import write_report
from service.tracking import log_judgement, register_bundle
from trainers.config import DistillConfig, EnsembleConfig
from trainers.atomic import write_atomic
from trainers.distill import distill, distill_on_ray, size_student, student_model_config
from trainers.ensemble.build import build_ensemble
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.ensemble.refit import Refitter
from trainers.loop import pick_device, torch_threads
from trainers.postsweep_cost import tail_s

if TYPE_CHECKING:
    from service.store import Sweep

STEPS = ("ensemble", "distill")
SIZING_SHARE = 0.5  # of the time left under a budget, for comparing student candidates (the rest: the chosen one)


class PostSweepError(RuntimeError):
    pass


def _provenance(directory: Path, **fields) -> None:
    write_atomic(directory / "provenance.json", json.dumps(fields, indent=1))


def _complete(bundle_dir: Path) -> bool:
    """A bundle a later call may reuse: provenance.json is written after bundle.json, so a step killed
    in between leaves a bundle that is built again rather than one that fails to load."""
    return (bundle_dir / "bundle.json").is_file() and (bundle_dir / "provenance.json").is_file()


def read_provenance(bundle_dir: Path) -> dict:
    return json.loads((Path(bundle_dir) / "provenance.json").read_text())


def _fresh(directory: Path) -> Path:
    if directory.exists():
        shutil.rmtree(directory)
    return directory


class PostSweep:
    """One pass over a finished sweep; each step is a method so the CLI's redo can skip some."""

    def __init__(self, sweep: "Sweep", use_ray: bool, latency_repeats: int = 50, deadline: float | None = None):
        self.deadline = deadline  # the run's time budget ends here (Sweep.run_deadline): the student stops
        self.sweep, self.spec, self.use_ray, self.repeats = sweep, sweep.spec, use_ray, latency_repeats
        self.files = sweep.files
        self.files.postsweep.mkdir(parents=True, exist_ok=True)
        data = sweep.dataset()
        self.train_idx, self.test_idx = np.asarray(sweep.train_idx), np.asarray(sweep.test_idx)
        overlap = np.intersect1d(self.train_idx, self.test_idx)
        if len(overlap):
            raise PostSweepError(f"disjoint training and held-out rows must hold, but got {len(overlap)} shared "
                                 f"row ids (e.g. {overlap[:5].tolist()})")
        self.classes, self.task = list(data.classes), data.task
        self.x_train, self.y_train = data.x[self.train_idx], data.y[self.train_idx]
        self.x_test, self.y_test = data.x[self.test_idx], data.y[self.test_idx]
        self.ranked = sweep.ranked()
        if not self.ranked:
            raise PostSweepError(f"at least one finished trial must hold, but got none of {len(sweep.trials)} "
                                 f"trials (sweep {sweep.name!r})")
        if use_ray:
            import ray

            if not ray.is_initialized():
                raise PostSweepError("use_ray=True needs a running Ray session (ray.init), but got none")

    def _ray_options(self, step: str) -> dict | None:
        if not self.use_ray:
            return None
        res = self.spec.resources
        # the spec's shared storage when it names one (multi-node), else beside the sweep's files
        storage = self.spec.tracking.storage_path or str(self.files.ray_train)
        return {"name": f"{self.sweep.name}-{step}-{time.strftime('%Y%m%d-%H%M%S')}",
                "storage_path": storage, "cpus_per_worker": res.cpus_per_worker,
                "gpus_per_worker": res.gpus_per_worker,
                # a Ray Train run as the trials had one; else a Ray task (trainers.raytrain says why)
                "ray_train": res.resolved_executor() == "ray_train"}

    @staticmethod
    def _ran_on(options: dict | None) -> str | None:
        """Where a step's model trained, as provenance records it: None (this process), task or ray_train."""
        return options and ("ray_train" if options["ray_train"] else "task")

    def ensemble(self) -> tuple[EnsemblePredictor, dict]:
        cfg, search = self.spec.ensemble, self.spec.search
        refit, options = None, None
        if cfg.members == "refit":
            options = self._ray_options("refit")
            # refits stop where the steps after the ensemble still fit (trainers.postsweep_cost), not at a
            # fixed share: a trial whose refit stops serves its k fold models, which made the served ensemble 3x
            # slower to answer and its teacher slower to distill (hi, 120 s, half of 28 s left: 53 members
            # instead of 13, 32 ms a row instead of 9; the student 1.2 points worse)
            refit = Refitter(self.x_train, self.y_train, self.spec.search.fixed, self.spec.cv.seed, options,
                             deadline=None if self.deadline is None else self.deadline - tail_s(len(self.x_train)))
        predictor, info = build_ensemble(self.ranked, cfg, y_train=self.y_train, metric=search.metric,
                                         mode=search.mode, classes=self.classes, refit=refit, task=self.task)
        directory = predictor.save(_fresh(self.files.bundle("ensemble")))
        # OOF rows are the training split in train_idx order; refits train on all of it (fold members on parts)
        _provenance(directory, sweep=self.sweep.name, kind="ensemble", info=info,
                    selection_rows=self.train_idx.tolist(),
                    fit_rows=self.train_idx.tolist() if cfg.members == "refit" else [],
                    ray=self._ran_on(options))
        return predictor, info

    def distill(self, teacher: EnsemblePredictor, teacher_dir: Path) -> tuple[EnsemblePredictor, dict]:
        cfg = self.spec.distill
        options = self._ray_options("distill")
        student_cfg, sizing, extra = cfg.student, None, {}
        if cfg.sizes:
            # candidates on Ray tasks when distillation runs on Ray, with the CPUs/GPUs a Train worker gets
            resources = None if options is None else {"num_cpus": options["cpus_per_worker"],
                                                      "num_gpus": options["gpus_per_worker"]}
            sizing = size_student(cfg, teacher.configs[0], self.x_train, self.y_train, teacher, self.spec.cv.seed,
                                  latency=self._latency_ms, device=pick_device(),
                                  teacher_oof=self._teacher_oof(teacher, teacher_dir), teacher_dir=teacher_dir,
                                  ray_resources=resources, deadline=self._sizing_deadline())
            student_cfg = sizing.student
            # the rows the candidates were scored on, as dataset row ids (rows_used checks them)
            extra["selection_rows"] = self.train_idx[sizing.validation].tolist()
        # the chosen shape is distilled again on the whole training split (fit_rows): the validation
        # rows were held out only to compare shapes, and the candidate itself learned from
        # 1 - validation_fraction of them; what is chosen is the shape, not that candidate's weights
        model_cfg = student_model_config(student_cfg, teacher.configs[0], self.x_train)
        if options is None:
            model, losses = distill(cfg, model_cfg, self.x_train, self.y_train, teacher, self.spec.cv.seed,
                                    pick_device(), self.deadline)
        else:
            model, losses = distill_on_ray(cfg, model_cfg, self.x_train, self.y_train, teacher_dir,
                                           self.spec.cv.seed, self.deadline, **options)
        student = EnsemblePredictor([model], [model_cfg], classes=self.classes, kind="student")
        directory = student.save(_fresh(self.files.bundle("student")))
        info = {"config": cfg.model_dump(mode="json"), "losses": losses,
                "ray": self._ran_on(options),
                # the family and the size fields it uses (a tree student has no hidden layers)
                "student": {"family": student_cfg.family, **student_cfg.shape()},
                "parameters": model_cfg.parameter_count(),
                # fewer than distill.epochs where the run's time budget ended the training
                "epochs_trained": len(losses),
                **({"sizing": sizing.info} if sizing else {})}
        _provenance(directory, sweep=self.sweep.name, kind="student", info=info, teacher=str(teacher_dir),
                    fit_rows=self.train_idx.tolist(), **extra)
        return student, info

    def _sizing_deadline(self) -> float | None:
        """Under a time budget, the candidates get SIZING_SHARE of what is left and the chosen one's final
        distillation the rest."""
        if self.deadline is None:
            return None
        now = time.time()
        return now + max(0.0, self.deadline - now) * SIZING_SHARE

    def latency_time_s(self) -> float:
        """The judge's timing allowance per batch size: LATENCY_TIME_S, or under a time budget a quarter of
        what is left (MIN_REPEATS timed calls each once it is spent)."""
        if self.deadline is None:
            return LATENCY_TIME_S
        return min(LATENCY_TIME_S, max(0.0, self.deadline - time.time()) / 4)

    def _latency_ms(self, predicts: dict, x: np.ndarray) -> dict[str, float]:
        """Batch-1 milliseconds per row with the judge's timer and repeats (what the student row reports)."""
        return {k: 1e3 * v for k, v in latency_per_sample(predicts, x, 1, self.repeats).items()}

    def _teacher_oof(self, teacher: EnsemblePredictor, teacher_dir: Path) -> np.ndarray | None:
        """The teacher's out-of-fold probabilities on the training split, to score it fairly beside
        students that never saw the validation rows: each chosen trial's OOF block stands in for each
        of its members, combined the teacher's way (a stacker was fitted on these very blocks, so that
        one is mildly in-sample). None where a chosen trial has no OOF predictions on disk."""
        try:
            trials = read_provenance(teacher_dir)["info"]["trials"]
            by_id = {t.trial_id: t for t in self.ranked}
            blocks = [np.repeat(by_id[t["trial_id"]].oof()[None], t["n_members"], 0) for t in trials]
        except (FileNotFoundError, KeyError, TypeError):
            return None
        if not blocks:
            return None
        members = np.concatenate(blocks)
        if members.shape[:2] != (len(teacher.models), len(self.y_train)) or not np.isfinite(members).all():
            return None
        return teacher.combine(members)

    def rows_used(self, bundles: dict[str, Path]) -> dict:
        """Row counts per use, and the check that no recorded row id is a held-out one."""
        used = {"test": len(self.test_idx)}
        for name, directory in bundles.items():
            prov = read_provenance(directory)
            for key in ("selection_rows", "fit_rows"):
                if key not in prov:
                    continue
                ids = np.asarray(prov[key], dtype=np.int64)
                if np.intersect1d(ids, self.test_idx).size:
                    raise PostSweepError(f"no held-out row in {name}'s {key} must hold, but got "
                                         f"{np.intersect1d(ids, self.test_idx).size}")
                used[f"{name}_{key.removesuffix('_rows')}"] = len(ids)
        return used


def finish_sweep(sweep: "Sweep", *, use_ray: bool, redo: Iterable[str] = STEPS, latency_repeats: int = 50,
                 console=None, ensemble_cfg: EnsembleConfig | None = None,
                 distill_cfg: DistillConfig | None = None, deadline: float | None = None) -> dict:
    """Ensemble, distill, judge on the held-out rows, register, report; returns the JSON-able result.

    use_ray: refits and distillation run as Ray Train runs (needs a running Ray session).
    redo: which of ("ensemble", "distill") to (re)build; a step left out reuses its bundle from a
    previous call (built anyway if there is none). Redoing the ensemble alone keeps the existing
    student. Only bundles built in this call are registered; earlier registrations are carried
    over from postsweep/state.json.
    console: a rich Console to print the side-by-side table on (None: no printing).
    ensemble_cfg / distill_cfg: replace the spec's sections for this call (e.g. a CLI --method flag).
    deadline: the end of the run's time budget when these steps follow the sweep's run (Sweep.run_deadline):
    the student's training stops there; None (a later rebuild) ignores the budget.
    In-process work (and the latency numbers) use resources.cpus_per_worker torch threads.
    """
    updates = {k: v for k, v in (("ensemble", ensemble_cfg), ("distill", distill_cfg)) if v is not None}
    if updates:
        sweep = dataclasses.replace(sweep, spec=sweep.spec.model_copy(update=updates))
    with torch_threads(int(sweep.spec.resources.cpus_per_worker)), sweep.where.prepare().active():
        return _finish(sweep, use_ray, set(redo), latency_repeats, console, deadline)


def _finish(sweep: "Sweep", use_ray: bool, redo: set[str], latency_repeats: int, console,
            deadline: float | None = None) -> dict:
    import mlflow

    unknown = redo - set(STEPS)
    if unknown:
        raise ValueError(f"redo steps from {list(STEPS)} must hold, but got {sorted(unknown)}")
    run = PostSweep(sweep, use_ray, latency_repeats, deadline)
    previous = run.files.state()
    registered = dict(previous.get("registered", {}))
    built: set[str] = set()

    ens_dir = run.files.bundle("ensemble")
    if "ensemble" in redo or not _complete(ens_dir):
        ensemble, ens_info = run.ensemble()
        built.add("ensemble")
    else:
        ensemble, ens_info = EnsemblePredictor.load(ens_dir), read_provenance(ens_dir)["info"]
    trials = judged_trials(run.ranked)  # "single", and "best_<family>" when the sweep tried several families
    predictors = {**{name: trial_predictor(t, run.classes) for name, t in trials.items()}, "ensemble": ensemble}
    bundles = {"ensemble": ens_dir}
    distill_info = None
    if sweep.spec.distill.enabled:
        st_dir = run.files.bundle("student")
        if "distill" in redo or not _complete(st_dir):
            predictors["student"], distill_info = run.distill(ensemble, ens_dir)
            built.add("student")
        else:
            predictors["student"], distill_info = EnsemblePredictor.load(st_dir), read_provenance(st_dir)["info"]
        bundles["student"] = st_dir
    else:
        registered.pop("student", None)
    rows_used = run.rows_used(bundles)

    rows = judge(predictors, run.x_test, run.y_test, latency_repeats, trials, run.latency_time_s())
    if console is not None:
        print_rows(rows, console)
    by_name = {r.model: r for r in rows}
    for kind in sorted(built):
        registered[kind] = register_bundle(sweep, kind, bundles[kind], by_name[kind], run.x_train[:2], predictors[kind])
    report = write_report(sweep, rows, run.files.report, run.classes, ens_info, distill_info, registered,
                          run.y_test)
    log_judgement(sweep, rows, report.parent, run.classes)
    result = {"sweep": sweep.name, "rows": [r.model_dump() for r in rows], "registered": registered,
              "report": str(report), "ensemble": ens_info, "rows_used": rows_used,
              "bundles": {k: str(v) for k, v in bundles.items()}}
    run.files.write_state(result)
    return result
