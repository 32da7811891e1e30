"""trainers.atomic: a reader sees the old file or the new one, never a part; secrets are never readable."""
from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from trainers.atomic import atomic_file, write_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "state.json"
    write_atomic(path, '{"v": 1}')
    with pytest.raises(RuntimeError):
        with atomic_file(path, text=True) as f:
            f.write('{"v": 2, "half')
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_racing_writers_and_a_reader_only_ever_see_whole_files(tmp_path):
    path = tmp_path / "sweep.json"
    write_atomic(path, json.dumps({"writer": -1, "pad": "x" * 200_000}))
    stop, seen, errors = threading.Event(), set(), []

    def writer(i: int):
        for n in range(30):
            write_atomic(path, json.dumps({"writer": i, "n": n, "pad": "x" * 200_000}))

    def reader():
        while not stop.is_set():
            try:
                seen.add(json.loads(path.read_text())["writer"])
            except ValueError as e:  # a torn file
                errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    watch = threading.Thread(target=reader)
    watch.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watch.join()
    assert errors == []
    assert json.loads(path.read_text())["n"] == 29  # the last rename wins whole
    assert seen & {0, 1, 2, 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.json"]  # every unique temp name renamed


def test_modes_secret_files_0600_others_as_open_would(tmp_path):
    old = os.umask(0o022)
    try:
        plain = write_atomic(tmp_path / "trials.json", "[]")
        secret = write_atomic(tmp_path / "spec.json", "{}", mode=0o600)
        binary = write_atomic(tmp_path / "m.bin", b"\x00\x01")
    finally:
        os.umask(old)
    assert _mode(plain) == 0o644 and _mode(binary) == 0o644
    assert _mode(secret) == 0o600
    assert binary.read_bytes() == b"\x00\x01"
    # replacing a world-readable file with a secret one: the new inode is 0600 from its creation
    write_atomic(plain, '{"token": "t"}', mode=0o600)
    assert _mode(plain) == 0o600
