"""The copy plugin: ``file://`` URIs copied into the directory with ``cp -a`` (SPEC.md §4.5)."""

from __future__ import annotations

import os
import posixpath
import subprocess
from typing import Final

import anyio

from mesos_uri.docker.plugin import FetchSummary
from mesos_uri.errors import FetchError, UsageError, failing_fetch_of
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
        with failing_fetch_of(uri.redacted()):
            await self._fetch(uri, Store(directory))
        return FetchSummary(uri.redacted())

    async def _fetch(self, uri: URI, store: Store) -> None:
        if not uri.path:
            raise UsageError("URI path is not specified")
        store.create()
        name = posixpath.basename(uri.path.rstrip("/")) or "/"
        # Copy beside the target and rename, so the name never holds a half-copied file.
        temp = store.temp_path(name)
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
                stderr = result.stderr.decode(errors="replace")
                raise FetchError(f"Failed to perform 'copy': {stderr}")
            store.place(temp, name)
        except BaseException:
            if temp.is_dir() and not temp.is_symlink():
                await anyio.run_process(["rm", "-rf", "--", str(temp)], check=False)
            else:
                temp.unlink(missing_ok=True)
            raise
