"""Fetching blobs: in parallel under a limit, each verified, small ones batched first.

Each blob is a chain of attempts (``mesos_uri.retry``): download into the store's temporary
file, hashed as the bytes arrive, resumed with a Range after a cut, answered once after a 401,
redirects followed without credentials, foreign URLs tried when the registry lacks the layer;
then the store verifies and renames it. Blobs up to a few MiB first go through one batched curl
(``mesos_uri.docker.batch``), whose outcome is their first attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
import anyio.abc
import attrs

from mesos_uri import curl
from mesos_uri.docker.auth import Token
from mesos_uri.docker.batch import (
    BATCH_MAX_BLOB_BYTES,
    BATCH_MIN_BLOBS,
    Outcome,
    download_small_blobs,
)
from mesos_uri.docker.descriptor import Descriptor
from mesos_uri.docker.session import Session, registry_error_detail
from mesos_uri.errors import CurlError, FetchError, HTTPStatusError, TruncatedResponseError
from mesos_uri.http import REDIRECT_CODES, Headers, Response, status_string
from mesos_uri.progress import BlobObserver
from mesos_uri.retry import run_with_retries
from mesos_uri.store import BlobWriter, Store

__all__ = ["BlobResult", "fetch_blob", "fetch_blobs"]

_log = logging.getLogger(__name__)


@attrs.frozen
class BlobResult:
    digest: str
    size: int
    seconds: float
    downloaded: bool


async def fetch_blobs(
    session: Session,
    store: Store,
    descriptors: list[Descriptor],
    *,
    limiter: anyio.CapacityLimiter,
    observer: BlobObserver | None = None,
) -> tuple[BlobResult, ...]:
    """All blobs, at most ``limiter``'s tokens at once; the first failure cancels the rest
    (kills their curls) and is raised with the original's "Collect failed" (SPEC.md §7.3)."""
    results: dict[int, BlobResult] = {}
    failures: list[FetchError] = []
    positions = {str(d.digest): position for position, d in enumerate(descriptors)}

    async def one(
        descriptor: Descriptor,
        scope: anyio.CancelScope,
        outcome: Outcome | None = None,
        checked: bool = False,
    ) -> None:
        try:
            result = await fetch_blob(
                session, store, descriptor, limiter, observer, outcome, checked=checked
            )
        except FetchError as exc:
            failures.append(exc)
            scope.cancel()
        else:
            results[positions[str(descriptor.digest)]] = result

    async def batch(small: list[Descriptor], group: anyio.abc.TaskGroup) -> None:
        # Large blobs stream meanwhile; each small one then finishes on its own, taking the
        # batch's outcome as its first attempt.
        async with limiter:
            outcomes = await download_small_blobs(
                session, store, small, parallel=int(limiter.total_tokens)
            )
        try:
            for descriptor in small:
                outcome = outcomes.pop(str(descriptor.digest), None)
                group.start_soon(one, descriptor, group.cancel_scope, outcome)
        finally:
            for outcome in outcomes.values():  # only if cancelled before handing them on
                outcome.temp.unlink(missing_ok=True)

    # Small blobs already present are settled here, each hashed once; the rest are missing.
    small: list[Descriptor] = []
    for descriptor in descriptors:
        if 0 <= descriptor.size <= BATCH_MAX_BLOB_BYTES and not descriptor.urls:
            present = await _present(store, descriptor, observer)
            if present is not None:
                results[positions[present.digest]] = present
            else:
                small.append(descriptor)
    batched = small if len(small) >= BATCH_MIN_BLOBS else []
    async with anyio.create_task_group() as group:
        if batched:
            group.start_soon(batch, batched, group)
        for descriptor in descriptors:
            if positions[str(descriptor.digest)] in results or descriptor in batched:
                continue
            group.start_soon(one, descriptor, group.cancel_scope, None, descriptor in small)
    if failures:
        first = failures[0]
        first.args = (f"Collect failed: {first}",)  # the original's text (SPEC.md §7.3)
        raise first
    return tuple(results[position] for position in sorted(results))


async def fetch_blob(
    session: Session,
    store: Store,
    descriptor: Descriptor,
    limiter: anyio.CapacityLimiter,
    observer: BlobObserver | None = None,
    outcome: Outcome | None = None,
    *,
    checked: bool = False,
) -> BlobResult:
    """One blob into ``store``, verified; ``outcome`` is its batched first attempt, if any;
    ``checked``: the caller already found it missing from the store."""
    started = time.monotonic()
    digest = descriptor.digest
    if outcome is None and not checked:
        present = await _present(store, descriptor, observer)
        if present is not None:
            return present
    url = f"{session.registry}/v2/{session.repository}/blobs/{digest}"
    # A batch's partial or complete body is kept; anything else it got is only a status.
    kept = outcome is not None and outcome.result.code == 200
    replay = None if outcome is None else _replay(outcome, url, descriptor, keep=kept)
    async with limiter:
        writer = store.open_blob(
            digest,
            descriptor.size,
            what=f"blob '{digest}'",
            adopt=outcome.temp if outcome is not None and kept else None,
        )
        sink = writer.write if observer is None else _observed(writer, observer)
        if observer is not None:
            observer.started(str(digest), descriptor.size)

        async def attempt(number: int) -> None:
            target, renewed, hops = url, False, 0
            if number == 1 and replay is not None:
                # The batch was this blob's first attempt: its outcome is played back, and
                # a challenge or a redirect it met is followed up here.
                if replay.error is not None:
                    raise replay.error
                if replay.complete:
                    return
                if replay.challenge is not None:
                    await session.authorize(replay.challenge, url, rejected=replay.sent)
                    renewed = True
                if replay.redirect is not None:
                    target, hops = replay.redirect, 1
            # After a transfer broke off, ask only for the bytes still missing.
            response = await session.download(
                target,
                sink,
                restart=writer.restart,
                offset=writer.received,
                renewed=renewed,
                hops=hops,
            )
            if response.code == 404 and descriptor.urls:
                response = await _fetch_foreign(session, descriptor, writer)
            if response.code not in (200, 206):
                raise _blob_status_error(response)

        try:
            await run_with_retries(attempt, policy=session.retry, describe=f"blob {digest}")
            await store.commit(writer)
        except BaseException:
            store.discard(writer)
            raise
    if observer is not None:
        observer.finished(str(digest), downloaded=True)
    _log.info("%s: %s (%d bytes) verified", session.repository, digest, writer.received)
    return BlobResult(str(digest), writer.received, time.monotonic() - started, True)


async def _present(
    store: Store, descriptor: Descriptor, observer: BlobObserver | None
) -> BlobResult | None:
    """The result for a blob already in the store with the right bytes (a retried pull)."""
    started = time.monotonic()
    digest = descriptor.digest
    if not await store.has_verified(digest):
        return None
    if observer is not None:
        observer.finished(str(digest), downloaded=False)
    size = store.path(digest).stat().st_size
    return BlobResult(str(digest), size, time.monotonic() - started, downloaded=False)


def _blob_status_error(response: Response) -> HTTPStatusError:
    return HTTPStatusError(
        f"Unexpected HTTP response '{response.status}' when trying to download "
        f"the blob{registry_error_detail(response)}",
        code=response.code,
        retry_after=response.headers.get("Retry-After"),
    )


@attrs.frozen
class _Replay:
    """A batched transfer's outcome, played back as the blob's first attempt."""

    error: FetchError | None = None
    complete: bool = False
    # A 401 to answer, or a redirect to follow, before the attempt's own request.
    challenge: Response | None = None
    redirect: str | None = None
    sent: Token | None = None


def _replay(outcome: Outcome, url: str, descriptor: Descriptor, *, keep: bool) -> _Replay:
    result = outcome.result
    body = b"" if keep else outcome.temp.read_bytes()[: curl.MAX_ERROR_BODY_BYTES]
    if not keep:
        outcome.temp.unlink(missing_ok=True)
    if result.exit_code != 0:
        message = f"curl: ({result.exit_code}) {result.error}".strip()
        return _Replay(
            CurlError(
                f"Failed to perform 'curl' for '{url}': {message}",
                exit_code=result.exit_code,
                stderr=message,
            )
        )
    if result.code == 200:
        if result.size < descriptor.size:
            # curl 7.88 reports success when the server hangs up inside the header block.
            return _Replay(
                TruncatedResponseError(
                    f"Failed to decode HTTP responses: '{url}' ended after {result.size} of "
                    f"{descriptor.size} bytes"
                )
            )
        return _Replay(complete=True)
    if result.code == 401:
        challenge = (("WWW-Authenticate", result.challenge),) if result.challenge else ()
        response = Response(401, status_string(401), Headers(challenge), body)
        return _Replay(challenge=response, sent=outcome.sent)
    if result.code in REDIRECT_CODES and result.redirect_url:
        return _Replay(redirect=result.redirect_url)
    headers = Headers((("Retry-After", result.retry_after),) if result.retry_after else ())
    return _Replay(
        _blob_status_error(Response(result.code, status_string(result.code), headers, body))
    )


def _observed(writer: BlobWriter, observer: BlobObserver) -> Callable[[bytes], None]:
    digest = str(writer.digest)

    def write(chunk: bytes) -> None:
        writer.write(chunk)
        observer.received(digest, writer.received)

    return write


async def _fetch_foreign(session: Session, descriptor: Descriptor, writer: BlobWriter) -> Response:
    """A non-distributable layer the registry does not serve: try its ``urls`` in order.

    The original did this only on Windows, last URL first, with the registry's credentials
    (SPEC.md §7.4, §9 row 23); here on every platform, in the order given, with none.
    """
    response = Response(404, "404 Not Found")
    for url in descriptor.urls:
        if not url.lower().startswith(("http://", "https://")):
            continue
        writer.restart()
        try:
            response = await session.download(
                url, writer.write, restart=writer.restart, anonymous=True
            )
        except CurlError:
            continue
        if response.code == 200:
            return response
    return response
