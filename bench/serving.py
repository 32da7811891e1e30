"""Serving throughput and latency: raysemble on Ray Serve vs `mlflow models serve`, same model, same inputs.

One run measures, at 1 and 32 concurrent clients, one digits row per request:
  in-process   EnsemblePredictor.predict_proba in this process (the floor: no HTTP at all;
               at 32 clients, one 32-row call stands for 32 perfectly batched requests)
  raysemble    POST /v1/models/ensemble/predict and /v1/models/student/predict (Ray Serve app,
               serving.app.serve_models with the default config)
  mlflow       POST /invocations of `mlflow models serve --env-manager local` of the same
               registered ensemble (serving.mlflow_model's pyfunc), asking for probabilities
The load generator is wrk when installed (apt-get install wrk), else serving.loadgen (asyncio
httpx, heavier on the CPU it shares with the servers). Loopback only. Run:

    .venv/bin/python bench/serving.py [--ensemble DIR|models:/NAME/VER --student ...] [--duration 15]

Without --ensemble it trains a 5-member demo ensemble (serving.demo) and registers it in a
temporary SQLite MLflow registry.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# run as a script, bench/ would come first on sys.path and this file would shadow the serving package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

WRK_SCRIPT = r"""
local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, wrk.path, nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"errors": %d}\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def measure_http(url: str, bodies: list[str], clients: int, duration_s: float, workdir: Path) -> dict:
    if shutil.which("wrk"):
        (workdir / "bodies.txt").write_text("\n".join(bodies) + "\n")
        (workdir / "post.lua").write_text(WRK_SCRIPT)
        out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(duration_s))}s", "--timeout", "10s",
                              "-s", str(workdir / "post.lua"), url],
                             env={**os.environ, "WRK_BODIES": str(workdir / "bodies.txt")},
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.split("WRKJSON ", 1)[1])
        return {"rps": r["requests"] / r["duration_us"] * 1e6, "p50": r["p50_us"] / 1e3, "p99": r["p99_us"] / 1e3,
                "errors": r["errors"]}
    from serving.loadgen import load

    r = load(url, [b.encode() for b in bodies], clients, duration_s)
    return {"rps": r.rate(), "p50": r.percentile_ms(50), "p99": r.percentile_ms(99),
            "errors": r.requests - r.statuses.get(200, 0)}


def measure_in_process(source: str, x: np.ndarray, clients: int, duration_s: float) -> dict:
    from serving.loader import load_predictor, parse_source

    predictor, _ = load_predictor(parse_source(source))
    lat, start, i = [], time.perf_counter(), 0
    while time.perf_counter() - start < duration_s:
        first = (i * clients) % (len(x) - clients)
        t0 = time.perf_counter()
        predictor.predict_proba(x[first:first + clients])
        lat.append(time.perf_counter() - t0)
        i += 1
    elapsed = time.perf_counter() - start
    return {"rps": len(lat) * clients / elapsed, "p50": float(np.percentile(lat, 50) * 1e3),
            "p99": float(np.percentile(lat, 99) * 1e3), "errors": 0}


def wait_http(url: str, timeout_s: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} answering 200 within {timeout_s}s expected, but it did not")


def check(url: str, body: str, key: str) -> None:
    import httpx

    r = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
    if r.status_code != 200 or key not in r.json():
        raise RuntimeError(f"{url}: 200 with {key!r} expected, but got {r.status_code} {r.text[:300]}")


def start_mlflow(model_uri: str, port: int, tracking_uri: str, log: Path) -> subprocess.Popen:
    venv_bin = str(Path(sys.executable).parent)  # mlflow execs `uvicorn` from PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager",
                             "local", "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping")
    except RuntimeError:
        stop(proc)
        raise RuntimeError(f"mlflow models serve did not start; see {log}") from None
    return proc


def stop(proc: subprocess.Popen) -> None:
    """Ends the process group this script started (mlflow and its uvicorn child)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def register_demo(workdir: Path, x: np.ndarray) -> tuple[str, str, str]:
    """(ensemble URI, student URI, tracking URI) of a fresh 5-member demo ensemble."""
    import mlflow

    from serving.demo import make_bundles
    from serving.mlflow_model import log_and_register

    ens_dir, stu_dir = make_bundles(workdir / "bundles", members=5, epochs=5, hidden=64)
    tracking = f"sqlite:///{workdir}/mlflow.db"
    mlflow.set_tracking_uri(tracking)
    name, version = log_and_register(ens_dir, "bench-ensemble", input_example=x[:2])
    s_name, s_version = log_and_register(stu_dir, "bench-student", input_example=x[:2])
    return f"models:/{name}/{version}", f"models:/{s_name}/{s_version}", tracking


def table(rows: list[tuple[str, int, dict]]) -> str:
    mlflow = {c: r for name, c, r in rows if name.startswith("mlflow")}
    lines = [f"{'target':32} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
             f"{'req/s/mlflow':>12} {'p50/mlflow':>10} {'p99/mlflow':>10}"]
    for name, clients, r in rows:
        base = mlflow.get(clients)

        def ratio(key: str) -> str:
            return f"{r[key] / base[key]:.2f}x" if base and base[key] and not name.startswith("in-process") else "-"

        lines.append(f"{name:32} {clients:>7} {r['rps']:>8.0f} {r['p50']:>8.2f} {r['p99']:>8.1f} {r['errors']:>6} "
                     f"{ratio('rps'):>12} {ratio('p50'):>10} {ratio('p99'):>10}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ensemble", help="bundle dir or models:/NAME/VERSION (default: a registered demo ensemble)")
    ap.add_argument("--student", help="bundle dir or models:/NAME/VERSION")
    ap.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ sources (default: $MLFLOW_TRACKING_URI)")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    ap.add_argument("--clients", default="1,32")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--port", type=int, default=0, help="raysemble port (default: a free one)")
    ap.add_argument("--ingress", choices=["haproxy", "proxy"], default="haproxy",
                    help="Serve's HTTP ingress (ServeConfig.ingress): proxy measures Ray's Python proxy instead")
    args = ap.parse_args()

    from serving.cluster import free_port
    from serving.demo import digits

    x = digits()[0]
    clients = [int(c) for c in args.clients.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="rsbench-"))
    body_rows = [json.dumps({"instances": [row.tolist()]}) for row in x[:256]]
    if args.ensemble:
        ensemble, student = args.ensemble, args.student
        tracking = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    else:
        print("training and registering a 5-member demo ensemble ...", flush=True)
        ensemble, student, tracking = register_demo(workdir, x)
    if tracking:
        os.environ["MLFLOW_TRACKING_URI"] = tracking
    rows: list[tuple[str, int, dict]] = []
    notes = []
    try:
        for c in clients:
            rows.append(("in-process predictor (floor)", c, measure_in_process(ensemble, x, c, args.duration)))

        if args.skip_mlflow or not ensemble.startswith("models:/"):
            notes.append("mlflow models serve: skipped (needs a registered models:/ ensemble)"
                         if not args.skip_mlflow else "mlflow models serve: skipped (--skip-mlflow)")
        else:
            port = free_port()
            print(f"starting mlflow models serve on {port} ...", flush=True)
            proc = start_mlflow(ensemble, port, tracking, workdir / "mlflow.log")
            try:
                url = f"http://127.0.0.1:{port}/invocations"
                mlflow_bodies = [json.dumps({"instances": [row.tolist()], "params": {"output": "proba"}})
                                 for row in x[:256]]
                check(url, mlflow_bodies[0], "predictions")
                measure_http(url, mlflow_bodies, 4, 3, workdir)  # warm-up
                for c in clients:
                    rows.append(("mlflow models serve (ensemble)", c,
                                 measure_http(url, mlflow_bodies, c, args.duration, workdir)))
            finally:
                stop(proc)

        import ray
        from ray import serve

        from serving.app import serve_models
        from serving.cluster import start_ray
        from serving.config import ServeConfig

        print("starting the raysemble Serve app ...", flush=True)
        cfg = ServeConfig(port=args.port or free_port(), ingress=args.ingress)
        hap = tempfile.mkdtemp(prefix="rshap-", dir="/tmp")  # short: HAProxy's unix sockets live here
        start_ray(cfg, haproxy_dir=hap)  # what serve_models does, with HAProxy's files kept out of /tmp/haproxy-serve
        url = serve_models(ensemble, student, cfg)
        try:
            wait_http(url + "/v2/health/ready")
            for name in ["ensemble"] + (["student"] if student else []):
                target = f"{url}/v1/models/{name}/predict"
                check(target, body_rows[0], "probabilities")
                measure_http(target, body_rows, 4, 3, workdir)  # warm-up
                for c in clients:
                    rows.append((f"raysemble {name}" + (" (Ray proxy)" if args.ingress == "proxy" else ""), c, measure_http(target, body_rows, c, args.duration, workdir)))
        finally:
            serve.shutdown()
            ray.shutdown()
            shutil.rmtree(hap, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rows.sort(key=lambda r: (r[1], r[0]))
    print()
    print(table(rows))
    for note in notes:
        print(note)
    print(f"load generator: {'wrk' if shutil.which('wrk') else 'serving.loadgen (httpx)'}, "
          f"{args.duration:.0f} s per row, one digits row per request, loopback")


if __name__ == "__main__":
    main()
