"""The ``WWW-Authenticate`` header: challenges as registries send them.

Grammar (RFC 9110)::

    WWW-Authenticate = #challenge
    challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    auth-param       = token BWS "=" BWS ( token / quoted-string )
    token68          = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    quoted-string    = DQUOTE *( qdtext / quoted-pair ) DQUOTE
    quoted-pair      = "\\" ( HTAB / SP / VCHAR / obs-text )

The original split on spaces and took one challenge, with case-sensitive names and no escapes;
its error texts are kept so that logs read the same.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from mesos_uri.errors import AuthError, excerpt

__all__ = ["Challenge", "parse_www_authenticate", "select_challenge"]

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# token BWS "=" BWS: the name of an auth-param (BWS as _skip reads it: spaces and tabs).
_PARAM_NAME: Final = re.compile("(" + _TOKEN.pattern + r")[ \t]*=[ \t]*")
_TOKEN68: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# qdtext and the escaped characters of quoted-pair: every character but CTLs (HTAB allowed);
# non-ASCII is obs-text, as the header bytes were decoded as latin-1.
_QUOTED: Final = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*)"')
_QUOTED_PAIR: Final = re.compile(r"\\(.)", re.DOTALL)
# Schemes whose challenges name a realm: Basic (RFC 7617) and Digest (RFC 7616) must; Bearer
# names the token endpoint there (Docker's token spec). The original required it of all.
_REALM_SCHEMES: Final = frozenset({"basic", "bearer", "digest"})


@attrs.frozen
class Challenge:
    """One challenge: its scheme as sent, its auth-params in order, or a token68."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()
    token68: str | None = None

    def param(self, name: str) -> str | None:
        """The last value of ``name``, compared case-insensitively (RFC 9110)."""
        wanted = name.lower()
        return next((value for key, value in reversed(self.params) if key.lower() == wanted), None)


def parse_www_authenticate(value: str) -> list[Challenge]:
    """Every challenge of a ``WWW-Authenticate`` value, in order; AuthError if malformed."""
    challenges: list[Challenge] = []
    pos = 0
    while (pos := _skip(value, pos, " \t,")) < len(value):
        challenge, pos = _parse_challenge(value, pos)
        challenges.append(challenge)
    if not challenges:
        raise _format_error(value)
    return challenges


def select_challenge(value: str) -> Challenge:
    """The Bearer challenge when the header offers one (the Docker token flow), else the first;
    scheme names are case-insensitive (RFC 9110)."""
    challenges = parse_www_authenticate(value)
    return next((c for c in challenges if c.scheme.lower() == "bearer"), challenges[0])


def _format_error(value: str) -> AuthError:
    return AuthError(f"Unexpected WWW-Authenticate header format: '{_shown(value)}'")


def _param_error(rest: str) -> AuthError:
    return AuthError(f"Unexpected auth-param format: '{_shown(rest)}'")


def _skip(value: str, pos: int, chars: str = " \t") -> int:
    """Skip OWS (the original only skipped spaces); with ``,`` also the empty list elements
    (``,,``) that RFC 9110 says to accept."""
    while pos < len(value) and value[pos] in chars:
        pos += 1
    return pos


def _parse_challenge(value: str, pos: int) -> tuple[Challenge, int]:
    scheme_match = _TOKEN.match(value, pos)
    if scheme_match is None:
        raise _format_error(value)
    scheme = scheme_match[0]
    pos = scheme_match.end()
    # RFC 9110 says 1*SP here; a tab is accepted too, as everywhere else in the header.
    start = _skip(value, pos)
    if start == pos:
        if pos < len(value) and value[pos] != ",":
            raise _format_error(value)
        return _checked(value, Challenge(scheme), ""), pos

    token68 = _TOKEN68.match(value, start)
    if token68 is not None:
        after = _skip(value, token68.end())
        if after == len(value) or value[after] == ",":
            return _checked(value, Challenge(scheme, token68=token68[0]), token68[0]), after

    params: list[tuple[str, str]] = []
    pos = end = start
    while True:
        separator = pos
        pos = _skip(value, pos, " \t,")
        if pos == len(value) or ("," in value[separator:pos] and _starts_challenge(value, pos)):
            break
        name, param_value, pos = _parse_param(value, pos, start)
        params.append((name, param_value))
        end = pos
        pos = _skip(value, pos)
        if pos < len(value) and value[pos] != ",":
            raise _param_error(value[start:])
    rest = value[start:end] if params else value[start:pos].rstrip(" \t")
    return _checked(value, Challenge(scheme, tuple(params)), rest), pos


def _starts_challenge(value: str, pos: int) -> bool:
    """After a comma: a token not followed by ``=`` begins the next challenge."""
    return _TOKEN.match(value, pos) is not None and _PARAM_NAME.match(value, pos) is None


def _parse_param(value: str, pos: int, start: int) -> tuple[str, str, int]:
    """``token BWS "=" BWS ( token / quoted-string )``; errors quote the params from ``start``."""
    name = _PARAM_NAME.match(value, pos)
    if name is None:
        raise _param_error(value[start:])
    pos = name.end()
    if (quoted := _QUOTED.match(value, pos)) is not None:
        return name[1], _QUOTED_PAIR.sub(r"\1", quoted[1]), quoted.end()
    if (token := _TOKEN.match(value, pos)) is not None:
        return name[1], token[0], token.end()
    raise _param_error(value[start:])


def _checked(value: str, challenge: Challenge, rest: str) -> Challenge:
    """Require a realm where the scheme defines one, with the original's texts."""
    if challenge.scheme.lower() not in _REALM_SCHEMES or challenge.param("realm") is not None:
        return challenge
    if not rest:
        raise _format_error(value)
    raise AuthError(f"Unexpected auth-param '{_shown(rest)}': 'realm' is not defined")


def _shown(text: str) -> str:
    """A header's text made safe to quote (a blank one is quoted as it came)."""
    return excerpt(text) if text.strip() else text
