"""The fetcher's URI (protobuf ``mesos.URI``), its string form and its parser.

Every field but ``scheme`` and ``path`` may be unset (``None``), and set-to-empty differs from
unset: ``URI("file", "/etc/hosts", host="")`` is ``file:///etc/hosts``, without the host it is
``file:/etc/hosts``.

The string form is the original's (``scheme:[//[user[:password]@]host[:port]]path[?query]
[#fragment]``), except that a ``/`` separates a docker URI's host and repository (the original
glued them: ``docker://registry-1.docker.iolibrary/busybox?latest``, which no parser can split).
Nothing is percent-encoded: the string form is the URL curl is given, as in the original, so a
``URI`` refuses with a ``UsageError`` the field values whose string form would read back
differently, and ``parse_uri(str(u)) == u`` holds for every ``URI`` that can be built.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from mesos_uri._urls import MAX_PORT, MIN_PORT, host_problem, join_hostport, split_hostport
from mesos_uri.errors import UsageError

__all__ = ["DEFAULT_DOCKER_TRANSPORT", "URI", "manifest_url", "parse_uri", "registry_base"]

DOCKER_SCHEMES: Final = frozenset({"docker", "docker-manifest", "docker-blob"})
# The fragment of a docker URI names the transport of registry calls.
DOCKER_TRANSPORTS: Final = frozenset({"http", "https"})
DEFAULT_DOCKER_TRANSPORT: Final = "https"

_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
# scheme ":" [ "//" authority ] path [ "?" query ] [ "#" fragment ], split as RFC 3986's appendix
# B does, the scheme to be checked.
_PARTS: Final = re.compile(r"([^:]*):(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?", re.DOTALL)
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

# Stands for a password in messages.
_MASK: Final = "***"
# The original's texts for a docker URI without a host or a tag/digest.
_NO_HOST: Final = "Registry host (uri.host) is not specified"
_NO_QUERY: Final = "Image tag/digest (uri.query) is not specified"
# A URI's fields in order: scheme, path, host, port, query, fragment, user, password.
_Fields = tuple[str, str, str | None, int | None, str | None, str | None, str | None, str | None]


@attrs.frozen
class URI:
    """A fetcher URI; ``str()`` gives the form handed to curl and printed in messages."""

    scheme: str
    path: str = ""
    host: str | None = None
    port: int | None = None
    query: str | None = None
    fragment: str | None = None
    user: str | None = None
    password: str | None = attrs.field(
        default=None, repr=lambda value: repr(None if value is None else _MASK)
    )

    def __attrs_post_init__(self) -> None:
        problem = _problem(attrs.astuple(self, recurse=False))
        if problem is not None:
            try:
                shown = self.redacted()
            except TypeError:  # a field of the wrong type: show the fields instead
                fields = attrs.asdict(self, recurse=False)
                shown = repr({**fields, "password": _MASK} if self.password is not None else fields)
            raise UsageError(f"Invalid URI '{shown}': {problem}")

    def __str__(self) -> str:
        return self._text(self.password)

    def redacted(self) -> str:
        """The string form with the password masked, for messages and logs."""
        return self._text(None if self.password is None else _MASK)

    def _text(self, password: str | None) -> str:
        text = f"{self.scheme}:"
        if self.host is not None:
            text += "//"
            if self.user is not None:  # as in the original, only written with a host
                text += self.user + ("" if password is None else f":{password}") + "@"
            text += join_hostport(self.host, self.port)
            # Unlike the original, a separator between registry and repository.
            if self.scheme in DOCKER_SCHEMES and not self.path.startswith("/"):
                text += "/"
        text += self.path
        if self.query is not None:
            text += f"?{self.query}"
        if self.fragment is not None:
            text += f"#{self.fragment}"
        return text

    @property
    def is_docker(self) -> bool:
        """Whether the docker plugin's schemes apply (``docker``, ``docker-manifest``, ...)."""
        return self.scheme in DOCKER_SCHEMES


def _problem(fields: _Fields) -> str | None:
    """Why these fields cannot form a URI whose string form parses back to it, or None."""
    scheme, path, host, port, query, fragment, user, password = fields
    texts = {"host": host, "query": query, "fragment": fragment, "user": user}
    return (
        _type_problem(scheme, port, {"path": path, **texts, "password": password})
        or _authority_problem(host, port, user, password)
        or _path_problem(scheme, path, host, query)
        or (_docker_problem(path, host, query, fragment) if scheme in DOCKER_SCHEMES else None)
    )


def _type_problem(scheme: object, port: object, texts: dict[str, object]) -> str | None:
    """Types (annotations are not enforced), and no control character, which curl cannot take."""
    if not isinstance(scheme, str) or not _SCHEME.fullmatch(scheme):
        return _bad_scheme(scheme)
    for name, value in texts.items():
        if value is None and name != "path":
            continue
        shown = _MASK if name == "password" else repr(value)
        if not isinstance(value, str):
            return f"{name} {shown} is not a string"
        if _CONTROL.search(value):
            return f"{name} {shown} contains a control character"
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not MIN_PORT <= port <= MAX_PORT
    ):
        return f"port {port!r} is not a number in {MIN_PORT}..{MAX_PORT}"
    return None


def _bad_scheme(scheme: object) -> str:
    return f"scheme '{scheme}' must be a letter followed by letters, digits, '+', '-' or '.'"


def _authority_problem(
    host: str | None, port: int | None, user: str | None, password: str | None
) -> str | None:
    if host is None:
        if port is not None or user is not None or password is not None:
            # The string form writes port and credentials only after a host.
            return "a port, user or password needs a host"
        return None
    if (problem := host_problem(host)) is not None:
        return problem
    if password is not None and user is None:
        return "a password needs a user"
    # Each would end its field early when the string form is parsed back.
    for name, value, forbidden in (("user", user, ":@/?#"), ("password", password, "@/?#")):
        if value is not None and (bad := next((c for c in value if c in forbidden), None)):
            return f"{name} contains '{bad}'"
    return None


def _path_problem(scheme: str, path: str, host: str | None, query: str | None) -> str | None:
    for name, value, forbidden in (("path", path, "?#"), ("query", query or "", "#")):
        if (bad := next((c for c in forbidden if c in value), None)) is not None:
            return f"{name} '{value}' contains '{bad}'"
    if host is None:
        if path.startswith("//"):
            return f"path '{path}' would read as a host: without a host it cannot start with '//'"
    elif scheme not in DOCKER_SCHEMES and path and not path.startswith("/"):
        return f"path '{path}' must start with '/' when a host is set"
    return None


def _docker_problem(
    path: str, host: str | None, query: str | None, fragment: str | None, *, text: bool = False
) -> str | None:
    """The original checks host and query at fetch time; we refuse them at construction, so that
    every docker URI has a string form. A ``text`` (its path still led by the separator) is
    refused in the command line's words."""
    if not host:
        return "docker URI needs a registry host" if text else _NO_HOST
    if not path or (text and path == "/"):
        return "docker URI needs a repository path"
    if path.startswith("/") and not text:
        return f"repository '{path}' must not start with '/'"
    if not query:
        return "docker URI needs '?<tag or digest>'" if text else _NO_QUERY
    if fragment is not None and fragment not in DOCKER_TRANSPORTS:
        return f"docker URI fragment '{fragment}' must be 'http' or 'https'"
    return None


def parse_uri(text: str) -> URI:
    """Parse what ``str(URI)`` writes: ``docker[-manifest|-blob]://HOST[:PORT]/REPO?REF[#http|
    https]`` (the first ``/`` after the authority separates), ``http(s)://[user[:password]@]host
    [:port]/path[?query][#fragment]``, ``file:///abs/path``, host-less ``scheme:path``, ..."""

    def invalid(reason: str) -> UsageError:
        return UsageError(f"Invalid URI '{_redact(text)}': {reason}")

    match = _PARTS.fullmatch(text)
    if match is None or not _SCHEME.fullmatch(match[1]):
        raise invalid(_bad_scheme(text.partition("://")[0]) if "://" in text else "missing '://'")
    scheme, authority, path, query, fragment = match.groups()
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    if authority is not None:
        userinfo, at, hostport = authority.rpartition("@")
        if at:
            user, colon, pw = userinfo.partition(":")
            password = pw if colon else None
        try:
            host, port = split_hostport(hostport)
        except ValueError as exc:
            raise invalid(str(exc)) from exc
    elif scheme in DOCKER_SCHEMES:
        raise invalid("missing '://'")
    if scheme in DOCKER_SCHEMES:
        if (problem := _docker_problem(path, host, query, fragment, text=True)) is not None:
            raise invalid(problem)
        path = path[1:]  # the separator
    fields = (scheme, path, host, port, query, fragment, user, password)
    if (problem := _problem(fields)) is not None:
        raise invalid(problem)
    return URI(*fields)


def _redact(text: str) -> str:
    """``text`` with the password of a ``scheme://user:password@`` prefix masked."""
    head, sep, rest = text.partition("://")
    end = next((i for i, char in enumerate(rest) if char in "/?#"), len(rest))
    userinfo, at, hostport = rest[:end].rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not (sep and at and colon):
        return text
    return f"{head}://{user}:{_MASK}@{hostport}{rest[end:]}"


def registry_base(uri: URI) -> str:
    """``T://host[:port]``, the base of every registry URL; ``T`` is the fragment, else https."""
    if not uri.is_docker:
        raise UsageError(f"'{uri.redacted()}' is not a docker URI")
    assert uri.host is not None  # a docker URI always has one
    return f"{uri.fragment or DEFAULT_DOCKER_TRANSPORT}://{join_hostport(uri.host, uri.port)}"


def manifest_url(base: str, repository: str, reference: str) -> str:
    """Where a registry at ``base`` (see :func:`registry_base`) serves a manifest."""
    return f"{base}/v2/{repository}/manifests/{reference}"
