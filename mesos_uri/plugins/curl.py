"""The curl plugin: ``http``, ``https``, ``ftp`` and ``ftps`` URIs to ``DIR/<basename>``.

As the original, with the docker plugin's care added: curl speaks only the scheme asked for,
redirects are followed (to http or https only) by the one rule of :mod:`mesos_uri.urls`, the
file appears under its name only once the transfer succeeded, and a cancelled fetch kills its
curl.
"""

from __future__ import annotations

import os
import posixpath
from typing import Final

from mesos_uri.curl import Timeouts
from mesos_uri.errors import CurlError, FetchError, HTTPStatusError, UsageError, excerpt
from mesos_uri.fetcher import FetchSummary
from mesos_uri.http import status_string
from mesos_uri.store import Store
from mesos_uri.transfers import Transfer, run_batch
from mesos_uri.uri import URI
from mesos_uri.urls import REDIRECT_CODES, follow_redirect, redact_url

__all__ = ["CurlFetcherPlugin"]


def _basename(path: str) -> str:
    """stout's ``Path::basename``: last component ignoring trailing ``/``; ``""`` → ``.``."""
    if path.startswith("file://"):
        path = path[len("file://") :]
    if not path:
        return "."
    stripped = path.rstrip("/")
    return posixpath.basename(stripped) if stripped else "/"


class CurlFetcherPlugin:
    name: Final = "curl"
    schemes: Final = ("http", "https", "ftp", "ftps")

    def __init__(self, *, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts or Timeouts()

    async def fetch(
        self,
        uri: URI,
        directory: str | os.PathLike[str],
        data: str | None = None,
        output_file_name: str | None = None,
    ) -> FetchSummary:
        store = Store(directory)
        try:
            await self._fetch(uri, store, output_file_name)
        except FetchError as exc:
            exc.uri = uri.redacted()
            store.remove_if_empty()
            raise
        return FetchSummary(uri.redacted())

    async def _fetch(self, uri: URI, store: Store, output_file_name: str | None) -> None:
        if uri.scheme not in self.schemes:
            raise UsageError(f"Curl fetcher plugin does not support '{uri.scheme}' URI scheme")
        name = output_file_name or _basename(uri.path)
        if name in (".", "/", "..") or "/" in name or "\0" in name:
            raise UsageError(f"Cannot name a file '{excerpt(name)}' after the URI's path")
        store.create()
        temp = store.temp_name(name)
        try:
            await self._download(str(uri).strip(), uri.scheme, store, temp)
            await store.commit(temp, name)
        finally:
            store.discard(temp)

    async def _download(self, url: str, scheme: str, store: Store, temp: str) -> None:
        # FTP has no HTTP status and no redirects: curl's exit status says it all.
        protocols = scheme if scheme.startswith("ftp") else "http,https"
        hops = 0
        while True:
            store.discard(temp)  # curl creates it afresh at the first byte
            [outcome] = await run_batch(
                [Transfer(url, temp, protocols=protocols)],
                parallel=1,
                timeouts=self.timeouts,
            )
            if outcome.exit_code != 0 or not outcome.finished:
                raise CurlError(
                    f"Failed to perform 'curl' for '{redact_url(url)}': "
                    f"curl: ({outcome.exit_code}) {outcome.error}",
                    exit_code=outcome.exit_code,
                    stderr=outcome.error,
                )
            if protocols != "http,https":
                return
            if outcome.code in REDIRECT_CODES and outcome.redirect_url:
                # No credentials go along: the userinfo of the URI is not in the Location.
                url = follow_redirect(url, outcome.redirect_url, hops=hops, allow_downgrade=True)
                hops += 1
                continue
            if outcome.code != 200:
                # The original's text, with Status::string(code).
                raise HTTPStatusError(
                    f"Unexpected HTTP response code for '{redact_url(url)}': "
                    f"{status_string(outcome.code)}",
                    code=outcome.code,
                )
            return
