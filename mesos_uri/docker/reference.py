"""Docker image references: the original's parser and registry helpers, normalisation, grammar.

``parse_image_reference``, ``get_registry_port/scheme/host`` and ``parse_auth_url`` are ports of
``docker::spec`` (SPEC.md §2.3): like the original they check nothing beyond what they must
split, so ``busybox:``, ``repo@`` and ``host:-80`` pass (SPEC §9 row 26). ``validate_reference``
is the check the original lacks: the distribution reference grammar
(github.com/distribution/reference, ``regexp.go``)::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain '/'] remote-name
    domain           := host [':' port-number]
    host             := domain-name | IPv4address | \\[ IPv6address \\]
    domain-name      := domain-component ['.' domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    port-number      := /[0-9]+/
    remote-name      := path-component ['/' path-component]*
    path-component   := alpha-numeric [separator alpha-numeric]*
    alpha-numeric    := /[a-z0-9]+/
    separator        := /[_.]|__|[-]*/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" encoded    (mesos_uri.docker.digest)

``normalize`` turns a reference into the ``docker-manifest`` URI the agent fetches (SPEC §1.3).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Final, TypeAlias

import attrs

from mesos_uri import uri as uris
from mesos_uri.docker.digest import parse_digest
from mesos_uri.errors import DigestError, UsageError
from mesos_uri.uri import URI
from mesos_uri.urls import DEFAULT_PORTS

__all__ = [
    "DEFAULT_REGISTRY_URL",
    "DEFAULT_TAG",
    "ImageReference",
    "RegistryURL",
    "get_registry_host",
    "get_registry_port",
    "get_registry_scheme",
    "normalize",
    "parse_auth_url",
    "parse_image_reference",
    "parse_registry_url",
    "validate_reference",
]

# The agent's --docker_registry default (SPEC §1.3).
DEFAULT_REGISTRY_URL: Final = "https://registry-1.docker.io"
DEFAULT_TAG: Final = "latest"

# Docker Hub's names for itself; the API is served by registry-1.docker.io (issue #8).
_DOCKER_HUB_ALIASES: Final = frozenset({"docker.io", "index.docker.io"})
_DOCKER_HUB_API_HOST: Final = "registry-1.docker.io"
# The original's local-registry rule (SPEC §2.3): these hosts talk plain HTTP on other ports.
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1"})

# The distribution reference grammar (module docstring) and its limits.
NAME_TOTAL_LENGTH_MAX: Final = 255
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME: Final = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*")
# The grammar's separator ``[-]*`` may be empty, which adds nothing to the language but makes a
# backtracking engine exponential (Go's RE2 is linear); ``-+`` matches the same names.
_PATH_COMPONENT: Final = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG: Final = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGITS: Final = re.compile(r"[0-9]+")

# stout numify<int>: boost::lexical_cast (optional sign, decimal) or, after 0x, istream hex.
_NUMIFY_DECIMAL: Final = re.compile(r"[+-]?[0-9]+")
_NUMIFY_HEX: Final = re.compile(r"0[xX][0-9a-fA-F]+")
_INT_MIN: Final = -(2**31)
_INT_MAX: Final = 2**31 - 1

# Builds the error for one text from the reason it is invalid.
_Invalid: TypeAlias = Callable[[str], UsageError]


@attrs.frozen
class ImageReference:
    """``[registry/]repository[:tag][@digest]``; unset parts are None, ``""`` is set (SPEC §2.3)."""

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
    """Split an image reference as the original does (SPEC §2.3); no grammar check."""
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


def _numify_int(text: str) -> int | None:
    """stout's ``numify<int>``, or None where it fails (also outside C ``int``'s range)."""
    if _NUMIFY_HEX.fullmatch(text):
        digits = text[2:].lstrip("0") or "0"
        # Eight hex digits hold any int; more overflow (checked before int() reads them).
        value = int(digits, 16) if len(digits) <= 8 else _INT_MAX + 1
    elif _NUMIFY_DECIMAL.fullmatch(text) and len(text.lstrip("+-0")) <= len(str(_INT_MAX)):
        value = int(text)
    else:
        return None
    return value if _INT_MIN <= value <= _INT_MAX else None


def get_registry_port(registry: str) -> int | None:
    """The port after the first ``:`` of ``registry``, or None (SPEC §2.3)."""
    if not registry:
        return None
    _host, colon, rest = registry.partition(":")
    if not colon:
        return None
    port = _numify_int(rest)
    if port is None:
        raise UsageError(f"Failed to numify '{rest}'")
    return port


def get_registry_scheme(registry: str) -> str:
    """``https``, except ``http`` for port 80 and for localhost/127.0.0.1 on ports but 443."""
    try:
        port = get_registry_port(registry)
    except UsageError as exc:
        raise UsageError(f"Failed to get registry port: {exc}") from exc
    if port is None or port == 443:
        return "https"
    if port == 80 or registry.partition(":")[0] in _LOCAL_HOSTS:
        return "http"
    return "https"


def get_registry_host(registry: str) -> str:
    """The text before the first ``:`` (IPv6 not supported, as in the original)."""
    return registry.partition(":")[0]


def parse_auth_url(url: str) -> str:
    """A docker config key reduced to ``host[:port]``: one ``http://`` or ``https://`` and any
    path removed (SPEC §2.3)."""
    for prefix in ("http://", "https://"):
        if url.startswith(prefix):
            url = url[len(prefix) :]
            break
    return url.partition("/")[0]


@attrs.frozen
class RegistryURL:
    """The agent's ``--docker_registry`` URL: its transport, host and port (always set)."""

    scheme: str
    host: str
    port: int


def parse_registry_url(url: str) -> RegistryURL:
    """Parse ``--docker_registry`` as the agent does (SPEC §1.3): ``http(s)://host[:port][/...]``.

    The scheme is lower-cased and the port defaults to 80/443, so the default registry always
    carries port 443; the path is ignored. Beyond the original, ``[ipv6]:port`` hosts work.
    """

    def invalid(reason: str) -> UsageError:
        return UsageError(f"Invalid registry URL '{url}': {reason}")

    scheme, sep, rest = url.partition("://")
    if not sep:
        raise invalid("Could not find scheme in url")
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise invalid(f"scheme '{scheme}' is not 'http' or 'https'")
    hostport = rest.partition("/")[0]
    if hostport.startswith("[") and "]" in hostport:
        host, _, tail = hostport[1:].partition("]")
        if tail and not tail.startswith(":"):
            raise invalid(f"unexpected '{tail}' after ']'")
        port_text: str | None = tail[1:] if tail else None
    else:
        tokens = hostport.split(":")
        if len(tokens) > 2:
            raise invalid("Found multiple ports in url")
        host = tokens[0]
        port_text = tokens[1] if len(tokens) == 2 else None
    if not host:
        raise invalid("Host not found in url")
    if port_text is None:
        port = DEFAULT_PORTS[scheme]
    elif _is_port(port_text):
        port = int(port_text)
    else:
        raise invalid(f"Failed to parse port: '{port_text}' is not a port number")
    return RegistryURL(scheme, host, port)


def normalize(reference: ImageReference, default_registry_url: str = DEFAULT_REGISTRY_URL) -> URI:
    """The ``docker-manifest`` URI the agent fetches for ``reference`` (SPEC §1.3).

    ``busybox`` -> ``docker-manifest://registry-1.docker.io:443/library/busybox?latest#https``.
    Beyond the original: ``docker.io`` and ``index.docker.io`` stand for
    ``registry-1.docker.io`` (issue #8), and a bracketed IPv6 registry (``[::1]:5000``) works.
    """
    default = parse_registry_url(default_registry_url)
    domain = reference.registry if reference.registry is not None else default.host
    repository = reference.repository
    if "docker.io" in domain and "/" not in repository:
        repository = f"library/{repository}"
    if reference.digest is not None:
        query = reference.digest
    else:
        query = reference.tag if reference.tag is not None else DEFAULT_TAG
    if reference.registry is None:
        return uris.docker_manifest(repository, query, default.host, default.scheme, default.port)
    host, port, scheme = _registry_parts(reference.registry)
    if port is None and host in _DOCKER_HUB_ALIASES:
        host = _DOCKER_HUB_API_HOST
    return uris.docker_manifest(repository, query, host, scheme, port)


def _registry_parts(registry: str) -> tuple[str, int | None, str]:
    """(host, port, transport) of a reference's registry, as SPEC §1.3 step 4 takes them."""
    if registry.startswith("[") and "]" in registry:
        host, _, tail = registry[1:].partition("]")
        try:
            port = get_registry_port(tail) if tail.startswith(":") else None
        except UsageError as exc:
            raise UsageError(f"Failed to get registry port: {exc}") from exc
        if tail and port is None:
            raise UsageError(f"Failed to get registry port: unexpected '{tail}' after ']'")
        # Loopback counts as local, like localhost and 127.0.0.1.
        local = host == "::1" and port not in (None, 443)
        scheme = "http" if port == 80 or local else "https"
        return host, port, scheme
    try:
        port = get_registry_port(registry)
    except UsageError as exc:
        raise UsageError(f"Failed to get registry port: {exc}") from exc
    try:
        scheme = get_registry_scheme(registry)
    except UsageError as exc:  # unreachable: the port error above comes first
        raise UsageError(f"Failed to get registry scheme: {exc}") from exc
    return get_registry_host(registry), port, scheme


def validate_reference(text: str) -> ImageReference:
    """Parse ``text`` and check it against the distribution reference grammar.

    Returns the parsed reference; raises ``UsageError`` saying which part is wrong and why. The
    255-character limit applies to the whole name (``[domain/]path``), as in distribution.
    """

    def invalid(reason: str) -> UsageError:
        return UsageError(f"Invalid image reference '{text}': {reason}")

    try:
        reference = parse_image_reference(text)
    except UsageError as exc:
        raise invalid(str(exc)) from exc
    name = reference.repository
    if reference.registry is not None:
        name = f"{reference.registry}/{name}"
    # Checked first: it also bounds the work of the patterns below.
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise invalid(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if reference.registry is not None:
        _check_domain(reference.registry, invalid)
    _check_path(reference.repository, invalid)
    if reference.tag is not None and not _TAG.fullmatch(reference.tag):
        raise invalid(
            f"tag '{reference.tag}' must be 1 to 128 of letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-'"
        )
    if reference.digest is not None:
        try:
            parse_digest(reference.digest)
        except DigestError as exc:
            raise invalid(str(exc)) from exc
    return reference


def _is_port(text: str) -> bool:
    """Decimal 1..65535; the length is bounded before ``int()`` reads it."""
    return (
        _DIGITS.fullmatch(text) is not None
        and len(text.lstrip("0")) <= len(str(uris.MAX_PORT))
        and uris.MIN_PORT <= int(text) <= uris.MAX_PORT
    )


def _check_path(path: str, invalid: _Invalid) -> None:
    if not path:
        raise invalid("repository name must not be empty")
    for component in path.split("/"):
        if _PATH_COMPONENT.fullmatch(component):
            continue
        if _PATH_COMPONENT.fullmatch(component.lower()):
            raise invalid(f"repository name '{path}' must be lowercase")
        raise invalid(
            f"repository path component '{component}' must be lowercase letters and digits, "
            "separated by '.', '_', '__' or dashes"
        )


def _check_domain(domain: str, invalid: _Invalid) -> None:
    if domain.startswith("["):
        host, bracket, tail = domain[1:].partition("]")
        if not bracket:
            raise invalid(f"registry '{domain}' has '[' without ']'")
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise invalid(f"registry '{domain}' is not a bracketed IPv6 address") from exc
        port_text: str | None = tail[1:] if tail.startswith(":") else None
        if tail and port_text is None:
            raise invalid(f"unexpected '{tail}' after ']' in registry '{domain}'")
    else:
        host, colon, port = domain.partition(":")
        port_text = port if colon else None
        if not _DOMAIN_NAME.fullmatch(host):
            raise invalid(
                f"registry host '{host}' must be dot-separated letters, digits and inner dashes"
            )
    if port_text is not None and not _is_port(port_text):
        raise invalid(f"registry port '{port_text}' is not a number in 1..{uris.MAX_PORT}")
