"""The plugins that fetch one file: ``http(s)``/``ftp(s)`` URIs through curl, ``file`` URIs
copied with ``cp -a``; each into ``DIR/<basename>``.

As the original, with the docker plugin's care added: curl speaks only the scheme asked for,
redirects are followed (to http or https only) by the one rule of :mod:`mesos_uri._urls`, the
file appears under its name only once it is complete, a cancelled fetch kills its child, and a
directory the fetch made is removed again when it fails.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import subprocess
from typing import Final

import anyio

from mesos_uri._curl import WEB_PROTOCOLS, Timeouts
from mesos_uri._store import Store
from mesos_uri._transfers import Transfer, run_batch
from mesos_uri._uri import URI
from mesos_uri._urls import REDIRECT_CODES, follow_redirect, redact_url
from mesos_uri.errors import FetchError, HTTPStatusError, UsageError, excerpt
from mesos_uri.fetcher import FetchSummary

__all__ = ["CopyFetcherPlugin", "CurlFetcherPlugin"]


def _file_name(uri: URI, given: str | None = None) -> str:
    # stout's basename: the last component, trailing '/' ignored.
    name = given or posixpath.basename(uri.path.rstrip("/"))
    if name in ("", ".", "/", "..") or "/" in name or "\0" in name:
        raise UsageError(f"Cannot name a file '{excerpt(name)}' after the URI's path")
    return name


class _Plugin:
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
        raise NotImplementedError


class CurlFetcherPlugin(_Plugin):
    name: Final = "curl"
    schemes: Final = ("http", "https", "ftp", "ftps")

    def __init__(self, *, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts or Timeouts()

    async def _fetch(self, uri: URI, store: Store, output_file_name: str | None) -> None:
        if uri.scheme not in self.schemes:
            raise UsageError(f"Curl fetcher plugin does not support '{uri.scheme}' URI scheme")
        name = _file_name(uri, output_file_name)
        store.create()
        temp = store.temp_name(name)
        try:
            await self._download(str(uri).strip(), uri.scheme, store, temp)
            await store.commit(temp, name)
        finally:
            store.discard(temp)

    async def _download(self, url: str, scheme: str, store: Store, temp: str) -> None:
        # FTP has no HTTP status and no redirects: curl's exit status says it all.
        protocols = WEB_PROTOCOLS if scheme.startswith("http") else scheme
        for hops in itertools.count():
            store.discard(temp)  # curl creates it afresh at the first byte
            [outcome] = await run_batch(
                [Transfer(url, temp, protocols=protocols)], parallel=1, timeouts=self.timeouts
            )
            if outcome.exit_code != 0 or not outcome.finished:
                raise outcome.curl_error(url)
            if protocols != WEB_PROTOCOLS:
                return
            if outcome.code not in REDIRECT_CODES or not outcome.redirect_url:
                break
            # No credentials go along: the userinfo of the URI is not in the Location.
            url = follow_redirect(url, outcome.redirect_url, hops=hops, allow_downgrade=True)
        if outcome.code != 200:
            # The original's text, with its status string.
            raise HTTPStatusError(
                f"Unexpected HTTP response code for '{redact_url(url)}': {outcome.status}",
                code=outcome.code,
            )


class CopyFetcherPlugin(_Plugin):
    name: Final = "copy"
    schemes: Final = ("file",)

    async def _fetch(self, uri: URI, store: Store, output_file_name: str | None) -> None:
        if not uri.path:
            raise UsageError("URI path is not specified")
        name = _file_name(uri)
        store.create()
        # Copy beside the target and rename, so the name never holds a half-copied file.
        temp = store.temp_name(name)
        try:
            await _copy(uri.path, temp)
            os.replace(temp, store.path(name))
        except OSError as exc:
            raise store.failed(f"move '{excerpt(name)}' into", exc.strerror or exc) from exc
        finally:
            # A copy may leave a whole tree, cancelled or not. One lstat is not worth a thread:
            # the copy is over.
            with anyio.CancelScope(shield=True):
                if os.path.lexists(temp):  # noqa: ASYNC240
                    await anyio.run_process(["rm", "-rf", "--", temp], check=False)


async def _copy(source: str, target: str) -> None:
    try:
        result = await anyio.run_process(
            ["cp", "-a", "--", source, target], check=False, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        raise FetchError(f"Failed to exec the copy subprocess: {exc}") from exc
    if result.returncode != 0:
        stderr = excerpt(result.stderr.decode(errors="replace"))
        raise FetchError(f"Failed to perform 'copy': {stderr}")
