"""Sizing the student (distill.sizes): the choice rule, the validation rows (training split only),
the search on a mixed-family teacher, and PostSweep keeping today's behaviour when sizes is empty.
No Ray here (tests/trainers/test_distill_ray.py runs the candidates as Ray tasks)."""
import functools

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from fake_sweep import fake_spec, make_fake_sweep
from service.judge import latency_per_sample
from service.postsweep import PostSweep, read_provenance
from trainers.loop import torch_threads
from service.report import write_report
from trainers.config import DistillConfig, StudentConfig
from trainers.distill import choose_student, distill, size_student, student_model_config, validation_split
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.families import get_family
from trainers.loop import FoldTrainer
from trainers.train_config import TrainConfig
from trainers.families.config import ModelConfig


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """As finish_sweep runs distillation with 1 CPU: two threads on a busy 2-core box crawl."""
    with torch_threads(1):
        yield


def cand(parameters, acc, ms=1.0):
    return {"parameters": parameters, "val_accuracy": acc, "latency_ms_b1": ms}


# ---- the choice rule ----

def test_smallest_within_the_margin_wins_not_the_most_accurate():
    cands = [cand(5000, 0.96), cand(300, 0.93), cand(1200, 0.945), cand(800, 0.95)]
    # teacher 0.955, margin 0.01: 0.945 and above qualify; of those 800 parameters is the smallest
    assert choose_student(cands, 0.955, 0.01)[0] == 3
    # a wider margin lets the smallest in
    index, reason = choose_student(cands, 0.955, 0.03)
    assert index == 1 and "smallest" in reason and "0.9550" in reason


def test_a_candidate_exactly_at_the_margin_counts():
    # 0.95 - 0.02 is 0.9299999999999999 in floats; 0.93 must still be within
    assert choose_student([cand(10, 0.93), cand(20, 0.99)], 0.95, 0.02)[0] == 0


def test_none_within_the_margin_falls_back_to_the_most_accurate():
    cands = [cand(100, 0.80), cand(900, 0.86), cand(400, 0.86)]
    index, reason = choose_student(cands, 0.97, 0.01)
    assert index == 2 and "no candidate within" in reason  # accuracy tie: the smaller one


def test_latency_budget_picks_the_most_accurate_under_it():
    cands = [cand(100, 0.90, ms=0.02), cand(400, 0.94, ms=0.05), cand(5000, 0.99, ms=0.40)]
    index, reason = choose_student(cands, 0.99, 0.01, max_latency_ms=0.1)
    # without the budget the 5000-parameter one (within the margin) would be chosen
    assert choose_student(cands, 0.99, 0.01)[0] == 2
    assert index == 1 and "under the latency budget" in reason
    index, reason = choose_student(cands, 0.99, 0.01, max_latency_ms=0.01)
    assert index == 0 and "no candidate under" in reason and "fastest" in reason


# ---- the spec section ----

def test_sizes_merge_over_student_and_empty_keeps_the_one_student():
    cfg = DistillConfig()
    assert cfg.sizes == [] and cfg.candidates() == [cfg.student]
    cfg = DistillConfig.model_validate({"student": {"family": "cnn", "channels": 4, "dropout": 0.1},
                                        "sizes": [{"hidden": 16}, {"channels": 8, "hidden": 64}]})
    shapes = cfg.candidates()
    assert [s.shape() for s in shapes] == [{"hidden": 16, "channels": 4}, {"hidden": 64, "channels": 8}]
    assert {(s.family, s.dropout) for s in shapes} == {("cnn", 0.1)}  # only the size varies


@pytest.mark.parametrize("raw, field", [
    ({"margin": 1.5}, "margin"), ({"margin": -0.1}, "margin"),
    ({"validation_fraction": 0.9}, "validation_fraction"), ({"validation_fraction": 0.0}, "validation_fraction"),
    ({"max_latency_ms": 0}, "max_latency_ms"), ({"sizes": [{"hidden": 0}, {"hidden": 8}]}, "sizes.0.hidden"),
    ({"sizes": [{"width": 8}, {"hidden": 8}]}, "sizes.0.width"),
    ({"sizes": [{"hidden": i} for i in range(1, 18)]}, "sizes"),
])
def test_bad_values_name_their_field(raw, field):
    with pytest.raises(ValidationError) as err:
        DistillConfig.model_validate(raw)
    assert field in {".".join(map(str, e["loc"])) for e in err.value.errors()}


def test_repeated_shapes_are_refused_counting_only_the_fields_the_family_uses():
    # an MLP has no channels: these two are the same student
    with pytest.raises(ValidationError, match=r"distinct shapes in sizes .* but got \{'family': 'mlp', 'hidden': 16, 'depth': 1\}"):
        DistillConfig.model_validate({"sizes": [{"hidden": 16, "channels": 4}, {"hidden": 16}]})


# ---- the validation rows ----

def test_validation_rows_are_a_stratified_part_of_the_training_split_only():
    x, y = load_digits(return_X_y=True)
    train_ids, test_ids = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
    fit, val = validation_split(y[train_ids], 0.2, seed=3)
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == len(train_ids)
    assert len(val) == int(np.ceil(0.2 * len(train_ids)))
    # positions index the training split: as dataset row ids they are training rows, never test rows
    val_ids = train_ids[val]
    assert np.isin(val_ids, train_ids).all() and not np.isin(val_ids, test_ids).any()
    # every class is scored, in about its share
    share = np.bincount(y[val_ids], minlength=10) / len(val_ids)
    np.testing.assert_allclose(share, np.bincount(y[train_ids]) / len(train_ids), atol=0.01)
    again = validation_split(y[train_ids], 0.2, seed=3)
    assert np.array_equal(again[1], val) and not np.array_equal(validation_split(y[train_ids], 0.2, 4)[1], val)


def test_a_class_with_one_row_still_splits_and_too_few_rows_say_which_field():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])  # class 2 once: no stratification possible
    fit, val = validation_split(y, 0.25, seed=0)
    assert len(val) == 3 and len(fit) == 6
    with pytest.raises(ValueError, match=r"distill.validation_fraction=0.2 of 2 training rows"):
        validation_split(np.array([0, 1]), 0.2, seed=0)


# ---- the search itself, on a mixed-family teacher ----

def ms_per_row(predicts, x):
    return {k: 1e3 * v for k, v in latency_per_sample(predicts, x, 1, 3).items()}


@functools.cache
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:500].astype(np.float32), y[:500]


@pytest.fixture(scope="module")
def mixed_teacher():
    """logreg (scikit-learn) + mlp (torch) members: the teacher may be any families' ensemble."""
    x, y = digits()
    base = ModelConfig(in_features=64, n_classes=10, image_shape=(1, 8, 8), hidden=32, depth=1)
    family = get_family("logreg")
    lr_cfg, lr_fit = family.split({"max_iter": 200}, base)
    fit = family.start(lr_cfg, lr_fit, x, y, seed=0)
    for _ in range(fit.rounds):
        fit.advance()
    trainer = FoldTrainer(base, TrainConfig(epochs=4, lr=1e-2), x, y, seed=0)
    for _ in range(4):
        trainer.train_epoch()
    teacher = EnsemblePredictor([fit.model, trainer.model], [lr_cfg, base])
    assert teacher.families() == ["logreg", "mlp"]
    return teacher


def test_size_student_trains_every_candidate_and_applies_the_rule(mixed_teacher):
    x, y = digits()
    cfg = DistillConfig(sizes=[{"hidden": 64}, {"hidden": 4}, {"hidden": 16, "depth": 2}], epochs=6, lr=1e-2,
                        margin=0.02)
    sizing = size_student(cfg, mixed_teacher.configs[0], x, y, mixed_teacher, seed=0, latency=ms_per_row)
    info = sizing.info
    assert [c["shape"] for c in info["candidates"]] == [{"hidden": 64, "depth": 1}, {"hidden": 4, "depth": 1},
                                                         {"hidden": 16, "depth": 2}]
    assert [c["parameters"] for c in info["candidates"]] == [64 * 64 + 64 + 64 * 10 + 10, 64 * 4 + 4 + 4 * 10 + 10,
                                                             64 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10]
    assert all(0 < c["latency_ms_b1"] < 1000 and 0 <= c["val_accuracy"] <= 1 for c in info["candidates"])
    assert (info["transfer_rows"], info["validation_rows"]) == (400, 100)
    assert info["teacher_score"].startswith("in-sample")
    # the recorded numbers lead to the recorded choice, and the chosen shape is the returned one
    assert (info["chosen"], info["reason"]) == choose_student(info["candidates"], info["teacher_val_accuracy"], 0.02)
    assert sizing.student == cfg.candidates()[info["chosen"]]
    # the candidates learned something from 400 rows in 6 epochs; 4 hidden units learn less than 64
    accs = [c["val_accuracy"] for c in info["candidates"]]
    assert accs[0] > 0.8 and accs[0] > accs[1]


def test_an_out_of_fold_teacher_score_is_used_on_the_validation_rows(mixed_teacher):
    x, y = digits()
    cfg = DistillConfig(sizes=[{"hidden": 8}, {"hidden": 32}], epochs=2)
    # a stand-in OOF that is right exactly on the even rows: its validation accuracy is known
    oof = np.eye(10)[np.where(np.arange(len(y)) % 2 == 0, y, (y + 1) % 10)]
    sizing = size_student(cfg, mixed_teacher.configs[0], x, y, mixed_teacher, seed=1, latency=ms_per_row,
                          teacher_oof=oof)
    assert sizing.info["teacher_score"] == "out-of-fold"
    assert sizing.info["teacher_val_accuracy"] == pytest.approx(np.mean(sizing.validation % 2 == 0))
    with pytest.raises(ValueError, match="one row per training row must hold, but got 3 rows for 500"):
        size_student(cfg, mixed_teacher.configs[0], x, y, mixed_teacher, latency=ms_per_row, teacher_oof=oof[:3])


# ---- PostSweep: empty sizes is today's student; sizes records candidates and rows ----

@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    spec = fake_spec("sizing", None, search={"fixed": {"epochs": 2, "batch_size": 64}}, ensemble={"top_k": 1})
    sweep = make_fake_sweep(tmp_path_factory.mktemp("sizing"), spec, trials=({"lr": 1e-2, "hidden": 16},),
                            with_mlflow_run=False)
    run = PostSweep(sweep, use_ray=False, latency_repeats=3)
    teacher, _ = run.ensemble()
    return sweep, teacher, run.files.bundle("ensemble")


def _post(sweep, **distill):
    import dataclasses

    spec = sweep.spec.model_copy(update={"distill": DistillConfig.model_validate(
        {**sweep.spec.distill.model_dump(), **distill})})
    return PostSweep(dataclasses.replace(sweep, spec=spec), use_ray=False, latency_repeats=3)


def test_empty_sizes_distils_the_one_student_on_the_whole_training_split(small_sweep):
    sweep, teacher, teacher_dir = small_sweep
    run = _post(sweep)
    student, info = run.distill(teacher, teacher_dir)
    chosen = sweep.spec.distill.student
    assert "sizing" not in info and info["student"] == {"family": chosen.family, **chosen.shape()}
    assert "channels" not in info["student"]  # an MLP student: only the fields its family uses
    prov = read_provenance(run.files.bundle("student"))
    assert "selection_rows" not in prov and prov["fit_rows"] == sweep.train_idx.tolist()
    # exactly what `distill` gives on the training split: today's behaviour
    cfg = sweep.spec.distill
    direct, _ = distill(cfg, student_model_config(cfg.student, teacher.configs[0]), run.x_train, run.y_train,
                        teacher, sweep.spec.cv.seed)
    for (k, a), b in zip(student.models[0].state_dict().items(), direct.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_sizes_choose_retrain_and_report_the_candidates(small_sweep, tmp_path):
    sweep, teacher, teacher_dir = small_sweep
    run = _post(sweep, sizes=[{"hidden": 4}, {"hidden": 24}], margin=1.0)  # margin 1: the smallest always qualifies
    student, info = run.distill(teacher, teacher_dir)
    sizing = info["sizing"]
    assert sizing["chosen"] == 0 and info["student"]["hidden"] == 4 and student.configs[0].hidden == 4
    assert sizing["teacher_score"] == "out-of-fold"  # the fake sweep's trials saved their OOF predictions
    prov = read_provenance(run.files.bundle("student"))
    # candidates were scored on training rows only; the final student learned from all of them
    val_ids = np.asarray(prov["selection_rows"])
    assert len(val_ids) == sizing["validation_rows"] and np.isin(val_ids, sweep.train_idx).all()
    assert not np.isin(val_ids, sweep.test_idx).any()
    assert prov["fit_rows"] == sweep.train_idx.tolist()
    assert run.rows_used({"student": run.files.bundle("student")})["student_selection"] == len(val_ids)
    report = write_report(sweep, [], tmp_path / "report", run.classes, None, info).read_text()
    assert "| candidate | parameters | validation accuracy | ms/sample b1 | chosen |" in report
    assert "| mlp hidden=4, depth=1 | " in report and "| mlp hidden=24, depth=1 | " in report
    chosen_line = next(line for line in report.splitlines() if line.startswith("| mlp hidden=4,"))
    assert chosen_line.endswith("| yes |") and "Chosen: **mlp hidden=4, depth=1**" in report


# ---- a regression target: RMSE, lower is better, the margin a share of the teacher's ----

def test_regression_smallest_within_a_share_of_the_teachers_rmse_wins():
    cands = [{"parameters": p, "val_rmse": r, "latency_ms_b1": 1.0} for p, r in
             ((5000, 9.8), (300, 11.0), (800, 10.4), (1200, 10.5))]
    # teacher 10.0, margin 0.05: at most 10.5 qualifies (at the margin counts); 800 is the smallest of those
    index, reason = choose_student(cands, 10.0, 0.05, metric="rmse")
    assert index == 2 and "within 5% of the teacher's validation rmse (10.0000)" in reason
    index, reason = choose_student(cands, 9.0, 0.01, metric="rmse")
    assert index == 0 and "no candidate within" in reason  # none within 1% of 9.0: the lowest RMSE


def test_a_regression_student_learns_the_teachers_values_in_the_targets_units():
    """Distilled from a regression teacher: the student answers one value per row, close to the teacher
    where it learned (alpha 1: the teacher's values only), whatever the target's offset and scale."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x, y = x.astype(np.float32), 1000.0 + 10.0 * y  # far from 0..1
    family = get_family("hist_gb")
    cfg = ModelConfig(family="hist_gb", in_features=x.shape[1], n_classes=1, task="regression")
    model_cfg, params = family.split({"max_iter": 40, "rounds": 1}, cfg)
    fit = family.start(model_cfg, params, x[:350], y[:350], 0)
    fit.advance()
    teacher = EnsemblePredictor([fit.model], [model_cfg], kind="ensemble")
    dcfg = DistillConfig(epochs=60, alpha=1.0, lr=0.01, student={"hidden": 32})
    student_cfg = student_model_config(dcfg.student, model_cfg)
    assert student_cfg.task == "regression" and student_cfg.n_classes == 1
    model, losses = distill(dcfg, student_cfg, x[:350], y[:350], teacher, seed=0)
    assert losses[-1] < 0.5 * losses[0]
    student = EnsemblePredictor([model], [student_cfg], kind="student")
    out, taught = student.predict_proba(x[350:])[:, 0], teacher.predict_proba(x[350:])[:, 0]
    assert np.sqrt(((out - taught) ** 2).mean()) < 0.5 * taught.std()
    assert student.predict(x[350:352]) == pytest.approx(out[:2].tolist())
