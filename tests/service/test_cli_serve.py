"""`raysemble serve` input errors: exit 2 with the field named, before Ray or Serve start."""
from typer.testing import CliRunner

from service.cli import app

runner = CliRunner()


def test_unknown_sources_and_bad_options_exit_2(tmp_path, monkeypatch):
    import ray

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    result = runner.invoke(app, ["serve", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "bundle directory with bundle.json" in result.output
    result = runner.invoke(app, ["serve", "models:/absent/3"])
    assert result.exit_code == 2 and "'models:/absent/3' was not found in the registry" in result.output
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("port: 70000\nmax_batch_size: 0\n")
    result = runner.invoke(app, ["serve", str(tmp_path), "--config", str(cfg)])
    assert result.exit_code == 2
    assert "serve.port" in result.output and "serve.max_batch_size" in result.output
    result = runner.invoke(app, ["serve", str(tmp_path), "--config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "--config: an existing file expected" in result.output
    assert not ray.is_initialized()
