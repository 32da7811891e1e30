"""A boosted-tree student (distill.student.family: lightgbm): soft targets by weighted rows, on matrices and
raw tables, classes and numbers; sized beside a network."""
import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits

from trainers.checkpoint import load_model
from trainers.config import DistillConfig, StudentConfig
from trainers.distill import distill, size_student, student_model_config
from trainers.distill_trees import MIN_TARGET, soft_rows
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.families import get_family
from trainers.families.config import ModelConfig


def _fitted(family_name, x, y, **params):
    family = get_family(family_name)
    task = "regression" if y.dtype.kind == "f" else "classification"
    base = ModelConfig(in_features=x.shape[1], n_classes=1 if task == "regression" else int(y.max()) + 1, task=task)
    cfg, fit_cfg = family.split(params, base)
    fit = family.start(cfg, fit_cfg, x, y, seed=0)
    for _ in range(fit.rounds):
        fit.advance()
    return EnsemblePredictor([fit.model], [cfg])


@pytest.fixture(scope="module")
def digits_teacher():
    x, y = load_digits(return_X_y=True)
    x, y = x[:800].astype(np.float32), y[:800]
    return x, y, _fitted("logreg", x[:600], y[:600], max_iter=300)


def test_soft_rows_repeat_each_row_per_class_weighted_by_its_target():
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    targets = np.array([[0.7, 0.3], [1.0, 0.0], [MIN_TARGET / 2, 1 - MIN_TARGET / 2]])
    rows, labels, weights = soft_rows(x, targets)
    assert labels.tolist() == [0, 1, 0, 1] and weights.tolist() == [0.7, 0.3, 1.0, 1 - MIN_TARGET / 2]
    np.testing.assert_array_equal(rows, x[[0, 0, 1, 2]])


def test_a_tree_student_learns_the_teachers_probabilities_not_only_its_labels(digits_teacher):
    """alpha 1: the student fits the teacher's probabilities (its weighted log loss is the soft
    cross-entropy), so it matches them more closely than a student of the labels alone (alpha 0)."""
    x, y, teacher = digits_teacher
    student_cfg = student_model_config(StudentConfig(family="lightgbm", trees=60, leaves=7), teacher.configs[0])
    assert student_cfg.options["n_estimators"] == 60 and student_cfg.options["num_leaves"] == 7
    assert student_cfg.parameter_count() == 60 * 10 * (2 * 7 - 1)  # a tree per class per iteration
    gaps, accs = [], []
    for alpha in (1.0, 0.0):
        model, losses = distill(DistillConfig(alpha=alpha), student_cfg, x[:600], y[:600], teacher, seed=0)
        assert len(losses) == 10 and losses[-1] < losses[0]  # ten blocks of trees, the loss falling
        student = EnsemblePredictor([model], [student_cfg], kind="student")
        out, taught = student.predict_proba(x[600:]), teacher.predict_proba(x[600:])
        gaps.append(np.abs(out - taught).sum(1).mean())
        accs.append((out.argmax(1) == y[600:]).mean())
    assert gaps[0] < gaps[1] and accs[0] > 0.8, (gaps, accs)


def test_a_tree_student_bundle_saves_as_lightgbm_text_and_answers_the_same(digits_teacher, tmp_path):
    x, y, teacher = digits_teacher
    cfg = DistillConfig(student={"family": "lightgbm", "trees": 20, "leaves": 7})
    model_cfg = student_model_config(cfg.student, teacher.configs[0])
    model, _ = distill(cfg, model_cfg, x[:600], y[:600], teacher, seed=0)
    student = EnsemblePredictor([model], [model_cfg], kind="student")
    again = EnsemblePredictor.load(student.save(tmp_path / "student"))
    np.testing.assert_allclose(again.predict_proba(x[600:]), student.predict_proba(x[600:]), atol=1e-12)
    member = next((tmp_path / "student").glob("*.pt"))
    assert load_model(member)[1].family == "lightgbm"


def test_a_deadline_stops_the_trees_after_the_first_block(digits_teacher):
    x, y, teacher = digits_teacher
    model_cfg = student_model_config(StudentConfig(family="lightgbm", trees=50, leaves=7), teacher.configs[0])
    model, losses = distill(DistillConfig(), model_cfg, x[:600], y[:600], teacher, deadline=0.0)
    assert len(losses) == 1 and model.current_iteration() == 5


def test_a_regression_tree_student_fits_the_teachers_values():
    x, y = load_diabetes(return_X_y=True)
    x, y = x.astype(np.float32), 1000.0 + 10.0 * y
    teacher = _fitted("hist_gb", x[:350], y[:350], max_iter=40, rounds=1)
    model_cfg = student_model_config(StudentConfig(family="lightgbm", trees=100, leaves=7), teacher.configs[0])
    assert model_cfg.task == "regression" and model_cfg.n_classes == 1
    model, losses = distill(DistillConfig(alpha=1.0), model_cfg, x[:350], y[:350], teacher)
    out = EnsemblePredictor([model], [model_cfg]).predict_proba(x[350:])[:, 0]
    taught = teacher.predict_proba(x[350:])[:, 0]
    assert np.sqrt(((out - taught) ** 2).mean()) < 0.5 * taught.std()


def test_a_table_teacher_teaches_a_tree_student_its_own_ordinal_encoding():
    """On a raw table (strings, missing values) the tree student encodes the rows its own way (category codes,
    NaN kept), fitted on the transfer rows it is given, and answers from the rows the teacher reads."""
    from tests.trainers.tables.test_table_families import base, table
    from trainers.families import start_fit
    from trainers.train_config import split_params

    rows, y, classes = table()
    cfg, fit_cfg = split_params({"family": "logreg", "max_iter": 300}, base("logreg", len(classes)))
    fit = start_fit(cfg, fit_cfg, rows[:180], y[:180], seed=0)
    for _ in range(fit.rounds):
        fit.advance()
    teacher = EnsemblePredictor([fit.model], [fit.model_cfg])
    student_cfg = student_model_config(StudentConfig(family="lightgbm", trees=30, leaves=7), fit.model_cfg,
                                       rows[:180])
    assert student_cfg.table is not None and student_cfg.table.style == "ordinal"
    model, _ = distill(DistillConfig(), student_cfg, rows[:180], y[:180], teacher)
    student = EnsemblePredictor([model], [student_cfg], kind="student")
    agree = (student.predict_proba(rows[180:]).argmax(1) == teacher.predict_proba(rows[180:]).argmax(1)).mean()
    assert agree > 0.8, agree


def test_sizing_weighs_a_tree_student_beside_a_network(digits_teacher):
    from service.judge import latency_per_sample

    x, y, teacher = digits_teacher
    cfg = DistillConfig(sizes=[{"family": "lightgbm", "trees": 30, "leaves": 7}, {"hidden": 32}], epochs=5,
                        lr=1e-2, margin=0.05)
    sizing = size_student(cfg, teacher.configs[0], x[:600], y[:600], teacher, seed=0,
                          latency=lambda p, rows: {k: 1e3 * v for k, v in latency_per_sample(p, rows, 1, 2).items()})
    cands = sizing.info["candidates"]
    assert [c["family"] for c in cands] == ["lightgbm", "mlp"]
    assert cands[0]["shape"] == {"trees": 30, "leaves": 7} and cands[0]["parameters"] == 30 * 10 * 13
    assert cands[0]["val_accuracy"] > 0.8
    assert sizing.student == cfg.candidates()[sizing.info["chosen"]]


def test_repeated_candidates_count_the_family():
    ok = DistillConfig(sizes=[{"family": "lightgbm", "trees": 30}, {"trees": 30}])  # mlp ignores trees: distinct
    assert [c.family for c in ok.candidates()] == ["lightgbm", "mlp"]
    with pytest.raises(ValueError, match="distinct shapes in sizes"):
        DistillConfig(sizes=[{"family": "lightgbm", "trees": 30}, {"family": "lightgbm", "trees": 30, "hidden": 8}])
