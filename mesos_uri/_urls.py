"""Where a URL points, and where a redirect may take us.

:func:`split_hostport` is the one reader of ``host[:port]`` and ``[v6][:port]`` (URIs, image
references, flags, docker config keys), and :class:`Origin` the one notion of "the same server":
credentials go only to the origin that asked for them. :func:`follow_redirect` is the one place
that decides whether a ``Location`` is followed.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import urllib.parse
from typing import Final

import attrs

from mesos_uri.errors import RedirectError, TooManyRedirectsError

__all__ = [
    "MAX_PORT",
    "MIN_PORT",
    "REDIRECT_CODES",
    "WEB_SCHEMES",
    "Origin",
    "follow_redirect",
    "host_problem",
    "join_hostport",
    "redact_url",
    "same_origin",
    "split_hostport",
]

# The port a URL means when it names none.
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# The only schemes a registry, its token service or its blob storage may send us to.
WEB_SCHEMES: Final = frozenset(DEFAULT_PORTS)
# The statuses whose Location a client follows.
REDIRECT_CODES: Final = frozenset({301, 302, 303, 307, 308})
# A registry needs one hop (to its storage); curl's own default is 50. Ten stops a loop early.
MAX_REDIRECTS: Final = 10
# TCP ports; 0 cannot be connected to.
MIN_PORT: Final = 1
MAX_PORT: Final = 65535

# The userinfo of an authority: everything up to the last "@" before the path (as urlsplit does).
_USERINFO: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
# Delimiters of a URL, and the space, which no host name holds.
_HOST_FORBIDDEN: Final = "/?#@[]% "


def redact_url(url: str) -> str:
    """``url`` without its ``user:password@``, for messages and logs."""
    return _USERINFO.sub(r"\1", url)


def split_hostport(text: str) -> tuple[str, int | None]:
    """``host[:port]`` or ``[v6][:port]`` → (host, IPv6 without brackets; the port or None);
    the host may be empty (``file:///``) and keeps its case. An IPv6 address must be bracketed, as
    its colons cannot be told from a port's. The ValueError's text leaves the input to be named."""
    if text.startswith("["):
        inner, bracket, tail = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"'{text}' has '[' without ']'")
        if not _is_ipv6(inner):
            raise ValueError(f"'{text}' is not a bracketed IPv6 address")
        if tail and not tail.startswith(":"):
            raise ValueError(f"'{text}' has unexpected '{tail}' after ']'")
        host, port_text = inner, (tail[1:] if tail else None)
    elif text.count(":") > 1:
        raise ValueError(
            f"'{text}' has more than one ':' (an IPv6 host is written in brackets, "
            "e.g. '[::1]:5000')"
        )
    else:
        host, colon, port_text = text.partition(":")
        if (problem := host_problem(host)) is not None:
            raise ValueError(problem)
        port_text = port_text if colon else None
    return host, (None if port_text is None else _port(port_text))


def join_hostport(host: str, port: int | None) -> str:
    """The inverse of :func:`split_hostport`: an IPv6 host bracketed, the port if any."""
    text = f"[{host}]" if ":" in host else host
    return text if port is None else f"{text}:{port}"


def host_problem(host: str) -> str | None:
    """Why ``host`` (IPv6 without brackets) cannot stand in a URL, or None."""
    if _CONTROL.search(host):
        return f"host {host!r} contains a control character"
    if (bad := next((char for char in host if char in _HOST_FORBIDDEN), None)) is not None:
        return f"host '{host}' contains '{bad}'"
    if ":" in host and not _is_ipv6(host):
        return f"host '{host}' contains ':' but is not an IPv6 address"
    return None


def _is_ipv6(text: str) -> bool:
    # A zone ("fe80::1%eth0") names an interface of this machine, never a registry.
    if "%" in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _web_scheme(scheme: str) -> str:
    if scheme.lower() not in DEFAULT_PORTS:
        raise ValueError(f"scheme '{scheme.lower()}' is not 'http' or 'https'")
    return scheme.lower()


def _port(text: str) -> int:
    # Bounded before int(): a long digit string is out of range anyway.
    if (
        not (text.isascii() and text.isdigit())
        or len(text.lstrip("0")) > len(str(MAX_PORT))
        or not MIN_PORT <= int(text) <= MAX_PORT
    ):
        raise ValueError(f"port '{text}' is not a number in {MIN_PORT}..{MAX_PORT}")
    return int(text)


@functools.lru_cache(maxsize=256)
def _origin(scheme: str, authority: str) -> Origin:
    """Parsed once per server: every blob request of an image asks about the same few."""
    if "@" in authority:
        raise ValueError("a user or password in the URL is not supported")
    return Origin.parse(authority, scheme=scheme)


@attrs.frozen
class Origin:
    """Scheme, host and port, normalised (lower case, IPv6 without brackets, the default port
    filled in): equal origins are the same server."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of an absolute http(s) URL without a user or password; else ValueError."""
        scheme, sep, rest = url.strip().partition("://")
        if not sep:
            raise ValueError("missing '://'")
        return _origin(scheme, re.split(r"[/?#]", rest, maxsplit=1)[0])  # the authority

    @classmethod
    def parse(cls, hostport: str, *, scheme: str) -> Origin:
        """``host[:port]`` or ``[v6][:port]`` as Docker names registries; else ValueError."""
        _web_scheme(scheme)
        host, port = split_hostport(hostport)
        if not host:
            raise ValueError("missing host")
        return cls.at(host, port, scheme=scheme)

    @classmethod
    def at(cls, host: str, port: int | None, *, scheme: str) -> Origin:
        """The origin of a docker URI's (checked) fields; ``host`` bare or bracketed."""
        scheme = _web_scheme(scheme)
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        return cls(scheme, bare.lower(), DEFAULT_PORTS[scheme] if port is None else port)

    @property
    def hostport(self) -> str:
        """``host[:port]`` as Docker keys registries: the scheme's default port left out."""
        default = self.port == DEFAULT_PORTS.get(self.scheme)
        return join_hostport(self.host, None if default else self.port)

    @property
    def is_loopback(self) -> bool:
        """``localhost`` or a loopback address: traffic that never leaves this machine."""
        try:
            return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return f"{self.scheme}://{self.hostport}"


def same_origin(a: str, b: str) -> bool:
    """Scheme, host and port equal: only then may a request carry the other's credentials."""
    try:
        return Origin.of(a) == Origin.of(b)
    except ValueError:
        return False


def follow_redirect(url: str, location: str, *, hops: int, allow_downgrade: bool = False) -> str:
    """The absolute URL a redirect from ``url`` to ``location`` leads to, if we may go there:
    never to a scheme but http(s) (curl would speak ``file:``, ``gopher:``, ...), from https to
    http only with ``allow_downgrade`` (an insecure registry), and at most :data:`MAX_REDIRECTS`
    hops (``hops`` were followed already)."""
    if hops >= MAX_REDIRECTS:
        raise TooManyRedirectsError(url=redact_url(url), limit=MAX_REDIRECTS)
    try:
        target = urllib.parse.urljoin(url.strip(), location.strip())
        scheme = urllib.parse.urlsplit(target).scheme.lower()
    except ValueError as exc:  # what urllib cannot split, e.g. "https://[x/"
        raise RedirectError(url=redact_url(url), reason="to a malformed URL") from exc
    if scheme not in WEB_SCHEMES:
        raise RedirectError(url=redact_url(url), reason=f"to a '{scheme}:' URL")
    downgrade = scheme == "http" and urllib.parse.urlsplit(url).scheme.lower() == "https"
    if downgrade and not allow_downgrade:
        raise RedirectError(url=redact_url(url), reason="from https to plain http")
    return target
