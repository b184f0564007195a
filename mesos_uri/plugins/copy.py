"""The copy plugin: ``file://`` URIs copied into the directory with ``cp -a`` (SPEC.md §4.5)."""

from __future__ import annotations

import os
import posixpath
import subprocess
from typing import Final

import anyio

from mesos_uri.errors import FetchError, UsageError, excerpt
from mesos_uri.fetcher import FetchSummary
from mesos_uri.store import Store
from mesos_uri.uri import URI

__all__ = ["CopyFetcherPlugin"]


class CopyFetcherPlugin:
    name: Final = "copy"
    schemes: Final = ("file",)

    async def fetch(
        self,
        uri: URI,
        directory: str | os.PathLike[str],
        data: str | None = None,
        output_file_name: str | None = None,
    ) -> FetchSummary:
        store = Store(directory)
        try:
            await self._fetch(uri, store)
        except FetchError as exc:
            exc.uri = uri.redacted()
            store.remove_if_empty()
            raise
        return FetchSummary(uri.redacted())

    async def _fetch(self, uri: URI, store: Store) -> None:
        if not uri.path:
            raise UsageError("URI path is not specified")
        name = posixpath.basename(uri.path.rstrip("/"))
        if name in ("", ".", "..") or "\0" in name:
            raise UsageError(f"Cannot name a file '{excerpt(name)}' after the URI's path")
        store.create()
        # Copy beside the target and rename, so the name never holds a half-copied file.
        temp = store.temp(name)
        temp.unlink()
        try:
            try:
                result = await anyio.run_process(
                    ["cp", "-a", "--", uri.path, str(temp)],
                    check=False,
                    stdin=subprocess.DEVNULL,
                )
            except OSError as exc:
                raise FetchError(f"Failed to exec the copy subprocess: {exc}") from exc
            if result.returncode != 0:
                stderr = excerpt(result.stderr.decode(errors="replace"))
                raise FetchError(f"Failed to perform 'copy': {stderr}")
            try:
                os.replace(temp, store.path(name))
            except OSError as exc:
                raise FetchError(
                    f"Failed to move '{excerpt(name)}' into '{store.directory}': "
                    f"{exc.strerror or exc}"
                ) from exc
        except BaseException:
            if temp.is_dir() and not temp.is_symlink():
                await anyio.run_process(["rm", "-rf", "--", str(temp)], check=False)
            else:
                temp.unlink(missing_ok=True)
            raise
