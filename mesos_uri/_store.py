"""The target directory: verified files appear under their final names, and nothing else does.

Bytes go to a hidden temporary file in the same directory and are renamed into place only once
the caller verified them and they were flushed to disk (a crash cannot leave an empty file
under a verified name); the temporary file is removed on any failure and on cancellation. Files
get the permissions the umask allows, as any file a program creates.

A file this program committed carries an extended attribute with what it was verified as, its
size and its modification time: a later fetch into the same directory trusts it without reading
it again (:meth:`Store.committed`), and anything else under a final name is checked afresh.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
from pathlib import Path
from typing import Final

import anyio

from mesos_uri.errors import FetchError

__all__ = ["Store"]

# Prefix of temporary files: hidden, and never a digest (digests start with [a-z0-9]).
_TEMP_PREFIX: Final = ".mesos-uri-"
# Where a committed file keeps what it was verified as ("user." attributes need no privilege).
_MARK: Final = "user.mesos-uri.verified"


class Store:
    """One target directory. Safe for concurrent fetches, even of the same digest."""

    def __init__(self, directory: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.directory = Path(directory)
        # The directory as text: names are joined to it on every blob's hot path.
        self._dir = os.fspath(self.directory)
        self.durable = durable
        self._created: list[Path] = []

    def create(self) -> None:
        """``mkdir -p`` the directory, failing with the original's error text."""
        missing = [self.directory, *self.directory.parents]
        missing = missing[: next(i for i, path in enumerate(missing) if path.exists())]
        # Top down, and ours only if our mkdir made it: a concurrent fetch into the same new
        # directory may make some of them first, and then they are not ours to remove.
        created: list[Path] = []
        try:
            for path in reversed(missing):
                try:
                    path.mkdir()
                    created.insert(0, path)
                except FileExistsError:
                    if not path.is_dir():
                        raise
        except OSError as exc:
            raise self.failed("create directory", exc.strerror or exc) from exc
        self._created = created

    def remove_if_empty(self) -> None:
        """Remove the directories :meth:`create` made, if nothing is in them: a fetch that
        failed leaves nothing behind."""
        with contextlib.suppress(OSError):  # not empty: neither is any parent
            for path in self._created:
                path.rmdir()

    def path(self, name: str) -> Path:
        # Names are digests validated against the OCI grammar, or basenames: no '/' in them.
        return self.directory / name

    def _file(self, name: str) -> str:
        return f"{self._dir}/{name}"

    def temp(self, name: str) -> Path:
        """A fresh, empty, closed temporary file for ``name`` (mode 0600 until committed)."""
        try:
            fd, path = tempfile.mkstemp(dir=self.directory, prefix=f"{_TEMP_PREFIX}{name}.")
        except OSError as exc:
            raise self.failed("create a temporary file in", exc.strerror or exc) from exc
        os.close(fd)
        return Path(path)

    def temp_name(self, name: str) -> str:
        """A name for a temporary file that does not exist yet, for another program (curl) to
        create: hidden, and unpredictable, so nobody can have put a link there first."""
        return f"{self._dir}/{_TEMP_PREFIX}{name}.{os.urandom(8).hex()}"

    def committed(self, name: str) -> int | None:
        """The size of ``name`` if this program committed it under that name, verified, and it
        is unchanged."""
        path = self._file(name)
        try:
            found = os.getxattr(path, _MARK).decode("ascii", "replace")
            stat = os.stat(path)
        except (OSError, AttributeError):  # no file, no attribute, or none supported here
            return None
        return stat.st_size if found == _mark(name, stat) else None

    def holds(self, name: str) -> bool:
        return os.path.isfile(self._file(name))

    def mark(self, name: str) -> None:
        """Record that ``name`` holds what its name says (checked by the caller)."""
        _set_mark(self._file(name), name)

    async def commit(
        self, temp: str | Path, name: str, *, verified: bool = False, data: bytes | None = None
    ) -> None:
        """Write ``data`` (if any) to ``temp``, flush it and rename it to ``name`` (marked as
        holding what its name says, if ``verified``); on any failure it is removed."""
        try:
            await anyio.to_thread.run_sync(self._write, temp, name, verified, data)
        except OSError as exc:
            raise self.failed(f"write '{name}' to", exc.strerror or exc) from exc
        finally:
            self.discard(temp)  # gone once renamed; anything else is removed

    async def write_file(self, name: str, data: bytes) -> None:
        """Atomically put already-verified bytes (a manifest, an index) under ``name``."""
        await self.commit(self.temp(name), name, data=data)

    def _write(self, temp: str | Path, name: str, verified: bool, data: bytes | None) -> None:
        if data is not None:
            Path(temp).write_bytes(data)
        if self.durable:
            with open(temp, "rb") as file:
                os.fsync(file.fileno())
        os.chmod(temp, 0o666 & ~_umask())
        if verified:
            _set_mark(temp, name)
        os.replace(temp, self._file(name))

    def write_error(self, what: str, status: int, detail: str) -> FetchError:
        """Why another program (curl, exit ``status``) could not write ``what`` here: the file
        size limit, a full file system, or what it said."""
        reason = detail or f"exit status {status}"
        if status == -signal.SIGXFSZ:
            reason = os.strerror(errno.EFBIG)
        else:
            with contextlib.suppress(OSError):
                space = os.statvfs(self.directory)
                if space.f_bavail == 0 or space.f_favail == 0:
                    reason = os.strerror(errno.ENOSPC)
        return self.failed(f"write {what} to", reason)

    def failed(self, doing: str, reason: object) -> FetchError:
        """The error for what could not be done in this directory, in the original's words."""
        return FetchError(f"Failed to {doing} '{self.directory}': {reason}")

    def discard(self, temp: str | Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _mark(mark: str, stat: os.stat_result) -> str:
    # Size and mtime: a file rewritten since it was verified no longer matches its mark.
    return f"{mark} {stat.st_size} {stat.st_mtime_ns}"


def _set_mark(path: str | Path, mark: str) -> None:
    with contextlib.suppress(OSError, AttributeError):  # a file system without them: no cache
        os.setxattr(path, _MARK, _mark(mark, os.stat(path)).encode("ascii"))


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
