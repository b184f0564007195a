"""Where a registry is reached and how it is trusted, in Docker's meanings, which the nodes'
operators already configured: ``certs.d/<host[:port]>/`` holds ``*.crt`` CA bundles and
``*.cert``/``*.key`` client pairs (dockerd's ``registry.ReadCertsDirectory``); an insecure
registry may be reached over plain HTTP or unverified TLS; mirrors are tried in order before the
origin. A flag names a registry as a docker config key does: ``myregistry`` is ``myregistry:443``.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import attrs

from mesos_uri._curl import TLS
from mesos_uri._docker import DEFAULT_CERTS_DIR, certs_subdir
from mesos_uri._docker.config import DOCKER_HUB_KEY, names_registry
from mesos_uri._urls import Origin, redact_url
from mesos_uri.errors import UsageError

__all__ = ["Endpoints", "Mirror", "check_registry_name", "parse_host_value", "parse_mirror"]


def parse_host_value(text: str, *, flag: str) -> tuple[str | None, str]:
    """``[HOST[:PORT]=]VALUE`` → (host or None for every registry, value)."""
    host, sep, value = text.partition("=")
    if not sep:
        return None, text
    if not host or not value or "/" in host:
        raise UsageError(f"Invalid --{flag} '{text}': expected [HOST[:PORT]=]VALUE")
    check_registry_name(host, flag=flag, shown=text)
    return host.lower(), value


def check_registry_name(name: str, *, flag: str, shown: str) -> None:
    try:
        if "://" in name:
            raise ValueError("a registry is named HOST[:PORT], without a scheme")
        Origin.parse(name, scheme="https")
    except ValueError as exc:
        raise UsageError(f"Invalid --{flag} '{shown}': {exc}") from exc


@attrs.frozen
class Mirror:
    """A mirror (or pull-through cache) of ``registry`` (None: Docker Hub) at ``url``."""

    registry: str | None
    url: str


def parse_mirror(text: str) -> Mirror:
    """``URL`` (a Docker Hub mirror, as dockerd's ``registry-mirrors``) or ``REGISTRY=URL``."""
    registry, url = parse_host_value(text, flag="registry_mirror")
    try:
        origin = Origin.of(url)
        parts = urllib.parse.urlsplit(url)
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ValueError("a mirror URL has no path")
    except ValueError as exc:
        shown = text.removesuffix(url) + redact_url(url)
        raise UsageError(f"Invalid --registry_mirror '{shown}': {exc}") from exc
    return Mirror(registry, str(origin))


def _insecure_names(_: object, __: attrs.Attribute[frozenset[str]], names: frozenset[str]) -> None:
    for name in names:
        check_registry_name(name, flag="insecure_registry", shown=name)


@attrs.frozen
class Endpoints:
    """The operator's registry settings, applied per URL."""

    mirrors: tuple[Mirror, ...] = ()
    cacerts: tuple[tuple[str | None, str], ...] = ()
    insecure: frozenset[str] = attrs.field(default=frozenset(), validator=_insecure_names)
    certs_dir: str | None = DEFAULT_CERTS_DIR

    def mirrors_for(self, host: str, port: int | None, *, scheme: str = "https") -> list[Origin]:
        registry = Origin.at(host, port, scheme=scheme)
        return [
            Origin.of(mirror.url)
            for mirror in self.mirrors
            if names_registry(mirror.registry or DOCKER_HUB_KEY, registry)
        ]

    def is_insecure(self, url: str) -> bool:
        try:
            origin = Origin.of(url)
        except ValueError:
            return False
        return any(names_registry(name, origin) for name in self.insecure)

    def tls_for(self, url: str) -> TLS | None:
        """The CA bundle, client certificate and verification curl uses for ``url``."""
        try:
            origin = Origin.of(url)
        except ValueError:
            return None
        if origin.scheme != "https":
            return None
        cacert = next(
            (path for name, path in self.cacerts if name and names_registry(name, origin)), None
        )
        cert = key = None
        if self.certs_dir is not None:
            directory = Path(self.certs_dir) / certs_subdir(origin)
            cacert = cacert or _first(directory, "*.crt")
            cert = _first(directory, "*.cert")
            key = str(Path(cert).with_suffix(".key")) if cert else None
        cacert = cacert or next((path for name, path in self.cacerts if name is None), None)
        tls = TLS(cacert=cacert, cert=cert, key=key, insecure=self.is_insecure(url))
        return None if tls == TLS() else tls


def _first(directory: Path, pattern: str) -> str | None:
    try:
        found = sorted(directory.glob(pattern))
    except OSError:
        return None
    return str(found[0]) if found else None
