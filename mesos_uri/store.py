"""The target directory: verified files appear under their final names, and nothing else does.

The original wrote curl's output straight to ``DIR/<digest>``, so a failed or cancelled pull left
HTTP error bodies and partial layers under names the agent trusts (SPEC.md §1.2, §9 row 10). Here
bytes go to a hidden temporary file in the same directory, are hashed as they arrive, and are
renamed into place only once their digest matched; the temporary file is removed on any failure
and on cancellation.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final, cast

import anyio

from mesos_uri.docker.digest import Digest, Hasher
from mesos_uri.errors import FetchError

__all__ = ["BlobSizeError", "BlobWriter", "Store"]

# Bytes read per call when re-hashing a file that is already present.
_READ_CHUNK: Final = 1024 * 1024

# The first bytes of a body are hashed and written as they come; past this a thread takes over.
_INLINE_BYTES: Final = 4 * 1024 * 1024
# A body's bytes go to the writer's thread in pieces of this size: large enough that handing
# them over costs little, small enough that the thread keeps pace with the download.
_HANDOFF_BYTES: Final = 512 * 1024
# At most this much waits while the thread works on the previous piece: a blob holds at most
# about twice this in memory, so peak memory stays low with --jobs large blobs at once.
_MAX_PENDING_BYTES: Final = 1024 * 1024
# Writeback is started every this many bytes of a durable download.
_WRITEBACK_CHUNK: Final = 8 * 1024 * 1024
# sync_file_range(2)'s SYNC_FILE_RANGE_WRITE: start writeback of dirty pages, do not wait.
_SYNC_FILE_RANGE_WRITE: Final = 2

# Prefix of temporary files: hidden, and never a valid digest (digests start with [a-z0-9]).
_TEMP_PREFIX: Final = ".mesos-uri-"


class BlobSizeError(FetchError):
    """A download delivered more (or fewer) bytes than its descriptor declared: never kept."""


class BlobWriter:
    """Receives a download's body chunk by chunk: hashes, size-checks and writes each one.

    It is the ``sink`` of ``curl.download``; raising from ``write`` stops curl at once. The size
    is checked as each chunk arrives; hashing and writing, which cost more than reading curl's
    pipe, run in a thread of the writer's own once a body grows past 4 MiB, so that the
    event loop keeps reading and several large blobs hash on several cores (hashlib and
    os.write release the GIL).
    """

    def __init__(
        self, path: Path, fd: int, digest: Digest, size: int, *, what: str, durable: bool = False
    ) -> None:
        self.path = path
        self.fd = fd
        self.digest = digest
        self.size = size
        self.received = 0
        self._hasher: Hasher = digest.hasher()
        self.what = what
        # Bytes already handed to the kernel's writeback (see _start_writeback).
        self._written_back = 0 if durable else None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._work: concurrent.futures.Future[None] | None = None

    def write(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if 0 <= self.size < self.received:
            raise BlobSizeError(
                f"{self.what} is larger than the {self.size} bytes its manifest declares"
            )
        if self._worker is None and self.received <= _INLINE_BYTES:
            self._consume(chunk)  # small bodies: not worth a thread, and on disk at once
            return
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes < _HANDOFF_BYTES:
            return
        if self._work is not None and not self._work.done():
            if self._pending_bytes < _MAX_PENDING_BYTES:
                return  # let the thread catch up
            # Back-pressure, as a full pipe would give: memory stays bounded whatever the disk.
            concurrent.futures.wait([self._work])
        self._hand_off()

    def _hand_off(self) -> None:
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        if self._work is not None and self._work.done():
            self._work.result()  # a failed write (a full disk) fails the download now
        if self._worker is None:
            self._worker = concurrent.futures.ThreadPoolExecutor(1, "mesos-uri-blob")
        # One worker thread: the pieces are hashed and written in the order they came.
        self._work = self._worker.submit(self._consume, data)

    def drain(self) -> None:
        """Hash and write everything received so far (blocks on the worker thread, if any)."""
        if self._work is not None:
            self._work.result()
            self._work = None
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self._consume(data)

    def _consume(self, data: bytes) -> None:
        self._hasher.update(data)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
        except OSError as exc:
            # A full disk must read as a failed fetch, not escape as a bare OSError.
            raise _write_error(self.what, self.path.parent, exc) from exc
        if self._written_back is not None:
            self._start_writeback()

    def _start_writeback(self) -> None:
        """Start writing what has arrived to disk while the rest is still on its way, so that
        the fsync before the rename finds little left to do (as databases use the call)."""
        assert self._written_back is not None
        written = os.lseek(self.fd, 0, os.SEEK_CUR)
        pending = written - self._written_back
        if pending >= _WRITEBACK_CHUNK and _sync_file_range(self.fd, self._written_back, pending):
            self._written_back = written

    def absorb(self) -> None:
        """Take the bytes already in the file as received (hashed and size-checked)."""
        while chunk := os.read(self.fd, _READ_CHUNK):
            self.received += len(chunk)
            if 0 <= self.size < self.received:
                raise BlobSizeError(
                    f"{self.what} is larger than the {self.size} bytes its manifest declares"
                )
            self._hasher.update(chunk)

    def restart(self) -> None:
        """Forget everything written so far: a server that ignored our Range answers from 0."""
        self._settle()
        try:
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
        except OSError as exc:
            raise _write_error(self.what, self.path.parent, exc) from exc
        self.received = 0
        self._hasher = self.digest.hasher()

    def _settle(self) -> None:
        """Let the worker finish whatever it holds, and drop what it has not been given."""
        self._pending.clear()
        self._pending_bytes = 0
        if self._work is not None:
            concurrent.futures.wait([self._work])
            self._work = None

    def close(self) -> None:
        self._settle()
        if self._worker is not None:
            self._worker.shutdown()
            self._worker = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def verify(self) -> None:
        self.drain()
        if 0 <= self.size != self.received:
            raise BlobSizeError(
                f"{self.what} has {self.received} bytes but its manifest declares {self.size}"
            )
        self.digest.verify(self._hasher, what=self.what)


class Store:
    """One target directory. Safe for concurrent fetches, even of the same digest."""

    def __init__(self, directory: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.directory = Path(directory)
        # fsync before rename so that a crash cannot leave an empty file under a verified name.
        self.durable = durable

    def create(self) -> None:
        """``mkdir -p`` the directory, with the original's error text (SPEC.md §8.2)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FetchError(
                f"Failed to create directory '{self.directory}': {exc.strerror or exc}"
            ) from exc

    def path(self, name: str | Digest) -> Path:
        # Digests were validated against the OCI grammar, so str(digest) has no '/' in it.
        return self.directory / str(name)

    async def has_verified(self, digest: Digest) -> bool:
        """Whether ``DIR/<digest>`` already holds exactly the right bytes (retries are cheap)."""
        path = self.path(digest)
        if not path.is_file():
            return False
        return await anyio.to_thread.run_sync(_file_matches, path, digest)

    async def write_file(self, name: str, data: bytes) -> None:
        """Atomically put already-verified bytes (a manifest, an index) under ``name``."""
        fd, tmp = self._temp(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if self.durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path(name))
        except OSError as exc:
            _remove(tmp)
            raise _write_error(f"'{name}'", self.directory, exc) from exc
        except BaseException:
            _remove(tmp)
            raise

    def open_blob(
        self, digest: Digest, size: int, *, what: str, adopt: Path | None = None
    ) -> BlobWriter:
        """A writer on a fresh temporary file, or on ``adopt``, a temporary file of this store
        already holding the first bytes (a batched download's); ``commit`` or ``discard`` it
        exactly once."""
        if adopt is None:
            fd, tmp = self._temp(str(digest))
            return BlobWriter(Path(tmp), fd, digest, size, what=what, durable=self.durable)
        fd = os.open(adopt, os.O_RDWR)
        writer = BlobWriter(adopt, fd, digest, size, what=what, durable=self.durable)
        try:
            writer.absorb()
        except BaseException:
            self.discard(writer)
            raise
        return writer

    async def commit(self, writer: BlobWriter) -> None:
        """Verify, flush and rename into place; on any failure the temporary file is gone."""
        try:
            await anyio.to_thread.run_sync(writer.drain)
            writer.verify()
            try:
                if self.durable:
                    await anyio.to_thread.run_sync(os.fsync, writer.fd)
                writer.close()
                os.chmod(writer.path, 0o644)
                os.replace(writer.path, self.path(writer.digest))
            except OSError as exc:
                raise _write_error(writer.what, self.path(writer.digest), exc) from exc
        except BaseException:
            self.discard(writer)
            raise

    def discard(self, writer: BlobWriter) -> None:
        writer.close()
        _remove(str(writer.path))

    def temp_path(self, name: str) -> Path:
        """A fresh, closed temporary file for a plugin that lets another program write it."""
        fd, tmp = self._temp(name)
        os.close(fd)
        return Path(tmp)

    def place(self, temp: Path, name: str) -> Path:
        """Rename a finished temporary file to its final ``name`` (atomic within the directory)."""
        final = self.path(name)
        os.replace(temp, final)
        return final

    def leftovers(self) -> list[Path]:
        """Temporary files in the directory (tests assert there are none after a fetch)."""
        return sorted(self.directory.glob(_TEMP_PREFIX + "*"))

    def _temp(self, name: str) -> tuple[int, str]:
        try:
            return tempfile.mkstemp(dir=self.directory, prefix=f"{_TEMP_PREFIX}{name}.")
        except OSError as exc:
            raise FetchError(
                f"Failed to create a temporary file in '{self.directory}': {exc.strerror or exc}"
            ) from exc


@functools.cache
def _libc_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2) through ctypes (Python has no binding); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    function.restype = ctypes.c_int
    return cast("Callable[[int, int, int, int], int]", function)


def _sync_file_range(fd: int, offset: int, length: int) -> bool:
    function = _libc_sync_file_range()
    return function is not None and function(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0


def _file_matches(path: Path, digest: Digest) -> bool:
    hasher = digest.hasher()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_READ_CHUNK):
                hasher.update(chunk)
    except OSError:
        return False
    return f"{digest.algorithm}:{hasher.hexdigest()}" == str(digest)


def _write_error(what: str, where: Path, exc: OSError) -> FetchError:
    return FetchError(f"Failed to write {what} to '{where}': {exc.strerror or exc}")


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
