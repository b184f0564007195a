"""The URI fetcher facade: plugins registered by name and by scheme.

``create()`` builds the fetcher the agent uses; one ``Fetcher`` is safe to share between
concurrent fetches (the agent fetches a manifest, then every blob at once, through one object).
The plugins are imported when ``create()`` builds them, so that importing the facade costs
little.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from mesos_uri._curl import DEFAULT_CONNECT_TIMEOUT, DEFAULT_STALL_TIMEOUT, Timeouts
from mesos_uri._docker import DEFAULT_REGISTRY_URL
from mesos_uri._retry import DEFAULT_RETRIES
from mesos_uri._uri import URI, parse_uri
from mesos_uri.errors import UsageError

if TYPE_CHECKING:
    from mesos_uri._docker.endpoints import Endpoints
    from mesos_uri._docker.platform import Platform
    from mesos_uri._progress import BlobObserver

__all__ = ["DEFAULT_JOBS", "BlobResult", "FetchSummary", "Fetcher", "Flags", "Plugin", "create"]

_log = logging.getLogger(__name__)

# Parallel blob downloads: measured in BENCHMARKS.md; beyond this a 2-core node gains nothing
# and a registry starts to see us as a burst.
DEFAULT_JOBS = 8


@attrs.frozen
class BlobResult:
    """One blob of a fetch: its size, how long it took, and whether it had to be downloaded."""

    digest: str
    size: int
    seconds: float
    downloaded: bool


@attrs.frozen
class FetchSummary:
    """What a fetch did, for ``--json`` and for callers that want more than the files."""

    uri: str
    manifest_digest: str | None = None
    media_type: str | None = None
    platform: str | None = None
    blobs: tuple[BlobResult, ...] = ()


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


def _seconds(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not (isinstance(value, int | float) and 0 <= value < math.inf):
        raise UsageError(f"{attribute.name} must be seconds >= 0 or None, not {value!r}")


def _registries(_: object, __: attrs.Attribute[Any], names: Iterable[str]) -> None:
    """Registries named as the docker plugin names them (loaded only when some are given)."""
    if names:
        from mesos_uri._docker.endpoints import check_registry_name

        for name in names:
            check_registry_name(name, flag="https_registry", shown=name)


def _at_least(low: int) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < low
        ):
            raise UsageError(f"{attribute.name} must be an integer >= {low}, not {value!r}")

    return check


@attrs.frozen(kw_only=True)
class Flags:
    """Every option of a fetcher, validated once, from the command line down to each request.

    Durations are seconds; None or 0 turns a timeout off. ``docker_config`` is the default
    registry credentials: JSON text, a path, or ``file://path``.
    """

    docker_config: str | None = None
    # The registry of image references that name none, as the agent's --docker_registry.
    docker_registry: str = DEFAULT_REGISTRY_URL
    # Registries (host[:port]) that image references reach over https whatever their port.
    https_registries: frozenset[str] = attrs.field(default=frozenset(), validator=_registries)
    docker_stall_timeout: float | None = attrs.field(
        default=DEFAULT_STALL_TIMEOUT, validator=_seconds
    )
    curl_stall_timeout: float | None = attrs.field(
        default=DEFAULT_STALL_TIMEOUT, validator=_seconds
    )
    connect_timeout: float | None = attrs.field(default=DEFAULT_CONNECT_TIMEOUT, validator=_seconds)
    jobs: int = attrs.field(default=DEFAULT_JOBS, validator=_at_least(1))
    platform: Platform | None = None
    retries: int = attrs.field(default=DEFAULT_RETRIES, validator=_at_least(0))
    # The most bytes a blob of unknown size may have (a docker-blob URI); None: no limit.
    max_blob_size: int | None = attrs.field(default=None, validator=_at_least(0))
    # Mirrors, CA bundles, client certificates, insecure registries.
    endpoints: Endpoints | None = None
    # Told about every blob as it downloads (the CLI's progress display).
    observer: BlobObserver | None = attrs.field(default=None, eq=False)

    @property
    def docker_timeouts(self) -> Timeouts:
        return Timeouts(stall=self.docker_stall_timeout, connect=self.connect_timeout)

    @property
    def curl_timeouts(self) -> Timeouts:
        return Timeouts(stall=self.curl_stall_timeout, connect=self.connect_timeout)


class Fetcher:
    def __init__(self, plugins: Iterable[Plugin], *, flags: Flags | None = None) -> None:
        self.flags = flags or Flags()
        self._by_name: dict[str, Plugin] = {}
        self._by_scheme: dict[str, Plugin] = {}
        # A duplicate replaces the earlier one, with a warning, as in the original.
        for plugin in plugins:
            if plugin.name in self._by_name:
                _log.warning("Overwriting URI fetcher plugin '%s'", plugin.name)
            self._by_name[plugin.name] = plugin
            for scheme in plugin.schemes:
                if scheme in self._by_scheme:
                    _log.warning("Overwriting URI fetcher plugin for scheme '%s'", scheme)
                self._by_scheme[scheme] = plugin

    def plugin_for(self, uri: URI) -> Plugin:
        found = self._by_scheme.get(uri.scheme)
        if found is None:
            raise UsageError(
                f"Failed to fetch '{uri.redacted()}': Scheme '{uri.scheme}' is not supported"
            )
        return found

    def parse(self, text: str) -> URI:
        """What the command line takes: a URI, or an image reference (``busybox``,
        ``registry:5000/team/app@sha256:…``) normalised as the Mesos agent does, in
        ``flags.docker_registry`` when it names no registry."""
        if "://" in text:
            return parse_uri(text)
        from mesos_uri._docker.reference import image_uri

        return image_uri(
            text,
            default_registry=self.flags.docker_registry,
            https_registries=self.flags.https_registries,
        )

    async def fetch(
        self,
        uri: URI | str,
        directory: str | os.PathLike[str],
        data: str | None = None,
        output_file_name: str | None = None,
        *,
        plugin: str | None = None,
    ) -> FetchSummary:
        """Fetch by scheme, or by plugin name; ``uri`` may be a URI or what :meth:`parse`
        takes. Every failure is a :class:`~mesos_uri.errors.FetchError`."""
        parsed = self.parse(uri) if isinstance(uri, str) else uri
        chosen = self._by_name.get(plugin) if plugin is not None else self.plugin_for(parsed)
        if chosen is None:
            raise UsageError(f"Plugin  '{plugin}' is not registered.")
        return await chosen.fetch(parsed, directory, data, output_file_name)


def create(flags: Flags | None = None) -> Fetcher:
    """The default fetcher: the curl, copy and docker plugins (hadoop is not ported).

    Unlike the original, an invalid ``docker_config`` is an error here rather than a silently
    missing plugin: an agent that asked for credentials should not pull without them.
    """
    from mesos_uri._docker.plugin import DockerFetcherPlugin
    from mesos_uri._plugins import CopyFetcherPlugin, CurlFetcherPlugin

    flags = flags or Flags()
    return Fetcher(
        [
            CurlFetcherPlugin(timeouts=flags.curl_timeouts),
            CopyFetcherPlugin(),
            DockerFetcherPlugin(flags),
        ],
        flags=flags,
    )
