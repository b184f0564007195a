"""The URI fetcher facade: plugins registered by name and by scheme (SPEC.md §2.5).

``create()`` builds the fetcher the agent uses; one ``Fetcher`` is safe to share between
concurrent fetches (the agent fetches a manifest, then every blob at once, through one object).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from typing import Protocol

import attrs

from mesos_uri.docker import config as docker_config
from mesos_uri.docker.endpoints import Endpoints
from mesos_uri.docker.platform import Platform
from mesos_uri.docker.plugin import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_JOBS,
    DockerFetcherPlugin,
    DockerOptions,
    FetchSummary,
)
from mesos_uri.errors import FetchError, UsageError
from mesos_uri.flags import parse_json_object_flag
from mesos_uri.plugins.copy import CopyFetcherPlugin
from mesos_uri.plugins.curl import CurlFetcherPlugin
from mesos_uri.progress import BlobObserver
from mesos_uri.retry import DEFAULT_RETRIES
from mesos_uri.uri import URI, parse_uri

__all__ = ["Fetcher", "Flags", "Plugin", "create"]

_log = logging.getLogger(__name__)


class Plugin(Protocol):
    """What the facade needs of a plugin."""

    @property
    def name(self) -> str: ...

    @property
    def schemes(self) -> tuple[str, ...]: ...

    async def fetch(
        self,
        uri: URI,
        directory: str | os.PathLike[str],
        data: str | None = None,
        output_file_name: str | None = None,
    ) -> FetchSummary: ...


@attrs.frozen
class Flags:
    """The fetcher's flags (SPEC.md §3) and ours; durations are in seconds.

    ``docker_config`` is the JSON text, a path starting with ``/``, or ``file://path``.
    """

    docker_config: str | None = None
    docker_stall_timeout: float | None = None
    curl_stall_timeout: float | None = None
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT
    jobs: int = DEFAULT_JOBS
    platform: Platform | None = None
    retries: int = DEFAULT_RETRIES
    # Mirrors, CA bundles, client certificates, insecure registries.
    endpoints: Endpoints = attrs.Factory(Endpoints)
    # Told about every blob as it downloads (the CLI's progress display).
    observer: BlobObserver | None = attrs.field(default=None, eq=False)


class Fetcher:
    def __init__(self, plugins: Iterable[Plugin]) -> None:
        self._by_name: dict[str, Plugin] = {}
        self._by_scheme: dict[str, Plugin] = {}
        for plugin in plugins:
            self.register(plugin)

    def register(self, plugin: Plugin) -> None:
        # A duplicate replaces the earlier one, with a warning, as in the original.
        if plugin.name in self._by_name:
            _log.warning("Overwriting URI fetcher plugin '%s'", plugin.name)
        self._by_name[plugin.name] = plugin
        for scheme in plugin.schemes:
            if scheme in self._by_scheme:
                _log.warning("Overwriting URI fetcher plugin for scheme '%s'", scheme)
            self._by_scheme[scheme] = plugin

    def plugin(self, name: str) -> Plugin:
        try:
            return self._by_name[name]
        except KeyError:
            raise UsageError(f"Plugin  '{name}' is not registered.") from None

    def plugin_for(self, uri: URI) -> Plugin:
        """The plugin registered for ``uri``'s scheme (SPEC.md §2.5)."""
        found = self._by_scheme.get(uri.scheme)
        if found is None:
            raise UsageError(
                f"Failed to fetch '{uri.redacted()}': Scheme '{uri.scheme}' is not supported"
            )
        return found

    async def fetch(
        self,
        uri: URI | str,
        directory: str | os.PathLike[str],
        data: str | None = None,
        output_file_name: str | None = None,
        *,
        plugin: str | None = None,
    ) -> FetchSummary:
        """Fetch by scheme, or by plugin name; ``uri`` may be a URI or its CLI string form."""
        parsed = parse_uri(uri) if isinstance(uri, str) else uri
        chosen = self.plugin(plugin) if plugin is not None else self.plugin_for(parsed)
        return await chosen.fetch(parsed, directory, data, output_file_name)


def create(flags: Flags | None = None) -> Fetcher:
    """The default fetcher: the curl, copy and docker plugins (hadoop is not ported).

    Unlike the original, an invalid ``docker_config`` is an error here rather than a silently
    missing plugin (SPEC.md §2.5): an agent that asked for credentials should not pull without.
    """
    flags = flags or Flags()
    default_config = None
    if flags.docker_config is not None:
        try:
            text = json.dumps(parse_json_object_flag(flags.docker_config))
            default_config = docker_config.parse_auth_config(text)
        except FetchError as exc:
            raise UsageError(f"Failed to parse docker config: {exc}") from exc
    docker = DockerFetcherPlugin(
        DockerOptions(
            docker_config=default_config,
            stall_timeout=flags.docker_stall_timeout,
            connect_timeout=flags.connect_timeout,
            jobs=flags.jobs,
            platform=flags.platform,
            retries=flags.retries,
            observer=flags.observer,
            endpoints=flags.endpoints,
        )
    )
    return Fetcher(
        [
            CurlFetcherPlugin(stall_timeout=flags.curl_stall_timeout),
            CopyFetcherPlugin(),
            docker,
        ]
    )
