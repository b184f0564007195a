"""Where a URL points, and where a redirect may take us.

An :class:`Origin` (scheme, host, port) is the unit of trust: credentials go only to the origin
that asked for them, and a registry's origin decides whether plain HTTP is acceptable. Every
module that needs "the registry's host and port" or "is this the same server" uses it, so IPv6
brackets, default ports and case are handled once.

:func:`follow_redirect` is the one place that decides whether a ``Location`` is followed: only to
http or https (never ``file:``, ``gopher:``, ``dict:``, ... which curl would happily speak), never
from https down to http unless the caller allows it, at most :data:`MAX_REDIRECTS` hops.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Final

import attrs

from mesos_uri.errors import RedirectError, TooManyRedirectsError, UsageError

__all__ = [
    "DEFAULT_PORTS",
    "MAX_REDIRECTS",
    "REDIRECT_CODES",
    "WEB_SCHEMES",
    "Origin",
    "follow_redirect",
    "redact_url",
    "same_origin",
]

# The port a URL means when it names none.
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# The only schemes a registry, its token service or its blob storage may send us to.
WEB_SCHEMES: Final = frozenset(DEFAULT_PORTS)
# The statuses whose Location a client follows.
REDIRECT_CODES: Final = frozenset({301, 302, 303, 307, 308})
# A registry needs one hop (to its storage); curl's own default is 50. Ten stops a loop early.
MAX_REDIRECTS: Final = 10

# The userinfo of an authority: everything up to the last "@" before the path (as urlsplit does).
_USERINFO: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def redact_url(url: str) -> str:
    """``url`` without its ``user:password@``, for messages and logs."""
    return _USERINFO.sub(r"\1", url)


@attrs.frozen
class Origin:
    """Scheme, host and port of a URL, normalised: lower case, IPv6 without brackets, the
    scheme's default port filled in."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of an absolute http(s) URL; :class:`UsageError` for anything else."""
        parts = urllib.parse.urlsplit(url.strip())
        scheme = parts.scheme.lower()
        try:
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"Invalid port in URL '{redact_url(url)}'") from exc
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            raise UsageError(f"Not an http(s) URL with a host: '{redact_url(url)}'")
        return cls(scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme])

    @classmethod
    def parse(cls, hostport: str, *, scheme: str) -> Origin:
        """``host[:port]`` or ``[v6]:port`` as Docker writes registries, over ``scheme``."""
        return cls.of(f"{scheme}://{hostport}")

    @property
    def hostport(self) -> str:
        """``host[:port]`` as Docker keys registries: the scheme's default port left out."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS.get(self.scheme) else f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return f"{self.scheme}://{self.hostport}"


def same_origin(a: str, b: str) -> bool:
    """Scheme, host and port equal: only then may a request carry the other's credentials."""
    try:
        return Origin.of(a) == Origin.of(b)
    except UsageError:
        return False


def follow_redirect(url: str, location: str, *, hops: int, allow_downgrade: bool = False) -> str:
    """The absolute URL a redirect from ``url`` to ``location`` leads to, if we may go there.

    ``hops`` counts the redirects already followed for this request. Refused with
    :class:`RedirectError`: a scheme other than http/https, and https to http unless
    ``allow_downgrade`` (an insecure registry). :class:`TooManyRedirectsError` past
    :data:`MAX_REDIRECTS`.
    """
    if hops >= MAX_REDIRECTS:
        raise TooManyRedirectsError(url=redact_url(url), limit=MAX_REDIRECTS)
    target = urllib.parse.urljoin(url.strip(), location.strip())
    scheme = urllib.parse.urlsplit(target).scheme.lower()
    if scheme not in WEB_SCHEMES:
        raise RedirectError(url=redact_url(url), reason=f"to a '{scheme}:' URL")
    downgrade = scheme == "http" and urllib.parse.urlsplit(url).scheme.lower() == "https"
    if downgrade and not allow_downgrade:
        raise RedirectError(url=redact_url(url), reason="from https to plain http")
    return target
