"""Atomic file writes: a reader (or a restarted process) sees the old file or the new one, never a part.

Write to a unique temp file in the target's directory, fsync it, rename it over the target, then fsync
the directory so the rename itself survives a crash. Unique names let two writers of one file race
safely: each rename is whole, the last one wins.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


def _umask_mode() -> int:
    """What open() would give a new file: 0o666 less the umask (read without changing it: thread-safe)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def fsync_dir(directory: str | Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot sync a directory; the rename is still atomic there
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: int | None = None, text: bool = False, sync: bool = True) -> Iterator[IO]:
    """Yields a file to write PATH's new content to; it replaces PATH only if the block succeeds.

    mode: the file's permission bits (e.g. 0o600 for anything holding a secret); None: as a plain
    open() would create it. The temp file is created 0600, so a secret is never readable in between.
    sync=False skips both fsyncs: still whole-or-nothing for a killed process, not for a power cut
    (for files written often inside training, where an fsync each would cost more than the write)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")) as f:
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync:
        fsync_dir(path.parent)


def write_atomic(path: str | Path, data: str | bytes, mode: int | None = None) -> Path:
    """Replace PATH with DATA atomically (see atomic_file); returns PATH."""
    with atomic_file(path, mode, text=isinstance(data, str)) as f:
        f.write(data)
    return Path(path)
