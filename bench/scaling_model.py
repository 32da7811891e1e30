"""docs/scaling.md's model of sweep wall time and cost against the number of GPU nodes, as a table.

    .venv/bin/python bench/scaling_model.py [--trials 32 --epochs 30 --epoch-s 5 --node-s 180 ...]

Defaults: the inputs measured on this project's machines (bench/sweep_overhead.py, bench/fashion_mnist.py)
and, where nothing could be measured here (no cloud, no GPU), the assumptions docs/scaling.md names.
"""
from __future__ import annotations

import argparse
import math

MEASURED_TRAIN_START_S = 22.9  # ray_train: trial process -> worker running, median (bench/sweep_overhead.py)
MEASURED_BOOK_S = 1.3  # per trial: (in_trial wall - plain loop wall) / waves, same bench
MEASURED_POST_S = 433.0  # Fashion-MNIST CPU preset: ensemble + distillation + judgement (bench/fashion_mnist.py)


def sweep_seconds(n: int, epochs: int, epoch_s: float, nodes: int, per_node: int, max_concurrent: int | None,
                  node_s: float, start_s: float, book_s: float, post_s: float) -> float:
    lanes = min(nodes * per_node, max_concurrent or nodes * per_node)
    waves = math.ceil(n / lanes)
    return node_s + waves * (start_s + epochs * epoch_s + book_s) + post_s


def cost(seconds: float, nodes: int, post_s: float, idle_s: float, gpu_per_h: float, head_per_h: float) -> float:
    return nodes * gpu_per_h * (seconds - post_s + idle_s) / 3600 + head_per_h * seconds / 3600


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=32)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--epoch-s", type=float, default=5.0, help="one trial-epoch (all k folds) on one GPU (assumed)")
    p.add_argument("--node-s", type=float, default=180.0, help="GPU node boot + setup + ray start (assumed)")
    p.add_argument("--per-node", type=int, default=1, help="trials one node runs at once")
    p.add_argument("--idle-s", type=float, default=600.0, help="idle_timeout_minutes of cluster.yaml, in s")
    p.add_argument("--gpu-per-h", type=float, default=1.006, help="g5.xlarge on-demand list price, $/h (assumed)")
    p.add_argument("--head-per-h", type=float, default=0.384, help="m5.2xlarge on-demand list price, $/h (assumed)")
    p.add_argument("--nodes", default="1,2,4,8,16,32")
    a = p.parse_args()
    print("| GPU nodes | waves | wall in_trial | wall ray_train | cost in_trial | cost ray_train |")
    print("|---|---|---|---|---|---|")
    for nodes in [int(v) for v in a.nodes.split(",")]:
        row = []
        for start in (0.0, MEASURED_TRAIN_START_S):
            s = sweep_seconds(a.trials, a.epochs, a.epoch_s, nodes, a.per_node, None, a.node_s, start,
                              MEASURED_BOOK_S, MEASURED_POST_S)
            row.append((s, cost(s, nodes, MEASURED_POST_S, a.idle_s, a.gpu_per_h, a.head_per_h)))
        waves = math.ceil(a.trials / (nodes * a.per_node))
        print(f"| {nodes} | {waves} | {row[0][0] / 60:.1f} min | {row[1][0] / 60:.1f} min | ${row[0][1]:.2f} | "
              f"${row[1][1]:.2f} |")


if __name__ == "__main__":
    main()
