"""The per-sweep report: Markdown + PNGs in one directory (sweep dir and MLflow artifacts).

Plots use matplotlib's Figure directly (no pyplot): no global backend, no GUI, safe in threads.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from service.judge import JudgeRow, markdown_table, trial_family
from trainers.atomic import write_atomic

if TYPE_CHECKING:
    from service.store import Sweep


def _save(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path.name


def trial_curve(trial, metric: str) -> tuple[list, list] | None:
    """(epochs, mean over folds of val_<metric>) from the trial's curves, or None if it has none.

    Reads TrialRecord.curves() (curves_k.json per fold) or, for older layouts, curves.json."""
    key = f"val_{metric}"
    try:
        folds = [c for c in trial.curves() if key in c]
    except (AttributeError, FileNotFoundError, TypeError):
        path = Path(trial.checkpoint_dir or "") / "curves.json"
        if not path.is_file():
            return None
        raw = json.loads(path.read_text())
        return (raw["epoch"], raw.get(metric) or raw.get(key)) if "epoch" in raw else None
    if not folds:
        return None
    n = min(len(c[key]) for c in folds)
    return folds[0]["epoch"][:n], np.mean([c[key][:n] for c in folds], axis=0).tolist()


def plot_scores(trials, metric: str, chosen: set[str], path: Path) -> str:
    trials = sorted(trials, key=lambda t: t.trial_id)  # Tune numbers trials in the order they start
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    xs = np.arange(1, len(trials) + 1)
    ys = np.array([t.mean_score if t.status == "TERMINATED" else np.nan for t in trials], dtype=float)
    ax.plot(xs, ys, "o", color="tab:blue", label="trial")
    picked = [i for i, t in enumerate(trials) if t.trial_id in chosen]
    ax.plot(xs[picked], ys[picked], "o", mfc="none", mec="tab:red", ms=11, label="ensemble member")
    failed = [i for i, t in enumerate(trials) if t.status != "TERMINATED"]
    if failed:
        ax.plot(xs[failed], np.full(len(failed), np.nanmin(ys) if np.isfinite(ys).any() else 0), "x",
                color="gray", label="failed")
    ax.set_xlabel("trial (in start order)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"mean CV {metric}")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_curves(curves: dict[str, tuple[list, list]], metric: str, path: Path) -> str:
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    for trial_id, (epochs, values) in curves.items():
        ax.plot(epochs, values, lw=1, label=trial_id)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"mean validation {metric} over folds")
    if len(curves) <= 12:
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_losses(losses: list[float], path: Path) -> str:
    fig = Figure(figsize=(5, 3))
    ax = fig.add_subplot()
    ax.plot(np.arange(1, len(losses) + 1), losses)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("distillation loss (train)")
    return _save(fig, path)


def plot_confusion(matrix: list[list[int]], classes: list, title: str, path: Path) -> str:
    m = np.asarray(matrix)
    fig = Figure(figsize=(4.5, 4))
    ax = fig.add_subplot()
    ax.imshow(m, cmap="Blues")
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, [str(c) for c in classes], fontsize=7)
    ax.set_yticks(ticks, [str(c) for c in classes], fontsize=7)
    for (i, j), v in np.ndenumerate(m):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=6,
                    color="white" if v > m.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def draw_regression(axes, actual: np.ndarray, predicted: np.ndarray, title: str) -> None:
    """Predicted against actual (the diagonal is a perfect model) and residuals against predicted (a
    pattern, not noise, is what the model missed), on two matplotlib axes."""
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    left, right = axes
    left.scatter(actual, predicted, s=6, alpha=0.5)
    lo, hi = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    left.plot([lo, hi], [lo, hi], color="gray", lw=1)
    left.set(xlabel="actual", ylabel="predicted", title=title)
    right.scatter(predicted, actual - predicted, s=6, alpha=0.5)
    right.axhline(0, color="gray", lw=1)
    right.set(xlabel="predicted", ylabel="actual - predicted", title="residuals")


def plot_regression(actual: np.ndarray, predicted: list[float], title: str, path: Path) -> str:
    fig = Figure(figsize=(8, 3.6))
    draw_regression(fig.subplots(1, 2), actual, np.asarray(predicted), title)
    return _save(fig, path)


def _trials_table(trials, weights: dict[str, float], families: dict[str, str | None]) -> str:
    lines = ["| trial | family | status | mean CV score | fold scores | ensemble weight | params |",
             "|---|---|---|---|---|---|---|"]
    for t in sorted(trials, key=lambda t: t.trial_id):
        folds = ", ".join(f"{s:.4f}" for s in t.fold_scores)
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in sorted(t.params.items()) if k != "family")  # it has its own column
        w = f"{weights[t.trial_id]:.3f}" if t.trial_id in weights else ""
        lines.append(f"| {t.trial_id} | {families[t.trial_id] or ''} | {t.status} | {t.mean_score:.4f} | {folds} | "
                     f"{w} | {params} |")
    return "\n".join(lines)


def _members_table(info: dict, families: dict[str, str | None]) -> str:
    """The ensemble's trials, in the order they were chosen, each with its family."""
    lines = ["| trial | family | mean CV score | weight | models |", "|---|---|---|---|---|"]
    for t in info.get("trials", []):
        family = t.get("family") or families.get(t["trial_id"]) or ""
        lines.append(f"| {t['trial_id']} | {family} | {t['mean_score']:.4f} | {t['weight']:.3f} | {t['n_members']} |")
    return "\n".join(lines)


def _shape(candidate: dict) -> str:
    return f"{candidate['family']} " + ", ".join(f"{k}={v}" for k, v in candidate["shape"].items())


def _sizing_lines(sizing: dict, fit_rows: int) -> list[str]:
    """The student-size search: its candidates and which one was kept, and why."""
    chosen = sizing["candidates"][sizing["chosen"]]
    metric = sizing.get("metric", "accuracy")
    budget = "" if sizing.get("max_latency_ms") is None else f", latency budget {sizing['max_latency_ms']:g} ms/row"
    lines = [f"Size chosen from {len(sizing['candidates'])} candidates, each distilled on {sizing['transfer_rows']} "
             f"rows of the training split and scored on the other {sizing['validation_rows']} (no test row); "
             f"teacher's validation {metric} {sizing[f'teacher_val_{metric}']:.4f} ({sizing['teacher_score']}), "
             f"margin {sizing['margin']:g}{budget}.", "",
             f"Chosen: **{_shape(chosen)}**: {sizing['reason']}. Then distilled again on all {fit_rows} training rows.",
             "", f"| candidate | parameters | validation {metric} | ms/sample b1 | chosen |", "|---|---|---|---|---|"]
    for i, c in enumerate(sizing["candidates"]):
        lines.append(f"| {_shape(c)} | {c['parameters']} | {c[f'val_{metric}']:.4f} | {c['latency_ms_b1']:.3f} | "
                     f"{'yes' if i == sizing['chosen'] else ''} |")
    return lines + [""]


def _data_lines(data: dict) -> list[str]:
    """What the sweep read: rows, labels, and a table's columns by kind (data.json)."""
    if not data:
        return []
    target = (f"a numeric target ({data['task']})" if data.get("task") == "regression"
              else f"classes {', '.join(f'`{c}`' for c in data['classes'])}")
    lines = ["## Data", "", f"{data['rows']} rows, {target}."]
    if data.get("rows_without_target_dropped"):
        lines.append(f"{data['rows_without_target_dropped']} rows without a target were left out.")
    schema = data.get("schema")
    if schema:
        lines += ["", "| column | kind |", "|---|---|"]
        lines += [f"| {c['name']} | {c['kind']} |" for c in schema["columns"]]
        if schema.get("dropped"):
            lines += ["", "Not a feature: " + ", ".join(f"`{c}`" for c in schema["dropped"])]
        if data.get("id_like"):
            lines += ["", "Different in every row (IDs? `data.drop` leaves them out): "
                      + ", ".join(f"`{c}`" for c in data["id_like"])]
    return lines + [""]


def _confusion_table(matrix: list[list[int]], classes: list) -> str:
    labels = [str(c) for c in classes]
    lines = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {label} | " + " | ".join(str(v) for v in row) + " |" for label, row in zip(labels, matrix)]
    return "\n".join(lines)


def write_report(sweep: "Sweep", rows: list[JudgeRow], out_dir: Path, classes: list, ensemble_info: dict | None = None,
                 distill_info: dict | None = None, registered: dict | None = None,
                 y_test: np.ndarray | None = None) -> Path:
    """Write out_dir/report.md and its PNGs; returns the report's path. y_test: the held-out targets (a
    regression's plots need them)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec, metric = sweep.spec, sweep.spec.search.metric
    weights = {t["trial_id"]: t["weight"] for t in (ensemble_info or {}).get("trials", [])}
    families = {t.trial_id: trial_family(t) for t in sweep.trials}
    parts = [f"# Sweep `{sweep.name}`", "",
             f"Search: {spec.search.algorithm}, metric `{metric}` ({spec.search.mode}), "
             f"{len(sweep.trials)} trials ({len(sweep.ranked())} finished), {spec.cv.describe()}; "
             f"{len(sweep.train_idx)} training rows, {len(sweep.test_idx)} held-out test rows.", "",
             "## Held-out test split", "", markdown_table(rows), ""]
    if registered:
        parts += ["Registered: " + ", ".join(f"`{v['name']}` v{v['version']}" for v in registered.values()), ""]
    parts += _data_lines(sweep.files.data())
    parts += ["## Search", "", f"![score per trial]({plot_scores(sweep.trials, metric, set(weights), out_dir / 'scores.png')})",
              "", _trials_table(sweep.trials, weights, families), ""]
    curves = {t.trial_id: c for t in sweep.ranked() if (c := trial_curve(t, metric)) is not None}
    parts += ["## Learning curves", ""]
    parts += [f"![learning curves]({plot_curves(curves, metric, out_dir / 'curves.png')})" if curves
              else "No per-epoch curves were recorded for these trials.", ""]
    if ensemble_info:
        parts += ["## Ensemble", "", f"selection `{ensemble_info['selection']}`, method `{ensemble_info['method']}`, "
                  f"members `{ensemble_info['members']}` ({ensemble_info['n_members']} models)", "",
                  _members_table(ensemble_info, families), ""]
        if kept := ensemble_info.get("kept_fold_models"):
            parts += [f"The time budget ended before {len(kept)} refit(s) finished: trial(s) {', '.join(kept)} "
                      "serve their fold models.", ""]
        if guard := ensemble_info.get("stacking_guard"):
            parts += [f"Greedy selection or a contender (`ensemble.stacking` / `ensemble.single: if_better`): kept "
                      f"**{guard['kept']}**; {guard['why']}.", ""]
    if distill_info:
        parts += ["## Student", ""]
        if distill_info.get("sizing"):
            parts += _sizing_lines(distill_info["sizing"], len(sweep.train_idx))
        parts += [f"```\n{json.dumps(distill_info.get('config', {}), indent=1)}\n```", ""]
        if distill_info.get("losses"):
            parts += [f"![distillation loss]({plot_losses(distill_info['losses'], out_dir / 'student_loss.png')})", ""]
    regression = [r for r in rows if r.predicted is not None]
    if regression and y_test is not None:
        parts += ["## Predicted vs actual (held-out test split)", "",
                  "Left: each test row's prediction against its target (on the diagonal: exact); right: the "
                  "residuals (a trend rather than noise is what the model missed).", ""]
        for row in regression:
            name = plot_regression(y_test, row.predicted, row.model, out_dir / f"predicted_{row.model}.png")
            parts += [f"### {row.model}", "", f"![{row.model}]({name})", ""]
    confused = [r for r in rows if r.confusion is not None]
    if confused:
        parts += ["## Confusion matrices (held-out test split)", "", "Rows: the true label; columns: the predicted one.", ""]
    for row in confused:
        name = plot_confusion(row.confusion, classes, row.model, out_dir / f"confusion_{row.model}.png")
        parts += [f"### {row.model}", "", _confusion_table(row.confusion, classes), "", f"![{row.model}]({name})", ""]
    path = out_dir / "report.md"
    write_atomic(path, "\n".join(parts) + "\n")
    return path
