"""Serving from the command line: `raysemble serve`, and what `raysemble run` does after registering."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from service.cli.common import app, emit_json, err, invalid, serve_config


def serve_registered(result: dict, sweep, as_json: bool, owns_ray: bool) -> None:
    """Serve what a finished run registered (the sweep's ensemble and student) until Ctrl-C."""
    reg = result["registered"]
    student = reg["student"]["uri"] if "student" in reg else None
    cfg = sweep.spec.serve
    url = start_serving(reg["ensemble"]["uri"], student, cfg, sweep.where)
    if as_json:
        emit_json({**result, "url": url})
    block(cfg, owns_ray)


def start_serving(ensemble: str, student: Optional[str], cfg, store=None) -> str:
    from serving.app import curl_for, serve_models
    from serving.loader import ModelSourceError

    try:
        url = serve_models(ensemble, student, cfg, blocking=False, store=store)
    except ModelSourceError as e:
        invalid(str(e))
    err.print(f"serving at {url}  (Ctrl-C stops)", highlight=False)
    # the token itself is never printed: a pasted command line would show it to every user (ps)
    line = curl_for(url)
    if cfg.token:
        line += " -H @auth-header.txt  # a 0600 file holding the line: Authorization: Bearer <serve.token>"
    err.print(line, highlight=False, soft_wrap=True)
    return url


def block(serve_cfg, owns_ray: bool) -> None:
    """Serve until Ctrl-C or SIGTERM. A Ray this process started goes down with it (replicas and
    HAProxy included); on a cluster it joined, only the app is deleted."""
    import signal
    import time

    import ray
    from ray import serve

    def stop(signum, frame):
        raise KeyboardInterrupt

    # a shell starts background jobs with SIGINT ignored; `kill -INT` must stop us there too
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    # a second Ctrl-C while stopping would only leave a traceback behind
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    err.print("stopping…", highlight=False)
    if owns_ray:
        ray.shutdown()
    else:
        serve.delete(serve_cfg.app_name, _blocking=False)


@app.command()
def serve(model: str = typer.Argument(..., help="ensemble: models:/NAME/VERSION, models:/NAME@ALIAS or a bundle dir"),
          student: Optional[str] = typer.Option(None, "--student", help="student model, same forms"),
          host: Optional[str] = typer.Option(None, "--host"),
          port: Optional[int] = typer.Option(None, "--port"),
          config: Optional[Path] = typer.Option(None, "--config", help="YAML of serving options (ServeConfig)")):
    """Serve an ensemble (and its student) over HTTP with Ray Serve until Ctrl-C."""
    import yaml

    raw: dict = {}
    if config is not None:
        if not config.is_file():
            invalid(f"--config: an existing file expected, but {str(config)!r} does not exist")
        try:
            raw = yaml.safe_load(config.read_text()) or {}
        except yaml.YAMLError as e:
            invalid(f"--config: valid YAML expected, but parsing failed: {str(e).splitlines()[0]}")
        if not isinstance(raw, dict):
            invalid(f"--config: a mapping of serving options expected, but got {type(raw).__name__}")
    cfg = serve_config({**raw, **{k: v for k, v in (("host", host), ("port", port)) if v is not None}})
    start_serving(model, student, cfg)
    block(cfg, owns_ray=not os.environ.get("RAY_ADDRESS"))
