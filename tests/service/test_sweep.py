"""End-to-end sweeps on a real local Ray with a real MLflow store (sqlite in a temp dir)."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from mlflow.tracking import MlflowClient

from service.progress import Silent
from service.spec import parse_spec
from service.store import load_sweep
from service.sweep import run_sweep, summary
from tests.conftest import tiny_spec

pytestmark = pytest.mark.usefixtures("ray_session")


def _run(spec_dict):
    return run_sweep(parse_spec(spec_dict), Silent())


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory, ray_session):
    tmp = tmp_path_factory.mktemp("grid")
    mp = pytest.MonkeyPatch()
    mp.setenv("RAYSEMBLE_HOME", str(tmp / "home"))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
    spec = tiny_spec("grid", search={"algorithm": "grid", "max_concurrent": 2,
                                     "space": {"lr": {"grid": [0.003, 0.01]}, "hidden": {"grid": [16, 32]}},
                                     "fixed": {"epochs": 2}})
    sweep = _run(spec)
    yield sweep, MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    mp.undo()


def test_grid_2x2_runs_exactly_4_trials(grid_sweep):
    sweep, _ = grid_sweep
    assert len(sweep.trials) == 4
    assert sorted((t.params["lr"], t.params["hidden"]) for t in sweep.trials) == \
        [(0.003, 16), (0.003, 32), (0.01, 16), (0.01, 32)]
    assert all(t.status == "TERMINATED" and len(t.fold_scores) == 3 for t in sweep.trials)
    ranked = [t.mean_score for t in sweep.ranked()]
    assert ranked == sorted(ranked, reverse=True)
    assert summary(sweep)["trials"][0]["mean"] == ranked[0]


def test_oof_covers_every_training_row_once(grid_sweep):
    sweep, _ = grid_sweep
    n_train = len(sweep.train_idx)
    for trial in sweep.trials:
        idx = np.concatenate([np.load(trial.checkpoint_dir / f"val_idx_{k}.npy") for k in range(3)])
        assert sorted(idx.tolist()) == list(range(n_train))
        oof = trial.oof()
        assert oof.shape == (n_train, 10) and np.allclose(oof.sum(1), 1.0, atol=1e-5)
        # the trial's mean fold score is the mean of per-fold accuracies on those OOF rows
        y = sweep.dataset().y[sweep.train_idx]
        fold_acc = [(oof[np.load(trial.checkpoint_dir / f"val_idx_{k}.npy")].argmax(1) ==
                     y[np.load(trial.checkpoint_dir / f"val_idx_{k}.npy")]).mean() for k in range(3)]
        assert trial.mean_score == pytest.approx(np.mean(fold_acc))


def test_mlflow_nests_folds_under_trials_under_the_sweep(grid_sweep):
    sweep, client = grid_sweep
    exp = sweep.experiment_id
    parent = client.get_run(sweep.mlflow_run_id)
    assert parent.info.status == "FINISHED" and "best_cv_accuracy" in parent.data.metrics
    trials = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{sweep.mlflow_run_id}'")
    assert len(trials) == 4
    for trial_run in trials:
        assert {"lr", "hidden"} <= set(trial_run.data.params)
        assert len(client.get_metric_history(trial_run.info.run_id, "mean_val_accuracy")) == 2
        folds = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{trial_run.info.run_id}'")
        assert sorted(r.data.tags["raysemble.fold"] for r in folds) == ["0", "1", "2"]
        fold = folds[0]
        curve = client.get_metric_history(fold.info.run_id, "val_loss")
        assert [m.step for m in curve] == [1, 2]
        names = {a.path for a in client.list_artifacts(fold.info.run_id)}
        assert {"confusion_matrix.json", "checkpoint"} <= names
        assert "confusion_matrix.png" in {a.path for a in client.list_artifacts(trial_run.info.run_id)}
        matrix = client.download_artifacts(fold.info.run_id, "confusion_matrix.json")
        rows_in_fold = len(np.load(sweep.trials[0].checkpoint_dir / f"val_idx_{fold.data.tags['raysemble.fold']}.npy"))
        assert sum(map(sum, json.load(open(matrix))["matrix"])) == rows_in_fold


@pytest.mark.parametrize("algorithm", ["random", "bayesian"])
def test_random_and_bayesian_run_num_trials(home, algorithm):
    spec = tiny_spec(f"algo-{algorithm}", search={
        "algorithm": algorithm, "num_trials": 3, "max_concurrent": 2, "scheduler": "asha", "grace_period": 1,
        "space": {"lr": {"loguniform": [0.001, 0.02]}, "hidden": {"choice": [16, 32]}},
        "fixed": {"epochs": 3}})
    sweep = _run(spec)
    assert len(sweep.trials) == 3 and len({t.trial_id for t in sweep.trials}) == 3
    assert all(t.status == "TERMINATED" for t in sweep.trials)
    assert all(0.001 <= t.params["lr"] <= 0.02 for t in sweep.trials)


def test_same_spec_and_seed_give_the_same_cv_scores(home):
    scores = []
    for name in ("repro-a", "repro-b"):
        spec = tiny_spec(name, search={"algorithm": "random", "num_trials": 2, "seed": 7,
                                       "space": {"lr": {"loguniform": [0.001, 0.02]},
                                                 "mixup_alpha": {"choice": [0.0, 0.4]}},
                                       "fixed": {"epochs": 2, "hidden": 16, "dropout": 0.2}})
        sweep = _run(spec)
        scores.append(sorted((round(t.params["lr"], 12), t.fold_scores) for t in sweep.trials))
    assert scores[0] == scores[1]


def _sweep_and_kill_one(spec: dict, ready_glob, marker: str, timeout_s: float):
    """Run the sweep in a thread; once a checkpoint matches ready_glob, SIGKILL one descendant
    process of this test (our own Ray's workers only) whose command line holds `marker`.
    Returns (sweep, killed pid or None)."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("sweep", _run(spec)))
    thread.start()
    killed = None
    deadline = time.time() + timeout_s
    while time.time() < deadline and killed is None and thread.is_alive():
        if list(ready_glob()):  # training is under way
            for proc in psutil.Process().children(recursive=True):
                try:
                    if marker in " ".join(proc.cmdline()):
                        killed = proc.pid
                        proc.kill()
                        break
                except psutil.NoSuchProcess:
                    pass
        time.sleep(0.3)
    thread.join(timeout=400)
    return result["sweep"], killed


def test_ray_train_path_survives_a_killed_worker(home):
    """One trial on a 2-worker Ray Train group; a worker is SIGKILLed mid-trial; the run restarts
    from its last checkpoint and the sweep completes with every fold scored."""
    spec = tiny_spec("train-path", resources={"workers_per_trial": 2, "cpus_per_worker": 0.5,
                                              "executor": "ray_train"},
                     search={"algorithm": "random", "num_trials": 1, "max_failures": 2,
                             "space": {"lr": {"loguniform": [0.003, 0.01]}}, "fixed": {"epochs": 40, "hidden": 16}})
    train_dir = home / "home" / "tune" / "train-path" / "train"
    sweep, killed = _sweep_and_kill_one(spec, lambda: train_dir.glob("*/checkpoint_*"), "RayTrainWorker", 240)
    assert killed is not None, "no Ray Train worker was found to kill"
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE
    (trial,) = sweep.trials
    assert trial.status == "TERMINATED" and trial.epochs == 40 and len(trial.fold_scores) == 3
    assert trial.mean_score > 0.8
    assert load_sweep("train-path").trials[0].oof().shape[0] == len(sweep.train_idx)


def test_in_trial_path_retries_a_killed_trial_from_its_checkpoint(home):
    spec = tiny_spec("retry", search={"algorithm": "random", "num_trials": 1, "max_failures": 2,
                                      "space": {"lr": {"loguniform": [0.003, 0.01]}},
                                      "fixed": {"epochs": 60, "hidden": 16}})
    trial_dirs = home / "home" / "tune" / "retry"
    sweep, killed = _sweep_and_kill_one(spec, lambda: trial_dirs.glob("*/checkpoint_*"), "ray::ImplicitFunc", 180)
    assert killed is not None, "no trial process was found to kill"
    (trial,) = sweep.trials
    assert trial.status == "TERMINATED" and trial.epochs == 60
    lines = [json.loads(line) for line in (home / "home" / "sweeps" / "retry" / "attempts.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["train", "train"]  # the first attempt, then the retry
    assert lines[0]["pid"] != lines[1]["pid"]


def test_ddp_per_fold_matches_single_process_training(home):
    """parallelism: ddp trains every fold on both workers (half of each batch each, gradients
    averaged): the same config must score as one process training on whole batches does."""
    search = {"algorithm": "grid", "space": {"lr": {"grid": [0.005]}},
              "fixed": {"epochs": 3, "hidden": 32, "dropout": 0.0, "batch_size": 64}}
    ddp = _run(tiny_spec("ddp", search=search, resources={
        "workers_per_trial": 2, "cpus_per_worker": 0.5, "executor": "ray_train", "parallelism": "ddp"}))
    single = _run(tiny_spec("single", search=search))
    (a,), (b,) = ddp.trials, single.trials
    assert a.status == "TERMINATED" and len(a.fold_scores) == 3
    assert np.allclose(a.fold_scores, b.fold_scores, atol=0.01), (a.fold_scores, b.fold_scores)
    assert np.abs(a.oof() - b.oof()).max() < 0.05


def test_one_sweep_over_three_families_builds_a_mixed_ensemble_that_serves_as_pyfunc(home):
    """Grid over families: each family's own combinations once; then a greedy ensemble over members
    of several families (fold models and refits), judged per family, registered and loaded back."""
    import mlflow

    from service.postsweep import finish_sweep
    from trainers.ensemble.predictor import EnsemblePredictor

    spec = tiny_spec("mixed", data={"source": "sklearn:wine", "test_fraction": 0.25},
                     search={"algorithm": "grid", "max_concurrent": 2,
                             "space": {"family": {"grid": ["logreg", "hist_gb", "mlp"]},
                                       "logreg.C": {"grid": [0.05, 1.0]},
                                       "hist_gb.learning_rate": {"grid": [0.1]}},
                             "fixed": {"epochs": 20, "hist_gb.max_iter": 40, "hist_gb.rounds": 4}},
                     ensemble={"selection": "greedy", "top_k": 4, "method": "soft_vote"},
                     distill={"epochs": 10})
    sweep = _run(spec)
    assert sorted(t.params["family"] for t in sweep.trials) == ["hist_gb", "logreg", "logreg", "mlp"]
    assert all(t.status == "TERMINATED" for t in sweep.trials), [t.error for t in sweep.trials]
    by_family = {t.params["family"]: t for t in sweep.trials}
    assert by_family["hist_gb"].params == {"family": "hist_gb", "learning_rate": 0.1, "max_iter": 40, "rounds": 4}
    assert by_family["hist_gb"].epochs == 4  # reported per block of boosting rounds
    assert set(by_family["mlp"].params) == {"family", "epochs"}
    result = finish_sweep(sweep, use_ray=False, latency_repeats=2)
    rows = {r["model"]: r for r in result["rows"]}
    assert {"best_logreg", "best_hist_gb", "best_mlp"} <= set(rows)
    ensemble = EnsemblePredictor.load(sweep.dir / "postsweep" / "ensemble")
    assert rows["ensemble"]["family"] == "+".join(sorted(set(ensemble.families())))
    x = sweep.dataset().x[sweep.test_idx]
    with sweep.spec.locations().active():
        served = mlflow.pyfunc.load_model(result["registered"]["ensemble"]["uri"])
        np.testing.assert_allclose(served.predict(x, params={"output": "proba"}), ensemble.predict_proba(x), atol=1e-6)
    # refit members: one model per chosen trial, each retrained by its own family
    from trainers.config import EnsembleConfig

    refit = finish_sweep(sweep, use_ray=True, redo=("ensemble",), latency_repeats=2,
                         ensemble_cfg=EnsembleConfig(selection="top_k", top_k=3, members="refit"))
    rebuilt = EnsemblePredictor.load(sweep.dir / "postsweep" / "ensemble")
    assert len(rebuilt.models) == 3 and len(set(rebuilt.families())) >= 2
    assert {r["model"]: r for r in refit["rows"]}["ensemble"]["accuracy"] > 0.8


def test_a_failing_trial_is_recorded_with_its_exception_and_the_sweep_fails(home):
    """The error a trial died of reaches trials.json and the summary (not a bare "trial failed")."""
    spec = tiny_spec("broken", model={"family": "torch", "factory": "tests.trainers.factory_models:too_few_logits"},
                     search={"algorithm": "random", "num_trials": 1, "max_failures": 0,
                             "fixed": {"epochs": 2}})
    sweep = _run(spec)
    (trial,) = sweep.trials
    assert trial.status == "ERROR" and "out of bounds" in trial.error, trial.error
    assert trial.error.split(":")[0].endswith(("IndexError", "RuntimeError")), trial.error
    assert json.loads((sweep.dir / "sweep.json").read_text())["state"] == "FAILED"


BUDGET_MARGIN_S = 30  # the stopper's grace (10 s here) where a trial's round outlasts the search; the reserve's estimate
PENGUINS = Path(__file__).resolve().parents[2] / "examples" / "data" / "penguins.csv"


def test_a_time_budget_and_only_data_end_with_a_good_ensemble_within_the_budget(home):
    """Only a table and 60 s (the student asked for far more epochs than fit): the tabular preset's
    portfolio runs first, cheapest first; the search stops at its share, the trials running then keep
    the round they reached and none starts after it; the student's training stops at the run's end."""
    from service.postsweep import finish_sweep, read_provenance

    spec = {"name": "budget", "data": {"source": str(PENGUINS), "target": "sex"}, "cv": {"folds": 3},
            # 10k epochs of batches of 4: 5000 of 64 fitted inside the budget on a quicker machine (2026-12-04)
            "search": {"time_budget_s": 60}, "distill": {"epochs": 10_000, "batch_size": 4}}
    began = time.time()
    sweep = _run(spec)
    result = finish_sweep(sweep, use_ray=False, latency_repeats=2, deadline=sweep.run_deadline())
    took = time.time() - began
    print(f"budget run took {took:.1f} s")
    assert took <= 60 + BUDGET_MARGIN_S, took
    assert sweep.spec.search.preset == "tabular" and sweep.meta["budget_reached"] is True
    assert sweep.meta["state"] == "SUCCEEDED" and 2 <= len(sweep.trials) < sweep.spec.search.num_trials
    assert all(t.status == "TERMINATED" and t.epochs >= 1 for t in sweep.trials), sweep.trials
    attempts = [json.loads(line) for line in sweep.files.attempts_file.read_text().splitlines()]
    started = {}
    for a in attempts:
        started.setdefault(a["trial_id"], a["time"])
    family = {t.trial_id: t.params["family"] for t in sweep.trials}
    order = [family[i] for i in sorted(started, key=started.get) if i in family]
    # the portfolio's order: the first two start together (two slots), then each as a slot frees
    assert sorted(order[:2]) == ["lightgbm", "logreg"], order
    assert len(order) < 5 or {"hist_gb", "xgboost"} <= set(order[:5]), order
    student = read_provenance(sweep.dir / "postsweep" / "student")["info"]
    assert 1 <= student["epochs_trained"] < 10_000
    # no student in the spec: the preset's candidates, trees beside a network, were weighed
    from trainers import portfolio
    candidates = [c["family"] for c in student["sizing"]["candidates"]]
    assert candidates == [s["family"] for s in portfolio.preset("tabular")["students"]], student["sizing"]
    assert student["student"]["family"] in candidates
    rows = {r["model"]: r for r in result["rows"]}
    assert rows["ensemble"]["accuracy"] >= 0.85, rows  # logistic regression alone gets about 0.9 here
    guard = result["ensemble"]["stacking_guard"]  # the preset weighs stacking against greedy selection
    assert result["ensemble"]["method"] == ("stacking" if guard["kept"] == "stacking" else "weighted"), guard
    assert f"kept **{guard['kept']}**" in Path(result["report"]).read_text()
    deadline = sweep.spec.search.deadlines(float(sweep.meta["started"]), len(sweep.train_idx))[0]
    assert all(a["time"] < deadline for a in attempts if a["kind"] == "train")


def test_repeated_k_fold_averages_each_rows_repeats_and_makes_every_fold_model_a_member(home):
    from service.postsweep import finish_sweep

    spec = {"name": "repeats", "data": {"source": str(PENGUINS), "target": "sex"}, "cv": {"folds": 2, "repeats": 2},
            "model": {"family": "logreg"}, "search": {"num_trials": 1}, "distill": {"enabled": False}}
    sweep = _run(spec)
    (trial,) = sweep.trials
    assert len(trial.fold_scores) == 4
    n_train, parts = len(sweep.train_idx), []
    for k in range(4):
        parts.append((np.load(trial.checkpoint_dir / f"val_idx_{k}.npy"), np.load(trial.checkpoint_dir / f"oof_{k}.npy")))
    for r in range(2):  # each repeat holds every row out once, in its own folds
        assert sorted(np.concatenate([parts[2 * r][0], parts[2 * r + 1][0]]).tolist()) == list(range(n_train))
    assert not np.array_equal(np.sort(parts[0][0]), np.sort(parts[2][0]))
    by_repeat = []
    for r in range(2):
        out = np.zeros((n_train, 2))
        for idx, proba in parts[2 * r:2 * r + 2]:
            out[idx] = proba
        by_repeat.append(out)
    np.testing.assert_allclose(trial.oof(), np.mean(by_repeat, 0))
    result = finish_sweep(sweep, use_ray=False, latency_repeats=1)
    assert result["ensemble"]["n_members"] == 4
    assert "2-fold CV x 2 repeats" in Path(result["report"]).read_text()
