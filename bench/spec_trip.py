"""The spec's trip through `raysemble run`: which modules it passes through, and which calls go back up.

Runs `raysemble run SPEC --no-serve` in this process (a tiny digits sweep by default: 2 trials, 2 epochs,
a student) under a profile hook, and reports for the driver process:

- modules: raysemble modules with a function that received the spec (a SweepSpec argument, or an
  object whose `.spec` is one), in first-seen order;
- spec edges: calls that hand the spec from one module to another (caller module -> callee module),
  counted per distinct pair, and classed two ways:
  - by trip order ("returned to"): the callee module was reached earlier on the trip than the caller
    (a module the spec comes back to, e.g. the schema whose methods every later module calls);
  - by layer: "down" when the caller's module imports the callee's (directly or through others: the
    call follows the import layering), "up" when the callee's module imports the caller's (the call
    runs against the layering: a callback, or an object of a higher layer handed down), "across" when
    neither imports the other;
- spec file reads and writes: how often the sweep's spec.json (under the home) is opened for reading
  and written (opened for writing, or renamed into place); parsed once and written once means one
  write and no read.

    .venv/bin/python bench/spec_trip.py [--spec FILE] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("service", "serving", "trainers")

TINY = {
    "name": "trip", "data": {"source": "sklearn:digits", "image_shape": [1, 8, 8]},
    "cv": {"folds": 2, "seed": 0},
    "search": {"algorithm": "random", "num_trials": 2, "max_concurrent": 2,
               "space": {"lr": {"loguniform": [0.003, 0.01]}}, "fixed": {"epochs": 2, "hidden": 16}},
    "distill": {"enabled": True, "epochs": 2, "student": {"hidden": 8}},
}


def import_graph() -> dict[str, set[str]]:
    """module -> the raysemble modules it imports anywhere (top level or inside a function), closed
    over what those import."""
    import ast

    direct: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = _module(str(path))
            found = set()
            for node in ast.walk(ast.parse(path.read_text())):
                targets = []
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                found |= {t for t in targets if t.split(".")[0] in PACKAGES}
            direct[name] = found
    closed = {}
    for name in direct:
        seen, todo = set(), [name]
        while todo:
            for t in direct.get(todo.pop(), ()):
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        closed[name] = seen
    return closed


def layer(graph: dict[str, set[str]], caller: str, callee: str) -> str:
    if callee in graph.get(caller, ()):
        return "down"
    if caller in graph.get(callee, ()):
        return "up"
    return "across"


def _module(filename: str) -> str | None:
    try:
        rel = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    if rel.parts[0] not in PACKAGES:
        return None
    return ".".join(rel.with_suffix("").parts).removesuffix(".__init__")


class Trip:
    def __init__(self, spec_type: type):
        self.spec_type = spec_type
        self.modules: list[str] = []
        self.edges: dict[tuple[str, str], int] = {}
        self.spec_reads = self.spec_writes = 0
        self.local = threading.local()

    def _carries_spec(self, frame) -> bool:
        code = frame.f_code
        for name in code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]:
            value = frame.f_locals.get(name)
            if isinstance(value, self.spec_type) or isinstance(getattr(value, "spec", None), self.spec_type):
                return True
        return False

    def hook(self, frame, event, arg):
        stack = self.local.__dict__.setdefault("stack", [])
        if event == "call":
            module = _module(frame.f_code.co_filename)
            stack.append(module)
            if module is None:
                return
            if not self._carries_spec(frame):
                return
            below = [m for m in stack[:-1] if m is not None]
            caller = below[-1] if below else None
            if module not in self.modules:
                self.modules.append(module)
            if caller is not None and caller != module:
                self.edges[(caller, module)] = self.edges.get((caller, module), 0) + 1
        elif event == "return" and stack:
            stack.pop()

    def audit(self, event, args):
        # the sweep's own spec.json only: MLflow's log_text writes and copies a temporary file of that
        # name too. write_atomic writes a temporary name, then renames it
        if event == "os.rename" and self._sweeps(args[1]):
            self.spec_writes += 1
        elif event == "open" and self._sweeps(args[0]):
            mode = args[1] or "r"
            if isinstance(mode, str) and any(c in mode for c in "wax+"):
                self.spec_writes += 1
            elif isinstance(mode, int) and mode & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                self.spec_writes += 1
            else:
                self.spec_reads += 1

    def _sweeps(self, path) -> bool:
        from service import sweepdir

        # the sweeps' directories only: MLflow keeps its own copy (an artifact) under the home too
        return (isinstance(path, (str, Path)) and str(path).endswith("/spec.json")
                and str(path).startswith(str(sweepdir.sweeps_root())))

    def back_up(self) -> list[tuple[str, str, int]]:
        order = {m: i for i, m in enumerate(self.modules)}
        return [(a, b, n) for (a, b), n in self.edges.items() if a in order and order[b] < order[a]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, help="a spec file (default: a tiny digits sweep)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    tmp = Path(tempfile.mkdtemp(prefix="spec-trip-"))
    os.environ["RAYSEMBLE_HOME"] = str(tmp / "home")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    spec_path = args.spec or tmp / "trip.json"
    if args.spec is None:
        spec_path.write_text(json.dumps(TINY))
    from service.spec import SweepSpec
    from service.cli import app

    trip = Trip(SweepSpec)
    sys.addaudithook(trip.audit)
    sys.setprofile(trip.hook)
    threading.setprofile(trip.hook)
    try:
        app(["run", str(spec_path), "--no-serve"], standalone_mode=False)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    import ray

    ray.shutdown()
    back = trip.back_up()
    graph = import_graph()
    layers = {f"{a} -> {b}": layer(graph, a, b) for a, b in trip.edges}
    up = [e for e, kind in layers.items() if kind == "up"]
    across = [e for e, kind in layers.items() if kind == "across"]
    result = {"modules": trip.modules, "n_modules": len(trip.modules),
              "edges": [f"{a} -> {b}" for a, b in trip.edges], "back_up": [f"{a} -> {b}" for a, b, _ in back],
              "n_back_up": len(back), "up_a_layer": up, "across": across,
              "spec_json_reads": trip.spec_reads, "spec_json_writes": trip.spec_writes}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"modules the spec passes through ({len(trip.modules)}): {', '.join(trip.modules)}")
        print(f"spec edges ({len(trip.edges)}): " + ", ".join(f"{a} -> {b}" for a, b in trip.edges))
        print(f"returned to, by trip order ({len(back)}): " + ", ".join(f"{a} -> {b} ({n}x)" for a, b, n in back))
        print(f"up a layer, against the imports ({len(up)}): " + ", ".join(up))
        print(f"across, neither imports the other ({len(across)}): " + ", ".join(across))
        print(f"spec.json opened: {trip.spec_writes} for writing, {trip.spec_reads} for reading")
    return 0


if __name__ == "__main__":
    sys.exit(main())
