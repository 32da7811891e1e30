"""A raw table end to end, as a newcomer runs the README's table example (examples/penguins.yaml, a
trimmed copy for the suite's time): `raysemble run` through the installed console script on the CSV
as it ships (words, missing values, a word target with gaps), a mixed-family sweep, ensemble, student,
judgement, registry, served; then curl with records and tritonclient with one input per column (BYTES
and FP64) get the user's labels from ensemble and student, and the registered pyfunc model answers a
DataFrame in a fresh process."""
from __future__ import annotations

import functools
import json
import subprocess
import sys

import numpy as np
import pytest
import tritonclient.http as triton

from tests.service.test_front_door import served_example, trimmed

FAMILIES = ("lightgbm", "xgboost", "mlp")  # the boosting libraries' native categories, a network's one-hot
LABELS = {"female", "male"}
GENTOO = {"species": "Gentoo", "island": "Biscoe", "bill_length_mm": 47.5, "bill_depth_mm": 15.0,
          "flipper_length_mm": 218, "body_mass_g": 4950, "year": 2008}
SPARSE = {"species": "Adelie", "island": "Dream", "body_mass_g": None}  # most columns missing


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_example(tmp_path_factory.mktemp("table-user"), "penguins.yaml",
                        functools.partial(trimmed, families=FAMILIES)) as served:
        yield served


def test_the_sweep_recorded_the_table_it_read(served):
    user, running, _, name = served
    data = json.loads((user.work / ".raysemble" / "sweeps" / name / "data.json").read_text())
    assert data["rows"] == 333 and data["rows_without_target_dropped"] == 11 and data["classes"] == ["female", "male"]
    kinds = {c["name"]: c["kind"] for c in data["schema"]["columns"]}
    assert kinds["species"] == kinds["island"] == "categorical" and kinds["bill_length_mm"] == "numeric"
    report = (user.work / ".raysemble" / "sweeps" / name / "report" / "report.md").read_text()
    assert "female" in report and "male" in report
    output = running.output()
    for row in ("single", "ensemble", "student", *(f"best_{f}" for f in FAMILIES)):
        assert f"│ {row} " in output, output[-3000:]


@pytest.mark.parametrize("model", ["ensemble", "student"])
def test_curl_with_records_gets_the_users_labels(served, model):
    _, _, url, _ = served
    body = json.dumps({"instances": [GENTOO, SPARSE, {}]})
    done = subprocess.run(["curl", "-s", "-X", "POST", f"{url}/v1/models/{model}/predict", "-H",
                           "Content-Type: application/json", "-d", body], capture_output=True, text=True, timeout=60)
    reply = json.loads(done.stdout)
    assert set(reply["predictions"]) <= LABELS and len(reply["probabilities"]) == 3, reply
    bad = subprocess.run(["curl", "-s", "-X", "POST", f"{url}/v1/models/{model}/predict", "-H",
                          "Content-Type: application/json", "-d", json.dumps({"instances": [{"body_mass_g": "heavy"}]})],
                         capture_output=True, text=True, timeout=60)
    assert json.loads(bad.stdout)["field"] == "instances[0].body_mass_g"


@pytest.mark.parametrize("model", ["ensemble", "student"])
def test_tritonclient_sends_one_input_per_column(served, model):
    _, _, url, _ = served
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    meta = client.get_model_metadata(model)
    assert {(i["name"], i["datatype"]) for i in meta["inputs"]} >= {("species", "BYTES"), ("body_mass_g", "FP64")}
    inputs = []
    for name, kind in (("species", "BYTES"), ("island", "BYTES"), ("bill_length_mm", "FP64"),
                       ("flipper_length_mm", "FP64"), ("body_mass_g", "FP64")):
        tensor = triton.InferInput(name, [2], kind)
        values = [GENTOO[name], SPARSE.get(name)]
        if kind == "BYTES":
            tensor.set_data_from_numpy(np.array([v.encode() for v in values], dtype=object))
        else:
            tensor.set_data_from_numpy(np.array([np.nan if v is None else v for v in values], dtype=np.float64))
        inputs.append(tensor)
    result = client.infer(model, inputs, outputs=[triton.InferRequestedOutput("predictions")])
    labels = {v.decode() for v in result.as_numpy("predictions").reshape(-1)}
    assert labels <= LABELS


def test_the_registered_pyfunc_answers_a_dataframe_in_a_fresh_process(served):
    user, _, _, name = served
    script = ("import sys, json, mlflow, pandas as pd\n"
              "m = mlflow.pyfunc.load_model(sys.argv[1])\n"
              "frame = pd.DataFrame(json.loads(sys.argv[2]))\n"
              "print(json.dumps({'labels': [str(v) for v in m.predict(frame)],\n"
              "                  'proba': m.predict(frame, params={'output': 'proba'}).tolist()}))\n")
    env = {**user.env, "MLFLOW_TRACKING_URI": f"sqlite:///{user.work}/.raysemble/mlflow.db"}
    for kind in ("ensemble", "student"):
        done = subprocess.run([sys.executable, "-c", script, f"models:/{name}-{kind}/1", json.dumps([GENTOO, SPARSE])],
                              cwd=user.work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert set(out["labels"]) <= LABELS and np.allclose(np.sum(out["proba"], 1), 1.0)
