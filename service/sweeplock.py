"""One driver per sweep: an OS lock (flock) on <sweep dir>/driver.lock while a process drives the sweep.

The kernel drops a flock when its holder exits in any way (SIGKILL included), so a dead driver never
leaves a stale lock behind and `raysemble resume` after a crash just works. The holder writes who
it is (pid, host, start time, command) into the lock file so a refused caller can name it.

The lock file is never replaced or removed while a sweep exists (a lock on an unlinked file would
guard nothing): `--replace` clears the sweep directory around it. Holds are re-entrant within a
process, so the CLI can hold the sweep for a whole command while the library calls it makes
(prepare, run_sweep) hold it too. No heavy imports here: the read-only cluster commands use it.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

LOCK_FILE = "driver.lock"

_held: dict[str, list] = {}  # resolved lock path -> [fd, depth]
_guard = threading.Lock()


class SweepBusy(RuntimeError):
    def __init__(self, name: str, holder: dict | None):
        self.holder = holder or {}
        super().__init__(f"NAME: a sweep that no other driver holds expected, but {name!r} is held by "
                         f"{describe_holder(holder)}; wait for it to end or stop that process first")


def describe_holder(holder: dict | None) -> str:
    if not holder or "pid" not in holder:
        return "another process (it is just starting: who is not recorded yet)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder['pid']} on host {holder.get('host', '?')} since {since} ({holder.get('command', '?')})"


def _lock_path(directory: str | Path) -> str:
    return str(Path(directory).resolve() / LOCK_FILE)


def read_holder(directory: str | Path) -> dict | None:
    try:
        return json.loads(Path(_lock_path(directory)).read_text() or "null")
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def hold(directory: str | Path, command: str) -> Iterator[None]:
    """Hold the sweep in DIRECTORY (created if missing) for the block; SweepBusy if another process does."""
    path = _lock_path(directory)
    with _guard:
        entry = _held.get(path)
        if entry is not None:
            entry[1] += 1
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise SweepBusy(Path(directory).name, read_holder(directory)) from None
            # rewritten in place (not renamed: the lock lives on this inode)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                                      "command": command}).encode(), 0)
            _held[path] = entry = [fd, 1]
    try:
        yield
    finally:
        with _guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _held[path]
                with contextlib.suppress(OSError):
                    os.ftruncate(entry[0], 0)  # no stale name for the next reader
                os.close(entry[0])  # releases the flock

