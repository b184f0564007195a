"""Downloads into files, many through one curl, each hashed while curl writes it.

Starting curl costs more than fetching a small blob from a registry nearby, and on a real network
every new connection costs round trips. So downloads that are asked for at about the same time
share one ``curl --parallel --parallel-immediate`` (:class:`Batcher`): each transfer is a config
group of its own (URL, headers, output file, size limit), and curl reuses its connections across
them. That is also how the agent's concurrent ``docker-blob`` fetches through one fetcher become
one process.

curl writes each body into its file itself. A follower reads the files as they grow and feeds
every new byte to the transfer's hasher, so a body is hashed while it arrives, on another core,
and never re-read afterwards; it also stops curl as soon as a file passes its transfer's limit.
As a backstop the kernel stops curl at the largest limit of the batch (``RLIMIT_FSIZE``), so no
file grows past it even between two looks of the follower. When a transfer ends curl closes its
file and prints a record of it (exit code, status, size, a few headers) on stderr.

Nothing here judges a status: a transfer's :class:`Outcome` goes back to its caller, which
decides about redirects, challenges, retries and what to keep.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from typing import Final, Protocol

import anyio
import anyio.lowlevel
import attrs

from mesos_uri import _curl as curl
from mesos_uri._curl import TLS, WEB_PROTOCOLS, Timeouts
from mesos_uri._http import Headers, status_string
from mesos_uri._urls import redact_url
from mesos_uri.errors import CurlError, FetchError, excerpt

__all__ = ["FILESIZE_EXCEEDED", "Batcher", "Hasher", "Outcome", "Transfer", "run_batch"]

_log = logging.getLogger(__name__)

# What each transfer's record reports, besides its exit code, status and size.
_HEADERS: Final = ("retry-after", "www-authenticate", "content-type", "content-range")
_MARK: Final = "mesos-uri-transfer"
# The follower reads at most this much of one running file per look, so that every file is seen
# often, and a few times more of one that curl has finished.
_READ_CHUNK: Final = 4 * 1024 * 1024
_ENDED_CHUNKS: Final = 16
# Writeback of a file that is being downloaded is started every this many bytes.
_WRITEBACK_CHUNK: Final = 8 * 1024 * 1024
# curl's exit code when a Content-Length is larger than max-filesize allows.
FILESIZE_EXCEEDED: Final = 63
# Looks at files that did not grow back off from the first delay to the second.
_MIN_DELAY: Final = 0.001
_MAX_DELAY: Final = 0.02
# How long the first of several concurrent transfers waits for the others to join its batch.
_MAX_GATHER: Final = 0.02
# Transfers per curl: curl reads its whole config before the first request, and a huge image
# (thousands of layers) should not wait for that. Two curls at a time keep the connections to
# a registry at twice the parallel transfers at most.
_MAX_BATCH: Final = 256
_MAX_CURLS: Final = 2


class Hasher(Protocol):
    """The part of ``hashlib``'s hash objects the package uses: the follower feeds one, a
    resumed download copies one, and a digest reads it."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...

    def copy(self) -> Hasher: ...


@attrs.define(eq=False)
class Transfer:
    """One download: curl writes the body of ``url``, whatever its status, into ``path``,
    creating it at the first byte (or empty, for a transfer that ends well without one)."""

    url: str
    path: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    # The most bytes the file may hold; one more stops the transfer.
    limit: int | None = None
    # Fed every byte of the file, in order.
    hasher: Hasher | None = None
    tls: TLS | None = None
    protocols: str = WEB_PROTOCOLS
    # Told the bytes in the file so far, as they arrive.
    progress: Callable[[int], None] | None = None
    # Start writing the file to disk as it arrives (Linux), so that an fsync after has little left.
    writeback: bool = False


@attrs.frozen
class Outcome:
    """How one transfer ended. ``finished`` is False when curl ended without reporting it (killed
    because another file of its batch passed its limit, cancelled, crashed): the file then holds
    an unknown prefix. ``size`` is what the file holds (every byte of it went to the hasher);
    ``oversize`` that the body passed the transfer's limit: a Content-Length past it (curl's exit
    63, the file empty, ``code`` the status that announced it) or more bytes than it allowed."""

    finished: bool
    exit_code: int = 0
    code: int = 0
    size: int = 0
    redirect_url: str = ""
    headers: Headers = attrs.field(factory=Headers)
    error: str = ""
    oversize: bool = False

    @property
    def status(self) -> str:
        return status_string(self.code)

    def curl_error(self, url: str) -> CurlError:
        """The error for a transfer curl failed, in the words of a failed request."""
        message = f"curl: ({self.exit_code}) {self.error}"
        return curl.curl_error(url, self.exit_code, message, stderr=self.error)


def _config(index: int, transfer: Transfer, timeouts: Timeouts) -> list[str]:
    """Transfer ``index``'s config group; ``next`` ends the group before it."""
    lines = ["next"] if index else []
    lines += curl.config_lines(
        transfer.url,
        headers=transfer.headers,
        protocols=transfer.protocols,
        tls=transfer.tls,
        timeouts=timeouts,
    )
    lines.append(f"output = {curl.quote(transfer.path)}")
    if transfer.limit is not None:
        # A Content-Length past the limit is refused before a byte is written (exit 63); 0
        # would mean no limit at all.
        lines.append(f"max-filesize = {max(transfer.limit, 1)}")
    # The record goes to stderr, which curl does not buffer: it arrives when the transfer ends.
    fields = [f"h\t{name}\t%header{{{name}}}" for name in _HEADERS]
    fields.append("redirect\t%{redirect_url}")
    fields.append("end\t%{exitcode}\t%{http_code}\t%{size_download}\t%{errormsg}")
    record = "".join(f"{_MARK}\t{index}\t{field}\n" for field in fields)
    lines.append(f"write-out = {curl.quote('%{stderr}' + record)}")
    return lines


@attrs.define(eq=False)
class _File:
    """What the follower knows of one transfer's file, and what curl's record says of it."""

    transfer: Transfer
    fd: int | None = None
    size: int = 0  # at the last look
    read: int = 0  # how far it was hashed
    reported: int = 0  # how far progress was told
    written_back: int = 0  # how far writeback was started
    oversize: bool = False
    # From its record: a few headers, the redirect, and the end (exit code, status, message).
    headers: dict[str, str] = attrs.field(factory=dict)
    redirect: str = ""
    ended: tuple[int, int, str] | None = None
    drained: bool = False  # ended, and read to its end (or past its limit)
    told: bool = False  # its caller heard of its end

    def read_more(self, *, ended: bool) -> bool:
        """Hash what curl added since the last look, a chunk of it (a few, once the transfer
        ``ended``); whether there was any."""
        if self.fd is None:
            try:
                self.fd = os.open(self.transfer.path, os.O_RDONLY)
            except FileNotFoundError:
                return False
        transfer, fd = self.transfer, self.fd
        self.size = size = os.fstat(fd).st_size
        if transfer.limit is not None:
            size = min(size, transfer.limit + 1)  # hashing an oversized tail is pointless
        start = position = self.read
        for _ in range(_ENDED_CHUNKS if ended else 1):
            if position >= size:
                break
            data = os.pread(fd, min(_READ_CHUNK, size - position), position)
            if not data:
                break
            if transfer.hasher is not None:
                transfer.hasher.update(data)
            position += len(data)
        self.read = position
        if transfer.writeback and position - self.written_back >= _WRITEBACK_CHUNK:
            _writeback()(fd, self.written_back, position - self.written_back)
            self.written_back = position
        return position > start

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@attrs.define(eq=False)
class _Batch:
    """One curl run: the records it prints and the files it writes."""

    files: list[_File]
    parallel: int
    ended: Callable[[int, Outcome], None]
    curl_done: bool = False
    # Set when a transfer ends or curl exits: the follower looks at once, not after its nap.
    changed: anyio.Event = attrs.field(factory=anyio.Event)

    def record(self, line: str) -> bool:
        """Take one line of curl's stderr if it is a transfer's record."""
        fields = line.split("\t", 3)
        if len(fields) < 4 or fields[0] != _MARK or not fields[1].isdigit():
            return False
        index = int(fields[1])
        if index >= len(self.files):
            return False
        file, kind, rest = self.files[index], fields[2], fields[3]
        if kind == "h":
            name, _, value = rest.partition("\t")
            if value.strip():
                file.headers[name] = value.strip()
        elif kind == "redirect":
            file.redirect = rest.strip()
        elif kind == "end":
            parts = rest.split("\t", 3)
            if len(parts) == 4 and all(part.isdigit() for part in parts[:3]):
                file.ended = (int(parts[0]), int(parts[1]), parts[3])
                self.changed.set()
        return True

    def look(self) -> tuple[bool, bool]:
        """Read what the running and just-ended transfers added to their files (in a worker
        thread). Returns whether any file grew, and whether any passed its limit."""
        grew = passed = False
        unfinished = 0
        for file in self.files:
            if file.drained:
                continue
            ended = file.ended is not None or self.curl_done
            if not ended:
                # curl starts transfers in order, `parallel` at a time: later ones have not begun.
                unfinished += 1
                if unfinished > self.parallel:
                    continue
            grew |= file.read_more(ended=ended)
            limit = file.transfer.limit
            if limit is not None and file.size > limit:
                file.oversize = passed = True
            if ended and (file.oversize or file.read >= file.size):
                file.drained = True
                file.close()
        return grew, passed

    def outcome(self, file: _File, status: int = 0, messages: str = "") -> Outcome:
        """How ``file``'s transfer ended: from its record, or (none came) from curl's end."""
        if file.ended is None and not file.oversize and any(f.oversize for f in self.files):
            # Stopped with the transfer that passed its limit (by us, or by the kernel at the
            # largest limit of the batch): nothing wrong with this one.
            status, messages = 0, "stopped with another download of its batch"
        finished = file.ended is not None
        exit_code, code, error = file.ended or (status, 0, messages)
        return Outcome(
            finished=finished,
            exit_code=exit_code,
            code=code,
            size=file.read,
            # A record cut off before its end says nothing reliable.
            redirect_url=file.redirect if finished else "",
            headers=Headers(tuple(file.headers.items()) if finished else ()),
            error=excerpt(error),
            oversize=file.oversize or (finished and exit_code == FILESIZE_EXCEEDED),
        )

    async def follow(self, curl_scope: anyio.CancelScope) -> None:
        """Hash the files as they grow, until curl is done and every file is read to its end;
        a transfer that ended, and whose file was read to its end, is told to ``ended``."""
        delay = _MIN_DELAY
        while True:
            done = self.curl_done
            self.changed = anyio.Event()
            grew, passed = await anyio.to_thread.run_sync(self.look)
            if passed:
                curl_scope.cancel()  # every file of the batch stops growing now
            for index, file in enumerate(self.files):
                progress = file.transfer.progress
                if progress is not None and file.read != file.reported:
                    file.reported = file.read
                    progress(file.read)
                if file.drained and file.ended is not None and not file.told:
                    file.told = True
                    self.ended(index, self.outcome(file))
            if done and all(file.drained for file in self.files):
                return
            if grew:
                delay = _MIN_DELAY
            else:
                with anyio.move_on_after(delay):
                    await self.changed.wait()
                delay = min(delay * 2, _MAX_DELAY)


async def run_batch(
    transfers: Sequence[Transfer],
    *,
    parallel: int,
    timeouts: Timeouts,
    ended: Callable[[int, Outcome], None] | None = None,
) -> list[Outcome]:
    """Run every transfer through one curl (at most ``parallel`` at a time) and return how each
    ended, in order; ``ended`` hears of each transfer as soon as its file is read to its end,
    while the others still run. Raises only when curl cannot be run at all."""
    batch = _Batch([_File(t) for t in transfers], parallel, ended or (lambda index, outcome: None))
    config = [line for index, t in enumerate(transfers) for line in _config(index, t, timeouts)]
    limits = [t.limit for t in transfers]
    largest = None if None in limits else max(limit or 0 for limit in limits) + 1
    started = time.monotonic()
    status, messages = -1, ""
    failure: FetchError | None = None
    try:
        async with anyio.create_task_group() as group:
            with anyio.CancelScope() as curl_scope:
                group.start_soon(batch.follow, curl_scope)
                try:
                    status, messages = await curl.run(
                        ["--parallel", "--parallel-immediate", "--parallel-max", str(parallel)],
                        config,
                        what=transfers[0].url,
                        stderr_line=batch.record,
                        spawned=functools.partial(_limit_file_size, limit=largest),
                    )
                except FetchError as exc:  # curl could not be run: raised as it is, below
                    failure = exc
            batch.curl_done = True
            batch.changed.set()
    finally:
        for file in batch.files:
            file.close()
    if failure is not None:
        raise failure
    if status > 0 and not any(file.ended or file.oversize for file in batch.files):
        # curl refused to start (an option or a config it does not take): no transfer ran,
        # and none would on a retry.
        first = excerpt(messages.strip().split("\n", 1)[0])
        raise curl.curl_error(transfers[0].url, status, first, stderr=first)
    outcomes = [batch.outcome(file, status, messages) for file in batch.files]
    elapsed = time.monotonic() - started
    for index, (transfer, outcome) in enumerate(zip(transfers, outcomes, strict=True)):
        if not outcome.finished:
            batch.ended(index, outcome)
        url = redact_url(transfer.url)
        result = outcome.code if outcome.finished else "unfinished"
        note = f" ({outcome.error})" if outcome.error else ""
        _log.debug("GET %s -> %s, %d bytes, %.3f s%s", url, result, outcome.size, elapsed, note)
    return outcomes


@functools.cache
def _writeback() -> Callable[[int, int, int], object]:
    """sync_file_range(2) with SYNC_FILE_RANGE_WRITE, as databases use it: writeback starts, and
    nobody waits. Elsewhere, and where it fails, the fsync does all of it later."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            function = ctypes.CDLL(None, use_errno=True).sync_file_range
            function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
            function.restype = ctypes.c_int
            return lambda fd, offset, length: function(fd, offset, length, 2)
    return lambda fd, offset, length: None


def _limit_file_size(pid: int, limit: int | None) -> None:
    """No file curl writes may grow past ``limit``: the kernel stops it there (SIGXFSZ)."""
    if limit is not None and sys.platform.startswith("linux"):
        import resource

        with contextlib.suppress(OSError, ValueError):
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, limit))


@attrs.define(eq=False)
class _Entry:
    transfer: Transfer
    # Set when the transfer's batch is done, or when this caller is to lead the next batch.
    wake: anyio.Event = attrs.field(factory=anyio.Event)
    done: bool = False
    # Its caller gave up (was cancelled) while curl still had it: the batch removes its file.
    abandoned: bool = False
    outcome: Outcome | None = None
    error: BaseException | None = None


class Batcher:
    """Runs transfers, those asked for at about the same time through one curl. One per loop.

    The first caller leads: it waits for one of the :data:`_MAX_CURLS` curls, then until no
    more callers join (one scheduling round adds nobody, or a few milliseconds passed), then
    runs a batch of up to :data:`_MAX_BATCH` for everybody. Once it has taken its batch (or is
    cancelled before), the first caller still waiting leads the next one. If a leader is cancelled
    while its batch runs, the others get an unfinished outcome and try again. Each caller waits on
    an event of its own, so that thousands of them cost linear time.
    """

    def __init__(self, *, parallel: int, timeouts: Timeouts) -> None:
        self.parallel = parallel
        self.timeouts = timeouts
        # Waiting transfers, in the order they were asked for (a dict: removal is O(1)).
        self._queue: dict[int, _Entry] = {}
        self._leader: _Entry | None = None
        self._curls = anyio.CapacityLimiter(_MAX_CURLS)

    async def transfer(self, transfer: Transfer) -> Outcome:
        entry = _Entry(transfer)
        self._queue[id(entry)] = entry
        self._promote()
        try:
            while not entry.done:
                if self._leader is entry:
                    # The leader waits for a curl before it gathers: what queues meanwhile
                    # goes into its batch, instead of a batch of one each behind it.
                    async with self._curls:
                        await self._gather()
                        keys = list(islice(self._queue, _MAX_BATCH))
                        batch = [self._queue.pop(key) for key in keys]
                        self._promote(resigning=entry)
                        await self._run(batch)
                else:
                    await entry.wake.wait()
                    entry.wake = anyio.Event()
        finally:
            if self._queue.pop(id(entry), None) is None and not entry.done:
                entry.abandoned = True  # cancelled while its transfer runs in a batch
            self._promote(resigning=entry)
        if entry.error is not None:
            raise entry.error
        assert entry.outcome is not None
        return entry.outcome

    def _promote(self, resigning: _Entry | None = None) -> None:
        if self._leader is resigning:
            self._leader = None
        if self._leader is None and self._queue:
            self._leader = next(iter(self._queue.values()))
            self._leader.wake.set()

    async def _gather(self) -> None:
        deadline = anyio.current_time() + _MAX_GATHER
        count = -1
        while count != len(self._queue) and anyio.current_time() < deadline:
            count = len(self._queue)
            # Two rounds: a caller that was woken by the last one gets to ask too.
            await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()

    async def _run(self, batch: list[_Entry]) -> None:
        def ended(index: int, outcome: Outcome) -> None:
            entry = batch[index]
            entry.outcome, entry.done = outcome, True
            entry.wake.set()

        try:
            await run_batch(
                [entry.transfer for entry in batch],
                parallel=self.parallel,
                timeouts=self.timeouts,
                ended=ended,
            )
        except Exception as exc:
            for entry in batch:
                if not entry.done:
                    entry.error = exc
            raise
        finally:
            for entry in batch:
                if entry.outcome is None and entry.error is None:
                    entry.outcome = Outcome(finished=False, error="the transfer was interrupted")
                entry.done = True
                entry.wake.set()
                if entry.abandoned:
                    # curl creates a file at its first byte: only now can nothing appear after.
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.transfer.path)
