"""Docker image references: the original's parser, the reference grammar, normalisation.

``parse_image_reference`` splits a reference as the original does, so ``busybox:`` and ``repo@``
pass; ``validate_reference`` adds the grammar of github.com/distribution/reference (regexp.go)::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain '/'] path-component ['/' path-component]*
    domain           := host [':' port-number]
    host             := domain-name | IPv4address | \\[ IPv6address \\]
    domain-name      := domain-component ['.' domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component   := /[a-z0-9]+/ [separator /[a-z0-9]+/]*
    separator        := /[_.]|__|[-]*/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" encoded    (mesos_uri._docker.digest)
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Final

import attrs

from mesos_uri._docker import DEFAULT_REGISTRY_URL
from mesos_uri._docker.config import DOCKER_HUB_HOSTS, names_registry
from mesos_uri._docker.digest import parse_digest
from mesos_uri._uri import URI
from mesos_uri._urls import Origin, redact_url, split_hostport
from mesos_uri.errors import UsageError

__all__ = ["ImageReference", "image_uri", "normalize", "parse_image_reference"]

DEFAULT_TAG: Final = "latest"

# Docker Hub's API is served by registry-1.docker.io, whichever of its names a reference uses.
_DOCKER_HUB_API_HOST: Final = "registry-1.docker.io"

NAME_TOTAL_LENGTH_MAX: Final = 255
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME: Final = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*")
# The grammar's separator ``[-]*`` may be empty, which adds nothing to the language but makes a
# backtracking engine exponential (Go's RE2 is linear); ``-+`` matches the same names.
_PATH_COMPONENT: Final = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG: Final = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)


@attrs.frozen
class ImageReference:
    """``[registry/]repository[:tag][@digest]``; unset parts are None, ``""`` is set."""

    repository: str
    registry: str | None = None
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = self.repository if self.registry is None else f"{self.registry}/{self.repository}"
        # A set digest wins over a tag, as in the original's operator<<.
        if self.digest is not None:
            return f"{text}@{self.digest}"
        if self.tag is not None:
            return f"{text}:{self.tag}"
        return text


def parse_image_reference(text: str) -> ImageReference:
    """Split an image reference as the original does; no grammar check."""
    digest: str | None = None
    if "@" in text:
        parts = text.split("@")
        if len(parts) != 2:
            raise UsageError("Multiple '@' symbols found")
        text, digest = parts
    tag: str | None = None
    if ":" in text:
        parts = text.split(":")
        # A last part with a '/' belongs to a registry's port: then there is no tag.
        if "/" not in parts[-1]:
            tag = parts.pop()
            text = ":".join(parts)
    first, slash, rest = text.partition("/")
    # Docker's heuristic: a first component with '.' or ':', or 'localhost', is a registry.
    if slash and ("." in first or ":" in first or first == "localhost"):
        return ImageReference(rest, registry=first, tag=tag, digest=digest)
    return ImageReference(text, tag=tag, digest=digest)


def image_uri(
    text: str,
    *,
    default_registry: str = DEFAULT_REGISTRY_URL,
    https_registries: Collection[str] = (),
) -> URI:
    """The ``docker`` URI of an image reference as the command line and the facade take one:
    checked against the grammar, then normalised as the Mesos agent does."""
    reference = validate_reference(text)
    uri = normalize(reference, default_registry, https_registries=https_registries)
    return attrs.evolve(uri, scheme="docker")


def normalize(
    reference: ImageReference,
    default_registry_url: str = DEFAULT_REGISTRY_URL,
    *,
    https_registries: Collection[str] = (),
) -> URI:
    """The ``docker-manifest`` URI the Mesos agent fetches for ``reference``, e.g.
    ``docker-manifest://registry-1.docker.io:443/library/busybox?latest#https`` for ``busybox``.

    A named registry is reached over https, but over http on port 80 and on a loopback host at
    any port but 443 (the original's rule for a local registry) unless in ``https_registries``.
    Beyond the original: ``docker.io`` and ``index.docker.io`` mean ``registry-1.docker.io``.
    """
    try:
        default = Origin.of(default_registry_url)
    except ValueError as exc:
        raise UsageError(
            f"Invalid registry URL '{redact_url(default_registry_url)}': {exc}"
        ) from exc
    domain = reference.registry if reference.registry is not None else default.host
    repository = reference.repository
    # The original's rule looks at the text, not at Docker Hub's names.
    if "docker.io" in domain and "/" not in repository:
        repository = f"library/{repository}"
    query = next((q for q in (reference.digest, reference.tag) if q is not None), DEFAULT_TAG)
    if reference.registry is None:
        return URI("docker-manifest", repository, default.host, default.port, query, default.scheme)
    try:
        host, port = _split_registry(reference.registry)
    except ValueError as exc:
        raise UsageError(f"Invalid image reference '{reference}': {exc}") from exc
    if port is None and host in DOCKER_HUB_HOSTS:
        host = _DOCKER_HUB_API_HOST
    origin = Origin.at(host, port, scheme="https")
    local = port not in (None, 443) and (port == 80 or origin.is_loopback)
    named = any(names_registry(name, origin) for name in https_registries)
    transport = "http" if local and not named else "https"
    return URI("docker-manifest", repository, host, port, query, transport)


def _split_registry(registry: str) -> tuple[str, int | None]:
    # The port is decimal, 1 to 65535 (the original also took signs and 0x hex).
    try:
        return split_hostport(registry)
    except ValueError as exc:
        raise ValueError(f"registry {exc}") from exc


def validate_reference(text: str) -> ImageReference:
    """Parse ``text`` and check it against the grammar; the error says which part is wrong."""
    try:
        reference = parse_image_reference(text)
        _check(reference)
    except ValueError as exc:  # UsageError and DigestError among them
        raise UsageError(f"Invalid image reference '{text}': {exc}") from exc
    return reference


def _check(reference: ImageReference) -> None:
    registry, path = reference.registry, reference.repository
    # As distribution, on the whole name; first, since it bounds the work of the patterns below.
    if len(path if registry is None else f"{registry}/{path}") > NAME_TOTAL_LENGTH_MAX:
        raise ValueError(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    # A bracketed host is an IPv6 address, which split_hostport checks.
    if registry is not None:
        host, _ = _split_registry(registry)
        if not registry.startswith("[") and not _DOMAIN_NAME.fullmatch(host):
            raise ValueError(
                f"registry host '{host}' must be dot-separated letters, digits and inner dashes"
            )
    if not path:
        raise ValueError("repository name must not be empty")
    for component in path.split("/"):
        if _PATH_COMPONENT.fullmatch(component):
            continue
        if _PATH_COMPONENT.fullmatch(component.lower()):
            raise ValueError(f"repository name '{path}' must be lowercase")
        raise ValueError(
            f"repository path component '{component}' must be lowercase letters and digits, "
            "separated by '.', '_', '__' or dashes"
        )
    if reference.tag is not None and not _TAG.fullmatch(reference.tag):
        raise ValueError(
            f"tag '{reference.tag}' must be 1 to 128 of letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-'"
        )
    if reference.digest is not None:
        parse_digest(reference.digest)
