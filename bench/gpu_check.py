"""GPU check: the image families on Fashion-MNIST on CUDA, without Ray, then one Ray Train trial.

One command:

    .venv/bin/python bench/gpu_check.py [--data /usr/share/datasets/fashion-mnist] [--epochs 5] [--out gpu.json]

Without a CUDA GPU it prints "skipped: no CUDA GPU (torch sees none)" and exits 0. With one it:
  1. trains the cnn, resnet and mlp families with the plain loop (trainers.loop.FoldTrainer: bf16
     autocast, channels_last, rows resident on the GPU; the cnn once more with its rows in pinned
     host memory, the path large sets take), reporting samples/s, peak GPU memory and test accuracy;
  2. builds an EnsemblePredictor (the cnn of a few seeds, vmapped as one group, and the resnet)
     through a saved bundle, and times it on the test set and at batch 1;
  3. distils a cnn student from it (trainers.distill.distill) and reports its accuracy and latency;
  4. if `import ray` works, runs one sweep trial on the ray_train executor with gpus_per_worker: 1
     (service.sweep.run_sweep on a tiny spec over a subset saved as NPZ); a failure there is
     reported, not raised.
It prints a table, and writes the numbers as JSON to --out. `--device cpu` runs the same steps on
the CPU (a dry run of the script itself on small data, for machines without a GPU; its Ray trial
asks for no GPU, and there is no pinned-memory run).
"""
from __future__ import annotations

import argparse
import copy
import gzip
import json
import math
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# run as a script, bench/ would come first on sys.path and bench/serving.py would shadow the serving package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SKIP = "skipped: no CUDA GPU (torch sees none)"
IMAGE_SHAPE = (1, 28, 28)
FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST format), gzipped or not; kept apart from trainers.data on purpose."""
    raw = path.read_bytes()
    raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path.name}: an IDX file of unsigned bytes (magic 0x0000 08) expected, but got another header")
    dims = raw[3]
    shape = struct.unpack(f">{dims}I", raw[4:4 + 4 * dims])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * dims)
    if data.size != math.prod(shape):
        raise ValueError(f"{path.name}: {math.prod(shape)} values for shape {shape} expected, but got {data.size}")
    return data.reshape(shape)


def load_fashion_mnist(directory: Path) -> dict[str, np.ndarray]:
    out = {}
    for key, stem in FILES.items():
        found = [p for p in (directory / stem, directory / f"{stem}.gz") if p.is_file()]
        if not found:
            raise FileNotFoundError(f"--data: {stem}[.gz] expected in {directory}, but got none")
        array = read_idx(found[0])
        # rows flat, as every source delivers them; raw 0..255 values (each model standardises its input)
        out[key] = array.reshape(len(array), -1).astype(np.float32) if key.startswith("x") else array.astype(np.int64)
    return out


# ---- timing helpers --------------------------------------------------------------------------------

def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def p50_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


# ---- the steps ------------------------------------------------------------------------------------

def train(name: str, family: str, options: dict, train_knobs: dict, data: dict, device, seed: int = 0,
          pinned: bool = False) -> tuple[dict, object, object]:
    """One FoldTrainer on all training rows; returns (its row of the table, the model on the CPU, its config)."""
    import torch

    import trainers.loop as loop
    from trainers.families import get_family
    from trainers.loop import FoldTrainer
    from trainers.families.config import ModelConfig

    base = ModelConfig(family=family, in_features=data["x_train"].shape[1], n_classes=10, image_shape=IMAGE_SHAPE)
    model_cfg, fit_cfg = get_family(family).split({**options, **train_knobs}, base)
    reset_peak(device)
    share = loop.RESIDENT_SHARE
    loop.RESIDENT_SHARE = 0.0 if pinned else share  # no room on the GPU: the rows wait in pinned host memory
    try:
        trainer = FoldTrainer(model_cfg, fit_cfg, data["x_train"], data["y_train"], seed, device)
    finally:
        loop.RESIDENT_SHARE = share
    epoch_s = []
    for _ in range(trainer.rounds):
        sync(device)
        start = time.perf_counter()
        loss = trainer.advance()
        sync(device)
        epoch_s.append(time.perf_counter() - start)
    start = time.perf_counter()
    proba = trainer.predict_proba(data["x_test"])
    predict_s = time.perf_counter() - start
    rows = len(data["x_train"])
    steady = epoch_s[1:] or epoch_s  # the first epoch includes cuDNN's and the allocator's warm-up
    # the last conv: a first conv over one channel is contiguous in both layouts
    convs = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)]
    row = {"name": name, "family": family, "params": model_cfg.parameter_count(), "epochs": trainer.rounds,
           "rows_on": str(trainer.store), "pinned": bool(trainer.x.is_pinned()) if device.type == "cuda" else False,
           "channels_last": None if not convs  # an mlp has no layout to choose
           else convs[-1].weight.is_contiguous(memory_format=torch.channels_last)
           and not convs[-1].weight.is_contiguous(),
           "first_epoch_s": epoch_s[0], "samples_per_s": rows / float(np.median(steady)),
           "peak_mib": peak_mib(device), "final_loss": loss,
           "test_accuracy": float((proba.argmax(1) == data["y_test"]).mean()),
           "predict_rows_per_s": len(data["x_test"]) / predict_s}
    model, model_cfg = trainer.model.cpu(), trainer.model_cfg
    del trainer  # its rows and optimizer state leave the GPU: the next run's peak is its own
    return row, model, model_cfg


def ensemble_and_student(members: list, data: dict, device, epochs: int, workdir: Path) -> dict:
    from trainers.config import DistillConfig, StudentConfig
    from trainers.distill import distill, student_model_config
    from trainers.ensemble.predictor import EnsemblePredictor

    # through a bundle on disk, as serving loads it (the members were trained channels_last on CUDA)
    models, configs = [m for m, _ in members], [c for _, c in members]
    EnsemblePredictor(models, configs).save(workdir / "bundle")
    # the predictor runs PREDICT_CHUNK_ROWS rows per forward itself, so 60k rows fit
    teacher = predictor = EnsemblePredictor.load(workdir / "bundle", device=device)
    x_test, y_test = data["x_test"], data["y_test"]
    teacher.predict_proba(x_test[:64])  # warm-up
    sync(device)
    start = time.perf_counter()
    proba = teacher.predict_proba(x_test)
    sync(device)
    ensemble_s = time.perf_counter() - start
    out = {"ensemble": {"members": len(models), "groups": len(predictor._groups),
                        "test_accuracy": float((proba.argmax(1) == y_test).mean()),
                        "rows_per_s": len(x_test) / ensemble_s,
                        "batch1_p50_ms": p50_ms(lambda: predictor.predict_proba(x_test[:1]), 50)}}
    cfg = DistillConfig(student=StudentConfig(family="cnn", channels=8, hidden=64), epochs=epochs,
                        batch_size=256, lr=3e-3)
    student_cfg = student_model_config(cfg.student, configs[0])
    reset_peak(device)
    start = time.perf_counter()
    student, losses = distill(cfg, student_cfg, data["x_train"], data["y_train"], teacher, seed=0, device=device)
    distill_s = time.perf_counter() - start
    student_predictor = EnsemblePredictor([student], [student_cfg], kind="student", device=device)
    s_proba = student_predictor.predict_proba(x_test)
    # a predictor moves its lone member to its device: the CPU one gets its own copy
    cpu_student = EnsemblePredictor([copy.deepcopy(student).cpu()], [student_cfg], kind="student")
    out["student"] = {"params": student_cfg.parameter_count(), "epochs": cfg.epochs, "distill_s": distill_s,
                      "final_loss": losses[-1], "peak_mib": peak_mib(device),
                      "test_accuracy": float((s_proba.argmax(1) == y_test).mean()),
                      "batch1_p50_ms": p50_ms(lambda: student_predictor.predict_proba(x_test[:1]), 50),
                      "batch1_p50_ms_cpu": p50_ms(lambda: cpu_student.predict_proba(x_test[:1]), 50)}
    return out


def ray_trial(data: dict, epochs: int, rows: int, workdir: Path, gpus: int = 1) -> dict:
    """One trial of a tiny sweep on the ray_train executor with `gpus` GPUs per worker."""
    try:
        import ray
    except ImportError as err:
        return {"status": "skipped", "reason": f"ray is not importable ({err})"}
    os.environ["RAYSEMBLE_HOME"] = str(workdir / "home")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir}/mlflow.db"
    from service.progress import Silent
    from service.spec import parse_spec
    from service.sweep import run_sweep

    subset = workdir / "fashion-subset.npz"
    np.savez(subset, X=data["x_train"][:rows], target=data["y_train"][:rows])
    spec = {"name": f"gpu-check-{int(time.time())}",
            "data": {"source": str(subset), "image_shape": list(IMAGE_SHAPE), "test_fraction": 0.2},
            "model": {"family": "cnn"}, "cv": {"folds": 2, "seed": 0},
            "search": {"algorithm": "random", "num_trials": 1, "max_concurrent": 1,
                       "space": {"lr": {"loguniform": [0.002, 0.004]}},
                       "fixed": {"epochs": epochs, "batch_size": 256, "channels": 16, "hidden": 64,
                                 "crop_padding": 2, "hflip": True}},
            "resources": {"workers_per_trial": 1, "cpus_per_worker": 1, "gpus_per_worker": gpus,
                          "executor": "ray_train"}}
    start = time.perf_counter()
    try:
        ray.init(address="local", num_cpus=min(4, os.cpu_count() or 1), num_gpus=gpus, include_dashboard=False,
                 log_to_driver=False)
        try:
            sweep = run_sweep(parse_spec(spec), Silent())
        finally:
            ray.shutdown()
    except Exception as err:  # a report, not a traceback: the in-process checks above stand
        return {"status": "failed", "error": f"{type(err).__name__}: {str(err)[:500]}",
                "wall_s": time.perf_counter() - start}
    trials = sweep.trials
    if not trials or trials[0].status != "TERMINATED":
        error = trials[0].error if trials else "no trial ran"
        return {"status": "failed", "error": str(error)[:500], "wall_s": time.perf_counter() - start}
    return {"status": "ok", "gpus_per_worker": gpus, "wall_s": time.perf_counter() - start, "rows": rows, "folds": 2,
            "cv_accuracy": trials[0].mean_score, "fold_scores": trials[0].fold_scores}


# ---- output ---------------------------------------------------------------------------------------

def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def table(report: dict) -> str:
    cols = ["name", "params", "epochs", "rows_on", "channels_last", "samples_per_s", "first_epoch_s", "peak_mib",
            "test_accuracy"]
    lines = [" | ".join(cols)]
    lines += [" | ".join(_fmt(r.get(c)) for c in cols) for r in report["train"]]
    e, s = report.get("ensemble"), report.get("student")
    if e:
        lines.append(f"ensemble: {e['members']} members in {e['groups']} vmapped groups, test accuracy "
                     f"{e['test_accuracy']:.4f}, {_fmt(e['rows_per_s'])} rows/s, batch-1 p50 {e['batch1_p50_ms']:.3f} ms")
    if s:
        lines.append(f"student (cnn, {s['params']} params): test accuracy {s['test_accuracy']:.4f}, distilled in "
                     f"{s['distill_s']:.1f} s, batch-1 p50 {s['batch1_p50_ms']:.3f} ms on {report['device']}, "
                     f"{s['batch1_p50_ms_cpu']:.3f} ms on CPU")
    ray = report.get("ray")
    if ray:
        detail = {k: v for k, v in ray.items() if k != "status"}
        lines.append(f"ray_train trial: {ray['status']} {json.dumps(detail, default=str)}")
    return "\n".join(lines)


def write_json(path: str | None, report: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=1, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="directory of the 4 IDX files")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each family, the student and the Ray trial")
    parser.add_argument("--out", default=None, help="write the report as JSON here")
    parser.add_argument("--members", type=int, default=3, help="cnn seeds in the ensemble (plus the resnet)")
    parser.add_argument("--train-rows", type=int, default=0, help="use the first N training rows (0: all)")
    parser.add_argument("--test-rows", type=int, default=0, help="use the first N test rows (0: all)")
    parser.add_argument("--ray-rows", type=int, default=6000, help="training rows of the Ray trial's subset")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Train trial")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu: a dry run of this script on the CPU (use small --train-rows)")
    args = parser.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(SKIP, flush=True)
        write_json(args.out, {"skipped": SKIP})
        return 0
    device = torch.device(args.device)
    data = load_fashion_mnist(Path(args.data))
    for split, n in (("train", args.train_rows), ("test", args.test_rows)):
        if n:
            data[f"x_{split}"], data[f"y_{split}"] = data[f"x_{split}"][:n], data[f"y_{split}"][:n]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report: dict = {"device": name, "torch": torch.__version__, "train_rows": len(data["x_train"]),
                    "test_rows": len(data["x_test"]), "train": []}
    print(f"{name}: torch {torch.__version__}, {len(data['x_train'])} training rows, {len(data['x_test'])} test rows",
          flush=True)

    knobs = {"epochs": args.epochs, "batch_size": 256, "lr": 3e-3, "crop_padding": 2, "hflip": True,
             "weight_decay": 5e-4}
    cnn = {"channels": 32, "hidden": 128}
    resnet = {"width": 16, "depth": 2, "stages": 3}
    runs = [("cnn", "cnn", cnn, 0, False), ("cnn, rows pinned on host", "cnn", cnn, 0, True),
            ("resnet", "resnet", resnet, 0, False)]
    runs += [(f"cnn seed {s}", "cnn", cnn, s, False) for s in range(1, args.members)]
    # the tabular families' net on the same pixels as flat features: its loop path on CUDA, the mlp member group
    runs.append(("mlp", "mlp", {"hidden": 512, "depth": 2}, 0, False))
    members = []
    for label, family, options, seed, pinned in runs:
        if pinned and device.type != "cuda":
            continue  # pinned memory needs a GPU
        row, model, model_cfg = train(label, family, options, knobs, data, device, seed, pinned)
        report["train"].append(row)
        print(f"  {label}: {_fmt(row['samples_per_s'])} samples/s, test accuracy {row['test_accuracy']:.4f}",
              flush=True)
        if not pinned:
            members.append((model, model_cfg))
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        report.update(ensemble_and_student(members, data, device, args.epochs, Path(tmp)))
        if args.no_ray:
            report["ray"] = {"status": "skipped", "reason": "--no-ray"}
        else:  # the CPU dry run checks the same sweep with gpus_per_worker: 0
            report["ray"] = ray_trial(data, args.epochs, min(args.ray_rows, len(data["x_train"])), Path(tmp),
                                      gpus=1 if device.type == "cuda" else 0)
    print(table(report), flush=True)
    write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
