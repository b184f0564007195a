"""Small blobs through one curl process: the per-process start-up dominates their fetch.

A curl run costs some 10-20 ms before it sends a byte (loading its TLS and IDN libraries), more
than a 256 KiB layer takes from a registry nearby; 40 such layers as 40 processes spend most of
their time starting curl. Here they go through one ``curl --parallel``; each file is then hashed
and renamed into place only if it verified. Anything that did not end with a verified 200 (a
redirect to storage, a 401, a network error, wrong bytes) is left to the ordinary per-blob path,
so errors, retries and redirects are exactly those of a single download.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import anyio

from mesos_uri import curl
from mesos_uri.docker.descriptor import Descriptor
from mesos_uri.docker.session import Session
from mesos_uri.errors import FetchError
from mesos_uri.store import Store

__all__ = ["BATCH_MAX_BLOB_BYTES", "BATCH_MIN_BLOBS", "fetch_small_blobs"]

_log = logging.getLogger(__name__)

# Blobs up to this size are batched: above it the transfer, not curl's start-up, dominates, and
# a streamed download (hashed and size-checked as it arrives) is the better tool.
BATCH_MAX_BLOB_BYTES: Final = 4 * 1024 * 1024
# Fewer blobs than this gain nothing from sharing one process.
BATCH_MIN_BLOBS: Final = 3


async def fetch_small_blobs(
    session: Session, store: Store, descriptors: Sequence[Descriptor], *, parallel: int
) -> set[str]:
    """Fetch what it can of ``descriptors`` through one curl; returns the digests now in place."""
    if len(descriptors) < BATCH_MIN_BLOBS:
        return set()
    temps = {str(d.digest): store.temp_path(str(d.digest)) for d in descriptors}
    urls = {f"{session.registry}/v2/{session.repository}/blobs/{d.digest}": d for d in descriptors}
    placed: set[str] = set()
    try:
        results = await curl.download_batch(
            [curl.Transfer(url, str(temps[str(d.digest)])) for url, d in urls.items()],
            parallel=parallel,
            headers=session.auth_headers(),
            stall_timeout=session.stall_timeout,
            connect_timeout=session.connect_timeout,
            tls=session.tls_for(session.registry),
        )

        async def place(descriptor: Descriptor) -> None:
            digest = str(descriptor.digest)
            if await store.place_verified(temps[digest], descriptor.digest, descriptor.size):
                placed.add(digest)

        # At once: concurrent fsyncs share the file system's journal commits.
        async with anyio.create_task_group() as group:
            for result in results:
                descriptor = urls.get(result.url)
                if descriptor is not None and result.exit_code == 0 and result.code == 200:
                    group.start_soon(place, descriptor)
    except FetchError as exc:
        # The per-blob path will meet the same problem and report it exactly.
        _log.info("batched download failed, falling back to single downloads: %s", exc)
    finally:
        for digest, temp in temps.items():
            if digest not in placed:
                temp.unlink(missing_ok=True)
    return placed
