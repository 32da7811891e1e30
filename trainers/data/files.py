"""How data files are opened: each once, by file descriptor, and only if it is a regular file.

Two modes, decided by who asks:
- trusted (a user's own spec on their machine): paths are opened as given, links followed; still with
  O_NONBLOCK and an fstat of the opened descriptor, so a FIFO or a device is refused instead of
  blocking the reader for ever;
- sandboxed (the REST API, `raysemble submit`, and the jobs they start: data roots are set): a path must
  lie, as written, inside one of the roots, and is opened by walking from the root's directory
  descriptor one component at a time with O_NOFOLLOW (openat), so no link is followed anywhere on the
  way and what is checked is what is read: swapping a checked file for a link between the check and
  the read changes nothing. Every refusal reads the same, whatever the path is (missing, a link, a
  FIFO, a directory where a file was expected), so an error never tells whether something exists
  outside a root or where a link leads.

The roots travel to child processes (a job's driver, its trials) in RAYSEMBLE_DATA_ROOTS.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from trainers.data.common import DataError, shown

ROOTS_VAR = "RAYSEMBLE_DATA_ROOTS"
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


class Files:
    """Opens a spec's data files; roots=None: trusted mode (see the module docstring).

    sample_rows: read at most this many rows' features (and every row's label): what the REST API does
    to validate a spec, whose full load belongs to the job; None reads everything."""

    def __init__(self, roots: list[str | Path] | None = None, sample_rows: int | None = None):
        self.roots = None if roots is None else [Path(os.path.realpath(Path(r).expanduser())) for r in roots]
        self.sample_rows = sample_rows

    @classmethod
    def from_env(cls) -> "Files":
        value = os.environ.get(ROOTS_VAR)
        return cls([r for r in value.split(os.pathsep) if r] if value else None)

    def size(self, f: BinaryIO) -> int:
        return os.fstat(f.fileno()).st_size

    def env(self) -> dict[str, str]:
        """What a child process needs to open files the same way."""
        return {ROOTS_VAR: os.pathsep.join(str(r) for r in self.roots)} if self.roots else {}

    @property
    def sandboxed(self) -> bool:
        return self.roots is not None

    # ------------------------------------------------------------------ where a path lies
    def _root_of(self, path: Path) -> tuple[Path, tuple[str, ...]]:
        """(root, the components below it) for an absolute path, lexically: links are refused later,
        at open time."""
        path = Path(os.path.normpath(path))
        for root in self.roots or ():
            try:
                return root, path.relative_to(root).parts
            except ValueError:
                continue
        raise OSError(errno.EACCES, "outside the data roots")

    def refused(self, path: Path, field: str, what: str = "regular file") -> DataError:
        return DataError(f"{field}: a {what} inside the data roots expected, but {shown(path.name)} is not one "
                         f"(missing, a link, or another kind of file)")

    @contextmanager
    def _dir_fd(self, path: Path, field: str, what: str = "directory") -> Iterator[int]:
        """A descriptor of the directory at `path`, reached without following a link."""
        if not self.sandboxed:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                raise DataError(f"{field}: a readable directory expected, but {shown(path.name)} is not one") from None
        else:
            try:
                root, parts = self._root_of(path)
                fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                for part in parts:
                    try:
                        child = os.open(part, _DIR, dir_fd=fd)
                    finally:
                        os.close(fd)
                    fd = child
            except OSError:
                raise self.refused(path, field, what) from None
        try:
            yield fd
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ the three operations loaders need
    def open(self, path: str | Path, field: str) -> BinaryIO:
        """A regular file, opened once; the caller reads (and closes) what it returns."""
        path = Path(path)
        try:
            if self.sandboxed:
                with self._dir_fd(path.parent, field, "regular file") as parent:
                    fd = os.open(path.name, _FILE, dir_fd=parent)
            else:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except DataError:
            raise
        except OSError as err:
            if self.sandboxed:
                raise self.refused(path, field) from None
            if err.errno == errno.ENOENT:
                raise DataError(f"{field}: an existing file or directory expected, but {str(path)!r} does not "
                                f"exist") from None
            raise DataError(f"{field}: a readable file expected, but opening {shown(path.name)} failed "
                            f"({err.strerror or type(err).__name__})") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            if self.sandboxed:
                raise self.refused(path, field)
            raise DataError(f"{field}: a regular file expected, but {shown(path.name)} is not one (a FIFO, a device "
                            f"or a directory)")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")

    def listdir(self, path: str | Path, field: str, limit: int | None = None) -> list[tuple[str, str]]:
        """(name, "dir" | "file" | "other") of a directory's entries, names sorted; links are "other"
        when sandboxed (never followed), what they point at otherwise. Past `limit` entries the listing
        stops (the caller sees limit + 1 and refuses it)."""
        path = Path(path)
        follow = not self.sandboxed
        with self._dir_fd(path, field) as fd:
            out = []
            with os.scandir(fd) as entries:
                for entry in entries:
                    kind = ("dir" if entry.is_dir(follow_symlinks=follow) else
                            "file" if entry.is_file(follow_symlinks=follow) else "other")
                    out.append((entry.name, kind))
                    if limit is not None and len(out) > limit:
                        break
        return sorted(out)

    def kind(self, path: str | Path, field: str) -> str:
        """"dir", "file" or "missing" (sandboxed: anything that is neither, a link included, is "missing")."""
        path = Path(path)
        if not self.sandboxed:
            return "dir" if path.is_dir() else "file" if path.exists() else "missing"
        try:
            with self._dir_fd(path, field):
                return "dir"
        except DataError:
            pass
        try:
            self.open(path, field).close()
            return "file"
        except DataError:
            return "missing"
