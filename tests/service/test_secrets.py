"""Tokens never sit where other users can read them: `raysemble api --token-file` takes only a file its
owner alone can access, and the token it holds is the one the real API server then requires."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.cli.api import MAX_TOKEN_FILE_BYTES
from tests.service.raycluster import free_port

EXE = str(Path(sys.executable).with_name("raysemble"))
TOKEN = "file-token-0123456789abcdef"


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYSEMBLE_API_TOKEN",
                                                            "RAYSEMBLE_API_TOKEN_FILE")}
    return {**env, **extra}


def _token_file(tmp_path: Path, text: str = TOKEN + "\n", mode: int = 0o600, name: str = "token") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


def _api(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "api", *args], env=env or _env(), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_token_file_others_can_access_is_refused(tmp_path, mode):
    path = _token_file(tmp_path, mode=mode)
    proc = _api("--token-file", str(path), "--address", "http://127.0.0.1:1")
    assert proc.returncode == 2, proc.stderr
    assert f"--token-file: a token file only its owner can access (mode 0600) expected, but {str(path)!r} has " \
           f"mode {mode:04o}; run `chmod 600 {path}`" in " ".join(proc.stderr.split())
    assert TOKEN not in proc.stderr and "Traceback" not in proc.stderr


def test_token_file_contents_links_and_double_sources_are_refused(tmp_path):
    good = _token_file(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(good)
    cases = [
        (["--token-file", str(tmp_path / "missing")], _env(), "--token-file: a readable token file expected"),
        (["--token-file", str(link)], _env(), "cannot be opened (it is a symbolic link: name the file itself)"),
        (["--token-file", str(tmp_path)], _env(), "is not a regular file"),
        (["--token-file", str(_token_file(tmp_path, "", name="empty"))], _env(), "one line holding the token"),
        (["--token-file", str(_token_file(tmp_path, "a b\n", name="spaced"))], _env(), "one line holding the token"),
        (["--token-file", str(good)], _env(RAYSEMBLE_API_TOKEN="x" * 20),
         "--token-file: one source of the API token expected, but got --token-file and --token"),
        # at the limit and one past it: the first gets past the token checks (to the address check)
        (["--token-file", str(_token_file(tmp_path, "t" * MAX_TOKEN_FILE_BYTES, name="at"))], _env(),
         "--address: the Ray dashboard URL"),
        (["--token-file", str(_token_file(tmp_path, "t" * (MAX_TOKEN_FILE_BYTES + 1), name="past"))], _env(),
         f"a token file of at most {MAX_TOKEN_FILE_BYTES} bytes expected"),
    ]
    for args, env, expected in cases:
        proc = _api(*args, env=env)
        assert proc.returncode == 2 and expected in " ".join(proc.stderr.split()), (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_a_token_on_the_command_line_is_warned_about(tmp_path):
    proc = _api("--token", TOKEN)  # no address: exits 2 after the warning
    assert proc.returncode == 2
    assert "--token puts the token on the command line" in " ".join(proc.stderr.split())
    quiet = _api(env=_env(RAYSEMBLE_API_TOKEN=TOKEN))
    assert quiet.returncode == 2 and "warning" not in quiet.stderr


def test_the_api_requires_the_token_from_the_file(tmp_path):
    path = _token_file(tmp_path)
    port = free_port()
    with socket.socket() as held:  # bound, never listening: the Ray address refuses, so a call gets past auth to 503
        held.bind(("127.0.0.1", 0))
        cluster = f"http://127.0.0.1:{held.getsockname()[1]}"
        server = subprocess.Popen([EXE, "api", "--token-file", str(path), "--port", str(port), "--address", cluster,
                                   "--home", str(tmp_path / "home")], env=_env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()[-2000:]
                time.sleep(0.2)
            wrong = httpx.get(f"{url}/sweeps", headers={"Authorization": "Bearer wrong"}, timeout=10)
            assert wrong.status_code == 401
            right = httpx.get(f"{url}/sweeps", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            assert right.status_code == 503, right.text  # past auth: the cluster does not answer
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=30)
