"""Fetching blobs: each verified before it gets its name, those asked for together in one curl.

A blob's download is a chain of attempts (:mod:`mesos_uri._retry`). One attempt follows the
blob's URL through redirects (to storage, without credentials), answers one 401 with a renewed
token, tries a foreign layer's own URLs when the registry lacks it, and resumes with a Range
where an earlier attempt was cut off. Every request of an attempt is a transfer of the plugin's
:class:`~mesos_uri._transfers.Batcher`, so the requests blobs make at about the same time (the
first of every blob of an image, the retries after a network failure) share one curl, and the
batch hashes each body as curl writes it into the blob's temporary file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import anyio
import attrs

from mesos_uri._docker.descriptor import Descriptor
from mesos_uri._docker.digest import Digest
from mesos_uri._docker.session import Session, status_error
from mesos_uri._http import Response
from mesos_uri._retry import run_with_retries
from mesos_uri._store import Store
from mesos_uri._transfers import FILESIZE_EXCEEDED, Hasher, Outcome, Transfer
from mesos_uri._urls import REDIRECT_CODES, WEB_SCHEMES, follow_redirect, redact_url, same_origin
from mesos_uri.errors import (
    BlobSizeError,
    DecodeError,
    FetchError,
    TransferInterruptedError,
    TruncatedResponseError,
    excerpt,
)
from mesos_uri.fetcher import BlobResult

__all__ = ["fetch_blob", "fetch_blobs", "together"]

_log = logging.getLogger(__name__)

# Blobs on their way at once; the curls among them run at most --jobs transfers each.
_MAX_IN_FLIGHT: Final = 512
# A registry's JSON error body is small; more than this is not worth reading for a message.
_MAX_ERROR_BODY: Final = 64 * 1024
# curl could not write: its exit code for that, and death by the file size limit.
_WRITE_FAILURES: Final = frozenset({23, -signal.SIGXFSZ})


async def fetch_blobs(
    session: Session, store: Store, descriptors: list[Descriptor]
) -> tuple[BlobResult, ...]:
    """All blobs, in the descriptors' order; the first failure cancels the rest (kills their
    curls) and is raised as the one that ended the fetch ("Collect failed")."""
    results: dict[int, BlobResult] = {}
    planned = iter(enumerate(descriptors))

    async def worker() -> None:
        for position, descriptor in planned:
            results[position] = await fetch_blob(session, store, descriptor)

    # A task per blob up to a bound: an image of thousands of layers would otherwise keep the
    # event loop busy with waiting tasks while the first transfers should start.
    try:
        await together(*[worker] * min(len(descriptors), _MAX_IN_FLIGHT))
    except FetchError as exc:
        exc.collected = True
        raise
    return tuple(results[position] for position in range(len(descriptors)))


async def together(*steps: Callable[[], Awaitable[None]]) -> None:
    """Run ``steps`` at once; the first failure stops the others and is raised as it is."""
    failures: list[FetchError] = []

    async def run(step: Callable[[], Awaitable[None]], scope: anyio.CancelScope) -> None:
        try:
            await step()
        except FetchError as exc:
            failures.append(exc)
            scope.cancel()

    async with anyio.create_task_group() as group:
        for step in steps:
            group.start_soon(run, step, group.cancel_scope)
    if failures:
        raise failures[0]


async def fetch_blob(session: Session, store: Store, descriptor: Descriptor) -> BlobResult:
    """One blob into ``store``, verified; one already there is only checked."""
    started = time.monotonic()
    digest = str(descriptor.digest)
    size = await _present(store, descriptor.digest)
    downloaded = size is None
    if size is None:
        size = await _Download(session, store, descriptor).run()
    if session.observer is not None:
        session.observer.finished(digest, downloaded=downloaded)
    done = "verified" if downloaded else "already present"
    _log.info("%s: %s (%d bytes) %s", session.repository, digest, size, done)
    return BlobResult(digest, size, time.monotonic() - started, downloaded=downloaded)


async def _present(store: Store, digest: Digest) -> int | None:
    """The size of a blob already in the store with the right bytes (a retried pull): trusted
    when this program committed it, hashed otherwise."""
    name = str(digest)
    size = store.committed(name)
    if size is None and store.holds(name):
        size = await anyio.to_thread.run_sync(_matching_size, store.path(name), digest)
        if size is not None:
            store.mark(name)
    return size


def _matching_size(path: Path, digest: Digest) -> int | None:
    """The size of the file at ``path`` if its bytes hash to ``digest``."""
    try:
        hasher = _hash_file(path, digest)
        size = os.path.getsize(path)
    except OSError:
        return None
    return size if hasher.hexdigest() == digest.encoded else None


class _Download:
    """One blob on its way into its temporary file: the bytes that are there, and their hash.

    The first request of a blob writes into the temporary file itself. A request that resumes
    after a cut asks for the rest with a Range and writes into a part file: a 206 that starts
    where we stopped is appended, a 200 (a server that ignores ranges) is the whole blob again
    and replaces it, anything else is not the blob and is thrown away.
    """

    def __init__(self, session: Session, store: Store, descriptor: Descriptor) -> None:
        self.session = session
        self.store = store
        self.descriptor = descriptor
        self.digest = descriptor.digest
        self.what = f"blob '{self.digest}'"
        # Made before the temporary file: an unknown algorithm fails with nothing to clean.
        self.hasher = self.digest.hasher()
        self.temp = store.temp_name(str(self.digest))
        # The bytes in the file that belong to the blob, and the hash of exactly those.
        self.offset = 0
        self._kept = self.hasher.copy()

    async def run(self) -> int:
        """Download, verify and commit the blob; its size."""
        size = self.descriptor.size
        if self.session.observer is not None:
            self.session.observer.started(str(self.digest), size)
        try:
            await run_with_retries(
                self.attempt, policy=self.session.retry, describe=f"blob {self.digest}"
            )
            if 0 <= size != self.offset:
                raise BlobSizeError(
                    f"{self.what} has {self.offset} bytes but its manifest declares {size}"
                )
            self.digest.verify(self.hasher, what=self.what)
            await self.store.commit(self.temp, str(self.digest), verified=True)
        finally:
            self.store.discard(self.temp)
        return self.offset

    async def attempt(self, number: int) -> None:
        url = f"{self.session.registry}/v2/{self.session.repository}/blobs/{self.digest}"
        foreign = iter(url for url in self.descriptor.urls if _is_web_url(url))
        anonymous = renewed = False
        hops = 0
        while True:
            sent = self.session.token()
            outcome, body = await self._request(url, anonymous=anonymous)
            if outcome.exit_code == FILESIZE_EXCEEDED and outcome.code not in (200, 206):
                # An error page or redirect announced more bytes than the blob has: we did not
                # take them, but its status counts.
                outcome = attrs.evolve(outcome, exit_code=0, oversize=False)
            if outcome.oversize:
                size = self.descriptor.size
                bound = (
                    f"the {size} bytes its manifest declares"
                    if size >= 0
                    else f"--max_blob_size={self.session.max_blob_size}"
                )
                raise BlobSizeError(f"{self.what} is larger than {bound}")
            if outcome.exit_code in _WRITE_FAILURES:
                raise self.store.write_error(self.what, outcome.exit_code, outcome.error)
            if not outcome.finished:
                raise TransferInterruptedError(
                    f"curl ended before '{redact_url(url)}' was downloaded"
                    + (f": {outcome.error}" if outcome.error else ""),
                    exit_code=outcome.exit_code,
                )
            if outcome.exit_code != 0:
                if anonymous and (next_url := next(foreign, None)) is not None:
                    url, hops = next_url, 0
                    continue
                raise outcome.curl_error(url)
            code = outcome.code
            if code in (200, 206):
                if self.offset < self.descriptor.size:
                    # The server hung up without saying how long the body was; resume the rest.
                    raise TruncatedResponseError(
                        f"Failed to decode HTTP responses: '{redact_url(url)}' ended after "
                        f"{self.offset} of {self.descriptor.size} bytes"
                    )
                return
            if (
                code == 401
                and not (anonymous or renewed)
                and same_origin(url, self.session.registry)
            ):
                await self.session.authorize(
                    Response(401, outcome.status, outcome.headers), url, rejected=sent
                )
                renewed = True
                continue
            if code in REDIRECT_CODES and outcome.redirect_url:
                url = follow_redirect(
                    url, outcome.redirect_url, hops=hops, allow_downgrade=self.session.insecure
                )
                hops += 1
                continue
            if (code == 404 or anonymous) and (next_url := next(foreign, None)) is not None:
                # A non-distributable layer the registry does not serve: its own URLs, in
                # order, with no credentials (they are not the registry's).
                url, hops, anonymous = next_url, 0, True
                continue
            raise status_error(outcome, "download the blob", body)

    async def _request(self, url: str, *, anonymous: bool) -> tuple[Outcome, bytes]:
        """One request for the blob: what it ended with, and the start of an error body. What
        a 200/206 brought is kept (a cut one is resumed by the next request)."""
        headers = {} if anonymous else self.session.auth_headers(url)
        resumed = self.offset > 0
        target = self.store.temp_name(f"{self.digest}.part") if resumed else self.temp
        if resumed:
            headers["Range"] = f"bytes={self.offset}-"
        size = self.descriptor.size
        try:
            outcome = await self.session.batcher.transfer(
                Transfer(
                    url,
                    target,
                    headers=headers,
                    limit=size if size >= 0 else self.session.max_blob_size,
                    hasher=self.hasher,
                    tls=self.session.tls(url),
                    progress=self._progress if self.session.observer is not None else None,
                    writeback=self.store.durable,
                )
            )
            if outcome.finished and outcome.code in (200, 206):
                await self._keep(url, outcome, target)
                return outcome, b""
            body = _read_start(target, outcome.size) if outcome.finished else b""
            self._rewind()
            return outcome, body
        finally:
            if resumed:
                self.store.discard(target)

    def _progress(self, total: int) -> None:
        assert self.session.observer is not None
        self.session.observer.received(str(self.digest), self.offset + total)

    async def _keep(self, url: str, outcome: Outcome, target: str) -> None:
        if target == self.temp:
            self.offset = outcome.size
        elif outcome.code == 206:
            value = outcome.headers.get("content-range") or ""
            unit, _, spec = value.partition(" ")
            start = spec.partition("-")[0]
            if unit.strip().lower() != "bytes" or not start.isdigit() or int(start) != self.offset:
                self._rewind()
                raise DecodeError(
                    f"Resuming '{redact_url(url)}' at byte {self.offset} got "
                    f"'Content-Range: {excerpt(value, 100)}' instead"
                )
            await anyio.to_thread.run_sync(_append, target, self.temp)
            self.offset += outcome.size
        else:
            # A 200 to a Range request: the server sent the whole blob again. Its bytes went
            # into the hash on top of the old ones, so it is hashed afresh.
            os.replace(target, self.temp)
            self.offset = outcome.size
            self.hasher = await anyio.to_thread.run_sync(_hash_file, self.temp, self.digest)
        self._kept = self.hasher.copy()

    def _rewind(self) -> None:
        """Cut the file back to the blob's bytes, and the hash with it."""
        with contextlib.suppress(FileNotFoundError):  # curl creates it at the first byte
            os.truncate(self.temp, self.offset)
        self.hasher = self._kept.copy()


def _read_start(path: str, size: int) -> bytes:
    """The start of what an error response wrote (a registry's JSON error), for its text."""
    try:
        with open(path, "rb") as handle:
            return handle.read(min(size, _MAX_ERROR_BODY))
    except FileNotFoundError:
        return b""


def _append(part: str, whole: str) -> None:
    with open(part, "rb") as source, open(whole, "ab") as target:
        shutil.copyfileobj(source, target, 1024 * 1024)


def _hash_file(path: str | Path, digest: Digest) -> Hasher:
    hasher = digest.hasher()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            hasher.update(chunk)
    return hasher


def _is_web_url(url: str) -> bool:
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() in WEB_SCHEMES
