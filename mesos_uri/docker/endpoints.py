"""Where a registry is reached and how it is trusted: mirrors, CA bundles, client certificates,
insecure registries.

These follow Docker's meanings, since that is what the nodes' operators already configured:
``/etc/docker/certs.d/<host[:port]>/`` holds ``*.crt`` CA bundles and ``*.cert``/``*.key`` client
pairs (dockerd's ``registry.ReadCertsDirectory``); an insecure registry may be reached over plain
HTTP or with unverified TLS, and only that host; mirrors are tried in order before the origin.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Final

import attrs

from mesos_uri.curl import TLS
from mesos_uri.docker.config import DOCKER_HUB_HOSTS
from mesos_uri.errors import UsageError
from mesos_uri.urls import DEFAULT_PORTS

__all__ = ["DEFAULT_CERTS_DIR", "Endpoints", "Mirror", "parse_host_value", "parse_mirror"]

DEFAULT_CERTS_DIR: Final = "/etc/docker/certs.d"


def _hostport(url: str) -> str:
    """``host[:port]`` of ``url`` as Docker keys it: the scheme's default port left out."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or port == DEFAULT_PORTS.get(parts.scheme.lower()):
        return host.lower()
    return f"{host.lower()}:{port}"


def parse_host_value(text: str, *, flag: str) -> tuple[str | None, str]:
    """``[HOST[:PORT]=]VALUE`` → (host or None for every registry, value)."""
    host, sep, value = text.partition("=")
    if not sep:
        return None, text
    if not host or not value or "/" in host:
        raise UsageError(f"Invalid --{flag} '{text}': expected [HOST[:PORT]=]VALUE")
    return host.lower(), value


@attrs.frozen
class Mirror:
    """A mirror (or pull-through cache) of ``registry`` (None: Docker Hub) at ``url``."""

    registry: str | None
    url: str


def parse_mirror(text: str) -> Mirror:
    """``URL`` (a Docker Hub mirror, as dockerd's ``registry-mirrors``) or ``REGISTRY=URL``."""
    registry, url = parse_host_value(text, flag="registry_mirror")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"Invalid --registry_mirror '{text}': the mirror must be an http(s) URL")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise UsageError(f"Invalid --registry_mirror '{text}': a mirror URL has no path")
    return Mirror(registry, f"{parts.scheme}://{parts.netloc}")


@attrs.frozen
class Endpoints:
    """The operator's registry settings, applied per URL."""

    mirrors: tuple[Mirror, ...] = ()
    cacerts: tuple[tuple[str | None, str], ...] = ()
    insecure: frozenset[str] = frozenset()
    certs_dir: str | None = DEFAULT_CERTS_DIR

    def mirrors_for(self, host: str, port: int | None) -> list[str]:
        """Mirror base URLs for a registry, in the order given."""
        key = host.lower() if port is None else f"{host.lower()}:{port}"
        hub = host.lower() in DOCKER_HUB_HOSTS
        return [
            mirror.url
            for mirror in self.mirrors
            if mirror.registry == key
            or mirror.registry == host.lower()
            or (mirror.registry is None and hub)
        ]

    def is_insecure(self, url: str) -> bool:
        hostport = _hostport(url)
        return hostport in self.insecure or hostport.rpartition(":")[0] in self.insecure

    def tls_for(self, url: str) -> TLS | None:
        """The CA bundle, client certificate and verification curl uses for ``url``."""
        if urllib.parse.urlsplit(url).scheme.lower() != "https":
            return None
        hostport = _hostport(url)
        cacert = next((path for host, path in self.cacerts if host == hostport), None)
        cert = key = None
        if self.certs_dir is not None:
            directory = Path(self.certs_dir) / hostport.replace("[", "").replace("]", "")
            if cacert is None:
                cacert = _first(directory, "*.crt")
            cert = _first(directory, "*.cert")
            key = str(Path(cert).with_suffix(".key")) if cert else None
        if cacert is None:
            cacert = next((path for host, path in self.cacerts if host is None), None)
        tls = TLS(cacert=cacert, cert=cert, key=key, insecure=self.is_insecure(url))
        return None if tls == TLS() else tls


def _first(directory: Path, pattern: str) -> str | None:
    try:
        found = sorted(directory.glob(pattern))
    except OSError:
        return None
    return str(found[0]) if found else None
