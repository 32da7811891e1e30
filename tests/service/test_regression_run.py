"""A numeric target end to end, as a newcomer runs the README's regression example (examples/diabetes.yaml,
trimmed for the suite's time): `raysemble run` through the installed console script decides the task
from the target, sweeps three families scored by RMSE, ensembles, distils, judges, registers and
serves; curl and tritonclient get numbers (FP64, no probabilities) from ensemble and student, and the
registered pyfunc model answers numbers in a fresh process."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tritonclient.http as triton
from sklearn.datasets import load_diabetes

from tests.service.test_front_door import served_example

ROWS = load_diabetes().data[:3].tolist()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_example(tmp_path_factory.mktemp("regression-user"), "diabetes.yaml") as served:
        yield served


def test_the_run_said_and_recorded_the_task_and_judged_by_rmse(served):
    user, running, _, name = served
    output = running.output()
    assert "task: regression; metric rmse (min)" in output
    for column in ("rmse", "mae", "r2"):
        assert column in output, output[-3000:]
    for row in ("single", "ensemble", "student", "best_hist_gb", "best_logreg", "best_mlp"):
        assert f"│ {row} " in output, output[-3000:]
    sweep = user.work / ".raysemble" / "sweeps" / name
    data = json.loads((sweep / "data.json").read_text())
    assert data["task"] == "regression" and data["classes"] == [] and data["rows"] == 442
    state = json.loads((sweep / "postsweep" / "state.json").read_text())
    rows = {r["model"]: r for r in state["rows"]}
    # judged on the held-out rows: errors far below the target's spread (77), R² well above 0
    assert rows["ensemble"]["rmse"] < 70 and rows["ensemble"]["r2"] > 0.2 and rows["ensemble"]["confusion"] is None
    report = (sweep / "report" / "report.md").read_text()
    assert "Predicted vs actual" in report and "Confusion" not in report
    assert (sweep / "report" / "predicted_ensemble.png").is_file()


@pytest.mark.parametrize("model", ["ensemble", "student"])
def test_curl_gets_numbers_and_no_probabilities(served, model):
    _, _, url, _ = served
    done = subprocess.run(["curl", "-s", "-X", "POST", f"{url}/v1/models/{model}/predict", "-H",
                           "Content-Type: application/json", "-d", json.dumps({"instances": ROWS})],
                          capture_output=True, text=True, timeout=60)
    reply = json.loads(done.stdout)
    assert "probabilities" not in reply and len(reply["predictions"]) == 3, reply
    assert all(isinstance(v, float) and 0 < v < 400 for v in reply["predictions"]), reply
    models = json.loads(subprocess.run(["curl", "-s", f"{url}/v1/models"], capture_output=True, text=True,
                                       timeout=60).stdout)["models"]
    assert {m["task"] for m in models} == {"regression"} and all(m["classes"] == [] for m in models)


def test_tritonclient_gets_fp64_predictions_and_member_values(served):
    _, _, url, _ = served
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    meta = client.get_model_metadata("ensemble")
    outputs = {o["name"]: o["datatype"] for o in meta["outputs"]}
    assert outputs == {"predictions": "FP64", "votes": "FP64"}
    tensor = triton.InferInput("input", [3, 10], "FP32")
    tensor.set_data_from_numpy(np.asarray(ROWS, dtype=np.float32), binary_data=True)
    result = client.infer("ensemble", [tensor], outputs=[triton.InferRequestedOutput("predictions", binary_data=True),
                                                         triton.InferRequestedOutput("votes", binary_data=False)])
    values, votes = result.as_numpy("predictions"), result.as_numpy("votes")
    assert values.dtype == np.float64 and values.shape == (3,) and np.isfinite(values).all()
    assert votes.shape[0] == 3 and votes.shape[1] >= 2
    with pytest.raises(Exception, match="probabilities"):  # not an output of a regression model
        client.infer("ensemble", [tensor], outputs=[triton.InferRequestedOutput("probabilities")])


def test_the_registered_pyfunc_answers_numbers_in_a_fresh_process(served):
    user, _, _, name = served
    script = ("import sys, json, mlflow, numpy as np\n"
              "m = mlflow.pyfunc.load_model(sys.argv[1])\n"
              "print(json.dumps([float(v) for v in m.predict(np.asarray(json.loads(sys.argv[2]), dtype=np.float32))]))\n")
    env = {**user.env, "MLFLOW_TRACKING_URI": f"sqlite:///{user.work}/.raysemble/mlflow.db"}
    for kind in ("ensemble", "student"):
        done = subprocess.run([sys.executable, "-c", script, f"models:/{name}-{kind}/1", json.dumps(ROWS)],
                              cwd=user.work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        values = json.loads(done.stdout.strip().splitlines()[-1])
        assert len(values) == 3 and all(0 < v < 400 for v in values)
