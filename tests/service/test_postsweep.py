"""finish_sweep end to end on a small real sweep: ensemble, student, judgement, registry, report."""
import dataclasses
import json
import os
import subprocess
import sys
import time

import mlflow
import numpy as np
import pytest

from fake_sweep import fake_spec, make_fake_sweep
from service.postsweep import PostSweep, PostSweepError, finish_sweep, read_provenance
from trainers.config import EnsembleConfig
from trainers.ensemble.predictor import EnsemblePredictor
from trainers.postsweep_cost import tail_s


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("post")
    spec = fake_spec("post", f"sqlite:///{tmp}/mlflow.db", ensemble={"top_k": 2, "method": "soft_vote"})
    sweep = make_fake_sweep(tmp / "sweeps", spec)
    result = finish_sweep(sweep, use_ray=False, latency_repeats=5)
    yield sweep, result, tmp


def test_result_rows_and_registrations(done):
    sweep, result, _ = done
    assert [r["model"] for r in result["rows"]] == ["single", "ensemble", "student"]
    for row in result["rows"]:
        assert 0 <= row["accuracy"] <= 1 and row["log_loss"] > 0 and row["latency_ms_b1"] > 0
        assert np.asarray(row["confusion"]).sum() == len(sweep.test_idx)
    assert result["registered"]["ensemble"]["name"] == "post-ensemble"
    assert result["registered"]["student"]["name"] == "post-student"
    json.dumps(result)  # what --json prints
    client = mlflow.MlflowClient(sweep.spec.mlflow_uri())
    ens = {r["model"]: r for r in result["rows"]}["ensemble"]
    tags = client.get_model_version("post-ensemble", result["registered"]["ensemble"]["version"]).tags
    assert float(tags["test_accuracy"]) == pytest.approx(ens["accuracy"])
    run = client.get_run(sweep.mlflow_run_id)
    assert run.data.metrics["test_ensemble_accuracy"] == pytest.approx(ens["accuracy"])
    assert {"test_single_f1_macro", "test_student_latency_ms_b1"} <= set(run.data.metrics)
    assert "report/report.md" in [a.path for a in client.list_artifacts(sweep.mlflow_run_id, "report")]


def test_report_on_disk(done):
    _, result, _ = done
    report = result["report"]
    text = open(report).read()
    assert "| ensemble |" in text and "scores.png" in text and "curves.png" in text
    folder = os.path.dirname(report)
    for name in ("scores.png", "curves.png", "confusion_single.png", "confusion_ensemble.png", "confusion_student.png"):
        assert os.path.getsize(os.path.join(folder, name)) > 1000, name


def test_fresh_process_loads_registered_models(done):
    sweep, result, tmp = done
    data = sweep.dataset()
    x = data.x[sweep.test_idx][:40]
    np.save(tmp / "x.npy", x)
    code = (
        "import json, sys, mlflow, numpy as np\n"
        "x = np.load(sys.argv[1]); out = {}\n"
        "for uri in sys.argv[2:]:\n"
        "    m = mlflow.pyfunc.load_model(uri)\n"
        "    out[uri] = {'classes': np.asarray(m.predict(x)).tolist(),\n"
        "                'proba': np.asarray(m.predict(x, params={'output': 'proba'})).tolist()}\n"
        "print('RESULT' + json.dumps(out))\n")
    uris = [result["registered"][k]["uri"] for k in ("ensemble", "student")]
    env = {**os.environ, "MLFLOW_TRACKING_URI": sweep.spec.mlflow_uri()}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp / "x.npy"), *uris], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    for kind, uri in zip(("ensemble", "student"), uris):
        local = EnsemblePredictor.load(result["bundles"][kind])
        assert out[uri]["classes"] == local.predict(x)
        np.testing.assert_allclose(out[uri]["proba"], local.predict_proba(x), atol=1e-6)


def test_held_out_rows_never_reach_selection_or_distillation(done):
    sweep, result, _ = done
    test = set(sweep.test_idx.tolist())
    assert not test & set(sweep.train_idx.tolist())
    ens = read_provenance(result["bundles"]["ensemble"])
    student = read_provenance(result["bundles"]["student"])
    assert ens["selection_rows"] == sweep.train_idx.tolist()  # OOF rows = the training split
    assert student["fit_rows"] == sweep.train_idx.tolist()  # the transfer set = the training split
    for ids in (ens["selection_rows"], ens["fit_rows"], student["fit_rows"]):
        assert not test & set(ids)
    for trial in sweep.ranked():  # every OOF row is a training row, and each one is there once
        oof = trial.oof()
        assert oof.shape[0] == len(sweep.train_idx) and np.isfinite(oof).all()
    assert result["rows_used"]["test"] == len(test)
    leaky = dataclasses.replace(sweep, test_idx=np.concatenate([sweep.test_idx, sweep.train_idx[:3]]))
    with pytest.raises(PostSweepError, match="disjoint training and held-out rows must hold, but got 3 shared"):
        PostSweep(leaky, use_ray=False)


def test_redo_distill_only_keeps_the_ensemble(done):
    sweep, result, _ = done
    ens_files = {p: os.path.getmtime(os.path.join(result["bundles"]["ensemble"], p))
                 for p in os.listdir(result["bundles"]["ensemble"])}
    again = finish_sweep(sweep, use_ray=False, redo=("distill",), latency_repeats=3)
    assert again["registered"]["ensemble"] == result["registered"]["ensemble"]
    assert int(again["registered"]["student"]["version"]) == int(result["registered"]["student"]["version"]) + 1
    assert {p: os.path.getmtime(os.path.join(result["bundles"]["ensemble"], p)) for p in ens_files} == ens_files


def test_redo_ensemble_with_another_method_keeps_the_student(done):
    sweep, _, _ = done
    before = json.loads((sweep.dir / "postsweep" / "state.json").read_text())["registered"]
    again = finish_sweep(sweep, use_ray=False, redo=("ensemble",), latency_repeats=3,
                         ensemble_cfg=EnsembleConfig(top_k=3, method="stacking"))
    assert again["ensemble"]["method"] == "stacking" and len(again["ensemble"]["trials"]) == 3
    assert int(again["registered"]["ensemble"]["version"]) == int(before["ensemble"]["version"]) + 1
    assert again["registered"]["student"] == before["student"]
    assert sweep.spec.ensemble.method == "soft_vote"  # the stored spec is left as it was


@pytest.mark.parametrize("left", ["spent", "only the tail's"])
def test_refits_leave_the_trials_their_fold_models_once_no_time_is_left_for_them(done, left):
    """members: refit under a time budget that has run out, or whose rest the steps after the ensemble
    need (trainers.postsweep_cost.tail_s): nothing is retrained, each chosen trial serves its fold
    models, and the report says so."""
    sweep, _, _ = done
    ahead = -1.0 if left == "spent" else tail_s(len(sweep.train_idx)) - 5
    again = finish_sweep(sweep, use_ray=False, redo=("ensemble",), latency_repeats=3,
                         ensemble_cfg=EnsembleConfig(top_k=2, method="soft_vote", members="refit"),
                         deadline=time.time() + ahead)
    chosen = [t["trial_id"] for t in again["ensemble"]["trials"]]
    assert again["ensemble"]["kept_fold_models"] == chosen and len(chosen) == 2
    assert [t["n_members"] for t in again["ensemble"]["trials"]] == [3, 3]
    assert f"trial(s) {', '.join(chosen)} serve their fold models" in open(again["report"]).read()


def test_refits_run_when_the_budget_leaves_them_time(done):
    sweep, _, _ = done
    again = finish_sweep(sweep, use_ray=False, redo=("ensemble",), latency_repeats=3,
                         ensemble_cfg=EnsembleConfig(top_k=2, method="soft_vote", members="refit"),
                         deadline=time.time() + tail_s(len(sweep.train_idx)) + 120)
    assert not again["ensemble"].get("kept_fold_models")
    assert [t["n_members"] for t in again["ensemble"]["trials"]] == [1, 1]


def test_clear_errors(done):
    sweep, _, _ = done
    with pytest.raises(PostSweepError, match="use_ray=True needs a running Ray session"):
        finish_sweep(sweep, use_ray=True)
    failed = dataclasses.replace(sweep, trials=[dataclasses.replace(t, status="ERROR") for t in sweep.trials])
    with pytest.raises(PostSweepError, match="at least one finished trial must hold, but got none of 3"):
        finish_sweep(failed, use_ray=False)
    with pytest.raises(ValueError, match=r"redo steps from \['ensemble', 'distill'\] must hold"):
        finish_sweep(sweep, use_ray=False, redo=("serve",))
