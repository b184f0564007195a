"""The curl plugin: ``http``, ``https``, ``ftp`` and ``ftps`` URIs to ``DIR/<basename>``.

As the original (SPEC.md §4.4), with the docker plugin's care added: the file appears under its
name only once the transfer succeeded, and a cancelled fetch kills its curl.
"""

from __future__ import annotations

import os
import posixpath
from typing import Final

from mesos_uri import curl
from mesos_uri.docker.plugin import FetchSummary
from mesos_uri.docker.session import MAX_REDIRECTS
from mesos_uri.errors import HTTPStatusError, UsageError, failing_fetch_of
from mesos_uri.http import REDIRECT_CODES, status_string
from mesos_uri.store import Store
from mesos_uri.uri import URI

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

    def __init__(self, *, stall_timeout: float | None = None) -> None:
        self.stall_timeout = stall_timeout

    async def fetch(
        self,
        uri: URI,
        directory: str | os.PathLike[str],
        data: str | None = None,
        output_file_name: str | None = None,
    ) -> FetchSummary:
        with failing_fetch_of(uri.redacted()):
            await self._fetch(uri, Store(directory), output_file_name)
        return FetchSummary(uri.redacted())

    async def _fetch(self, uri: URI, store: Store, output_file_name: str | None) -> None:
        if uri.scheme not in self.schemes:
            raise UsageError(f"Curl fetcher plugin does not support '{uri.scheme}' URI scheme")
        store.create()
        name = output_file_name or _basename(uri.path)
        if name in (".", "/", "..") or "/" in name:
            raise UsageError(f"Cannot name a file '{name}' after the URI's path")
        temp = store.temp_path(name)
        try:
            if uri.scheme.startswith("ftp"):
                # FTP has no HTTP status: curl's exit status says it all (SPEC.md §9 row 25).
                await curl.fetch_to_file(
                    str(uri).strip(), str(temp), stall_timeout=self.stall_timeout
                )
                store.place(temp, name)
                return
            with temp.open("wb") as handle:
                code = await self._download(str(uri).strip(), handle.write)
            if code != 200:
                # The original's text, with Status::string(code) (SPEC.md §4.4).
                raise HTTPStatusError(
                    f"Unexpected HTTP response code for '{uri}': {status_string(code)}", code=code
                )
            store.place(temp, name)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    async def _download(self, url: str, write: curl.Sink) -> int:
        for _ in range(MAX_REDIRECTS + 1):
            result = await curl.download(url, write, stall_timeout=self.stall_timeout)
            if result.response.code in REDIRECT_CODES and result.redirect_url:
                url = result.redirect_url
                continue
            return result.response.code
        raise HTTPStatusError(f"Too many redirects (more than {MAX_REDIRECTS})", code=0)
