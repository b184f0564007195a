"""Small blobs through one curl process: the per-process start-up dominates their fetch.

A curl run costs some 10-20 ms before it sends a byte (loading its TLS and IDN libraries), more
than a 256 KiB layer takes from a registry nearby; 40 such layers as 40 processes spend most of
their time starting curl. Here they go through one ``curl --parallel`` into temporary files, and
each outcome becomes the *first attempt* of that blob's ordinary download: a complete body is
verified and renamed as any other, a cut one is resumed with a Range request, an error counts
against the retry budget with its ``Retry-After``, and a 401 or a redirect to storage is answered
by the single-blob path, which knows challenges and where credentials may go.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs

from mesos_uri import curl
from mesos_uri.docker.auth import Token
from mesos_uri.docker.descriptor import Descriptor
from mesos_uri.docker.session import Session
from mesos_uri.errors import FetchError
from mesos_uri.store import Store

__all__ = ["BATCH_MAX_BLOB_BYTES", "BATCH_MIN_BLOBS", "Outcome", "download_small_blobs"]

_log = logging.getLogger(__name__)

# Blobs up to this size are batched: above it the transfer, not curl's start-up, dominates, and
# a streamed download (hashed and size-checked as it arrives) is the better tool.
BATCH_MAX_BLOB_BYTES: Final = 4 * 1024 * 1024
# Fewer blobs than this gain nothing from sharing one process.
BATCH_MIN_BLOBS: Final = 3


@attrs.frozen
class Outcome:
    """How a blob's batched transfer ended, and the temporary file holding what it received."""

    result: curl.TransferResult
    temp: Path
    # The token the batch was sent with: a 401 rejects this one, not one renewed since.
    sent: Token | None = None


async def download_small_blobs(
    session: Session, store: Store, descriptors: Sequence[Descriptor], *, parallel: int
) -> dict[str, Outcome]:
    """One curl for all ``descriptors``; the outcome of each transfer that finished, by digest.

    The caller owns the temporary files of the outcomes returned; the others are removed here.
    """
    temps = {str(d.digest): store.temp_path(str(d.digest)) for d in descriptors}
    urls = {f"{session.registry}/v2/{session.repository}/blobs/{d.digest}": d for d in descriptors}
    outcomes: dict[str, Outcome] = {}
    results: list[curl.TransferResult] = []
    sent = session.tokens.cached_for(session.registry, session.repository)
    try:
        results = await curl.download_batch(
            [curl.Transfer(url, str(temps[str(d.digest)])) for url, d in urls.items()],
            parallel=parallel,
            headers=session.auth_headers(),
            stall_timeout=session.stall_timeout,
            connect_timeout=session.connect_timeout,
            tls=session.tls_for(session.registry),
        )
    except FetchError as exc:
        # Every blob then makes its first attempt on its own, and meets the problem exactly.
        _log.info("batched download failed, fetching one by one: %s", exc)
    finally:
        for result in results:
            descriptor = urls.get(result.url)
            if descriptor is not None:
                digest = str(descriptor.digest)
                outcomes[digest] = Outcome(result, temps[digest], sent)
        for digest, temp in temps.items():
            if digest not in outcomes:
                temp.unlink(missing_ok=True)
    return outcomes
