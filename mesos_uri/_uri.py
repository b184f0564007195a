"""The fetcher's URI (protobuf ``mesos.URI``), its string form and its parser.

Every field but ``scheme`` and ``path`` may be unset (``None``), and set-to-empty differs from
unset: ``URI("file", "/etc/hosts", host="")`` is ``file:///etc/hosts``, without the host it is
``file:/etc/hosts``.

The string form is the original's (``scheme:[//[user[:password]@]host[:port]]path[?query]
[#fragment]``) with one departure: the original glues a docker URI's host and repository together
(``docker://registry-1.docker.iolibrary/busybox?latest``), which no parser can split again; we
write a ``/`` between them. With that, ``parse_uri(str(u)) == u`` holds for every ``URI`` that can
be built, because the class refuses, with a ``UsageError``, the field values whose string form
would read back differently. Nothing is percent-encoded: the string form is the URL curl is given,
exactly as in the original, so instead of escaping we refuse what cannot round-trip:

* ``scheme``: RFC 3986 ``ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )``;
* no field holds an ASCII control character (they cannot be passed to curl meaningfully);
* ``host``: none of ``/ ? # @ [ ] %`` or spaces; a host with ``:`` must be an IPv6 address and is
  written in brackets (``[::1]:5000``); ``port``: 1..65535; ``user`` needs a host and holds none
  of ``: @ / ? #``; ``password`` needs a user and holds none of ``@ / ? #``;
* ``path`` holds no ``?`` or ``#``, ``query`` no ``#``; with a host, a non-docker path is empty
  or starts with ``/`` (it would run into the host); without a host it does not start with
  ``//`` (it would read as one);
* docker schemes: a non-empty registry host, a non-empty repository path that does not start
  with ``/``, a non-empty ``query`` (tag or digest), and a ``fragment`` that is unset, ``http``
  or ``https`` (the registry transport).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import attrs

from mesos_uri._urls import MAX_PORT, MIN_PORT, host_problem, join_hostport, split_hostport
from mesos_uri.errors import UsageError

__all__ = [
    "DEFAULT_DOCKER_TRANSPORT",
    "DOCKER_SCHEMES",
    "DOCKER_TRANSPORTS",
    "URI",
    "parse_uri",
    "registry_base",
]

DOCKER_SCHEMES: Final = frozenset({"docker", "docker-manifest", "docker-blob"})
# The fragment of a docker URI names the transport of registry calls.
DOCKER_TRANSPORTS: Final = frozenset({"http", "https"})
DEFAULT_DOCKER_TRANSPORT: Final = "https"

_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_USER_FORBIDDEN: Final = ":@/?#"
_PASSWORD_FORBIDDEN: Final = "@/?#"

# Stands for a password in messages.
_MASK: Final = "***"


@attrs.frozen
class URI:
    """A fetcher URI; ``str()`` gives the form handed to curl and printed in messages.

    Construction validates the fields (see the module docstring) and raises ``UsageError``.
    """

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
        problem = _problem(
            scheme=self.scheme,
            path=self.path,
            host=self.host,
            port=self.port,
            query=self.query,
            fragment=self.fragment,
            user=self.user,
            password=self.password,
        )
        if problem is not None:
            try:
                shown = self.redacted()
            except TypeError:  # a field of the wrong type: show the fields instead
                fields = attrs.asdict(self, recurse=False)
                if self.password is not None:
                    fields["password"] = _MASK
                shown = repr(fields)
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
            # user/password are only written with a host, as in the original.
            if self.user is not None:
                text += self.user
                if password is not None:
                    text += f":{password}"
                text += "@"
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


def _problem(
    *,
    scheme: str,
    path: str,
    host: str | None,
    port: int | None,
    query: str | None,
    fragment: str | None,
    user: str | None,
    password: str | None,
) -> str | None:
    """Why these fields cannot form a URI whose string form parses back to it, or None."""
    texts: dict[str, object] = {
        "path": path,
        "host": host,
        "query": query,
        "fragment": fragment,
        "user": user,
        "password": password,
    }
    return (
        _type_problem(scheme, port, texts)
        or _authority_problem(host, port, user, password)
        or _path_problem(scheme, path, host, query)
        or (_docker_problem(path, host, query, fragment) if scheme in DOCKER_SCHEMES else None)
    )


def _type_problem(scheme: object, port: object, texts: dict[str, object]) -> str | None:
    """Checks that need no other field; the annotations are not enforced at run time."""
    if not isinstance(scheme, str) or not _SCHEME.fullmatch(scheme):
        return f"scheme '{scheme}' must be a letter followed by letters, digits, '+', '-' or '.'"
    for name, value in texts.items():
        if value is None and name != "path":
            continue
        if not isinstance(value, str):
            return f"{name} {value!r} is not a string"
        if _CONTROL.search(value):
            return f"{name} {value!r} contains a control character"
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not MIN_PORT <= port <= MAX_PORT
    ):
        return f"port {port!r} is not a number in {MIN_PORT}..{MAX_PORT}"
    return None


def _authority_problem(
    host: str | None, port: int | None, user: str | None, password: str | None
) -> str | None:
    if host is None:
        if port is not None or user is not None or password is not None:
            # The string form writes port and credentials only after a host.
            return "a port, user or password needs a host"
        return None
    problem = host_problem(host)
    if problem is not None:
        return problem
    if password is not None and user is None:
        return "a password needs a user"
    if user is not None and (bad := next((c for c in user if c in _USER_FORBIDDEN), None)):
        return f"user contains '{bad}'"
    if password is not None and (
        bad := next((c for c in password if c in _PASSWORD_FORBIDDEN), None)
    ):
        return f"password contains '{bad}'"
    return None


def _path_problem(scheme: str, path: str, host: str | None, query: str | None) -> str | None:
    for char in "?#":
        if char in path:
            return f"path '{path}' contains '{char}'"
    if query is not None and "#" in query:
        return f"query '{query}' contains '#'"
    if host is None:
        if path.startswith("//"):
            return f"path '{path}' would read as a host: without a host it cannot start with '//'"
    elif scheme not in DOCKER_SCHEMES and path and not path.startswith("/"):
        return f"path '{path}' must start with '/' when a host is set"
    return None


def _docker_problem(
    path: str, host: str | None, query: str | None, fragment: str | None
) -> str | None:
    # The original checks host and query at fetch time; we refuse them at construction so that
    # every docker URI has a string form that parses back.
    if not host:
        return "Registry host (uri.host) is not specified"
    if not path:
        return "docker URI needs a repository path"
    if path.startswith("/"):
        return f"repository '{path}' must not start with '/'"
    if not query:
        return "Image tag/digest (uri.query) is not specified"
    if fragment is not None and fragment not in DOCKER_TRANSPORTS:
        return f"docker URI fragment '{fragment}' must be 'http' or 'https'"
    return None


def parse_uri(text: str) -> URI:
    """Parse the string form back into a URI; raise ``UsageError`` naming the text and the fault.

    Accepts what ``str(URI)`` writes, which covers the command line's forms:
    ``docker[-manifest|-blob]://HOST[:PORT]/REPO?REF[#http|https]`` (exactly one ``/`` after the
    authority is the separator, REPO may contain further ``/``, REF may contain ``:``),
    ``http(s)://[user[:password]@]host[:port]/path[?query][#fragment]``, ``ftp(s)://...``,
    ``file:///abs/path``, ``hdfs://...`` and, without ``//``, host-less ``scheme:path``.
    IPv6 hosts are written in brackets (``[::1]:5000``) and stored without them.
    """

    def invalid(reason: str) -> UsageError:
        return UsageError(f"Invalid URI '{_redact(text)}': {reason}")

    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        if "://" in text:
            raise invalid(
                f"scheme '{text.partition('://')[0]}' must be a letter followed by letters, "
                "digits, '+', '-' or '.'"
            )
        raise invalid("missing '://'")
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    if rest.startswith("//"):
        after = rest[2:]
        end = next((i for i, char in enumerate(after) if char in "/?#"), len(after))
        authority, rest = after[:end], after[end:]
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
    rest, hash_sign, fragment_text = rest.partition("#")
    fragment = fragment_text if hash_sign else None
    path, question_mark, query_text = rest.partition("?")
    query = query_text if question_mark else None
    if scheme in DOCKER_SCHEMES:
        path = _docker_repository(path, host, query, fragment, invalid)
    problem = _problem(
        scheme=scheme,
        path=path,
        host=host,
        port=port,
        query=query,
        fragment=fragment,
        user=user,
        password=password,
    )
    if problem is not None:
        raise invalid(problem)
    return URI(scheme, path, host, port, query, fragment, user, password)


def _redact(text: str) -> str:
    """``text`` with the password of a ``scheme://user:password@`` prefix masked."""
    head, sep, rest = text.partition("://")
    end = next((i for i, char in enumerate(rest) if char in "/?#"), len(rest))
    userinfo, at, hostport = rest[:end].rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not (sep and at and colon):
        return text
    return f"{head}://{user}:{_MASK}@{hostport}{rest[end:]}"


def _docker_repository(
    path: str,
    host: str | None,
    query: str | None,
    fragment: str | None,
    invalid: Callable[[str], UsageError],
) -> str:
    """The repository of a docker URI's path: exactly one leading ``/`` removed."""
    if not host:
        raise invalid("docker URI needs a registry host")
    if path in ("", "/"):
        raise invalid("docker URI needs a repository path")
    if not query:
        raise invalid("docker URI needs '?<tag or digest>'")
    if fragment is not None and fragment not in DOCKER_TRANSPORTS:
        raise invalid(f"docker URI fragment '{fragment}' must be 'http' or 'https'")
    return path[1:]


def registry_base(uri: URI) -> str:
    """``T://host[:port]`` of a docker URI: the base of every registry URL; ``T`` is the
    fragment, else ``https``."""
    if not uri.is_docker:
        raise UsageError(f"'{uri}' is not a docker URI")
    assert uri.host is not None  # a docker URI always has one
    return f"{uri.fragment or DEFAULT_DOCKER_TRANSPORT}://{join_hostport(uri.host, uri.port)}"
