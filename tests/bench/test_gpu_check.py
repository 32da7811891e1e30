"""bench/gpu_check.py where there is no GPU: it skips cleanly; its IDX reader and every step run on the CPU."""
import gzip
import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.py"


def _bench():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args, timeout=300):
    # no GPU even on a machine with one: the skip path is what this file tests
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


def _idx(path: Path, array: np.ndarray, gz: bool) -> None:
    blob = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(blob) if gz else blob)


def _fashion(directory: Path, train: int, test: int) -> None:
    rng = np.random.default_rng(0)
    for prefix, n, gz in (("train", train, True), ("t10k", test, False)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        # a class-dependent bright row, so the families have something to learn
        images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
        images[np.arange(n), 2 + 2 * labels, :] = 250
        suffix = ".gz" if gz else ""
        _idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        _idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)


def test_without_a_gpu_it_skips_with_exit_status_0(tmp_path):
    result = _run("--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.json"), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "skipped: no CUDA GPU (torch sees none)"
    assert json.loads((tmp_path / "r.json").read_text()) == {"skipped": "skipped: no CUDA GPU (torch sees none)"}


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_round_trips_and_names_a_bad_file(tmp_path, gz):
    bench = _bench()
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _idx(tmp_path / "a-idx3-ubyte", array, gz)
    assert np.array_equal(bench.read_idx(tmp_path / "a-idx3-ubyte"), array)
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 3, 4) + array.tobytes()[:-1])
    with pytest.raises(ValueError, match=r"short: 24 values for shape \(2, 3, 4\) expected, but got 23"):
        bench.read_idx(tmp_path / "short")
    (tmp_path / "floats").write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00" * 4)
    with pytest.raises(ValueError, match="floats: an IDX file of unsigned bytes"):
        bench.read_idx(tmp_path / "floats")


def test_cpu_dry_run_runs_every_step(tmp_path):
    """The GPU steps, on the CPU on tiny data: a bug in the script shows here, not on borrowed GPU time."""
    _fashion(tmp_path, train=300, test=100)
    result = _run("--device", "cpu", "--data", str(tmp_path), "--epochs", "2", "--members", "2", "--no-ray",
                  "--out", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert [r["name"] for r in report["train"]] == ["cnn", "resnet", "cnn seed 1", "mlp"]
    for row in report["train"]:
        assert row["samples_per_s"] > 0 and 0 <= row["test_accuracy"] <= 1 and row["rows_on"] == "cpu"
    assert report["train"][-1]["channels_last"] is None  # an mlp has no convolution whose layout to report
    assert report["ensemble"]["members"] == 4 and report["ensemble"]["groups"] == 3  # two cnn seeds vmapped
    assert report["train"][0]["test_accuracy"] > 0.3  # the bright row is easy: the loop did learn
    assert 0 <= report["student"]["test_accuracy"] <= 1 and report["student"]["batch1_p50_ms"] > 0
    assert report["ray"] == {"status": "skipped", "reason": "--no-ray"}
    assert "ensemble: 4 members in 3 vmapped groups" in result.stdout
