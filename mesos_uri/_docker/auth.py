"""Registry authorisation: the Bearer token flow (distribution's docs/spec/auth/token.md).

Beyond the original: tokens are cached per (realm, service, scope) and sent up front, so an image
costs one token request, not one per blob; ``token`` and ``access_token`` are both read; and a
plain-http realm for an https registry is refused, since credentials would cross in clear.
"""

from __future__ import annotations

import logging
import math
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import anyio
import attrs

from mesos_uri._http import Response
from mesos_uri._json import JSONError, parse_object
from mesos_uri._urls import Origin, redact_url
from mesos_uri.errors import AuthError, excerpt

if TYPE_CHECKING:
    from mesos_uri._www_authenticate import Challenge

__all__ = [
    "MAX_TOKEN_RESPONSE_BYTES",
    "Token",
    "TokenCache",
    "TokenKey",
    "bearer_challenge",
    "check_realm",
    "parse_token_response",
    "token_url",
]

_log = logging.getLogger(__name__)

# The token spec: "If omitted, the token is assumed to be valid for 60 seconds".
DEFAULT_EXPIRES_IN: Final = 60.0
# Renew this long before expiry, so that a token does not expire between our check and its use.
_EXPIRY_MARGIN: Final = 10.0
# Token responses are small JSON objects; 4 MiB is the limit containerd applies to them.
MAX_TOKEN_RESPONSE_BYTES: Final = 4 * 1024 * 1024


@attrs.frozen
class TokenKey:
    realm: str
    service: str | None
    scope: str | None


@attrs.frozen
class Token:
    value: str = attrs.field(repr=False)
    expires_at: float

    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.value}"}


@attrs.define
class TokenCache:
    """Tokens shared by every fetch of one plugin object (the agent's blob fetches run at once)."""

    _tokens: dict[TokenKey, Token] = attrs.Factory(dict)
    # Which token a repository was last authorised with, to send it up front next time.
    _by_repository: dict[tuple[str, str], TokenKey] = attrs.Factory(dict)
    _locks: dict[TokenKey, anyio.Lock] = attrs.Factory(dict)

    def cached_for(self, registry: str, repository: str) -> Token | None:
        key = self._by_repository.get((registry, repository))
        token = None if key is None else self._tokens.get(key)
        return token if token is not None and time.monotonic() < token.expires_at else None

    async def obtain(
        self,
        key: TokenKey,
        *,
        registry: str,
        repository: str,
        fetch: Callable[[], Awaitable[tuple[str, float]]],
        rejected: Token | None = None,
    ) -> Token:
        """The token for ``key``: cached, or fetched once however many tasks ask at the same time;
        never ``rejected``, a token the registry just refused (expired or revoked)."""
        async with self._locks.setdefault(key, anyio.Lock()):
            token = self._tokens.get(key)
            if token is None or time.monotonic() >= token.expires_at or token == rejected:
                value, expires_in = await fetch()
                margin = min(_EXPIRY_MARGIN, expires_in / 10)
                token = Token(value, time.monotonic() + expires_in - margin)
                self._tokens[key] = token
                realm = redact_url(key.realm)
                _log.info(
                    "token for %s obtained from %s (valid %.0f s)", key.scope, realm, expires_in
                )
            else:
                _log.info("token for %s reused", key.scope)
            self._by_repository[(registry, repository)] = key
            return token


def token_url(realm: str, service: str | None, scopes: list[str]) -> str:
    """The realm with ``service`` and ``scope`` encoded into its query (the original broke both)."""
    params = [("service", service)] if service else []
    params += [("scope", scope) for scope in scopes]
    if not params:
        return realm
    separator = "&" if urllib.parse.urlsplit(realm).query else "?"
    return realm + separator + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def check_realm(realm: str, *, registry_scheme: str, url: str) -> None:
    """Refuse realms that would leak credentials or that curl could not reach sensibly."""
    try:
        scheme = Origin.of(realm).scheme
    except ValueError as exc:
        raise AuthError(
            f"Unsupported token realm '{excerpt(realm)}' in the challenge from {url}"
        ) from exc
    if registry_scheme == "https" and scheme == "http":
        raise AuthError(
            f"Refusing token realm '{excerpt(realm)}' from {url}: plain http for an https registry"
        )


def bearer_challenge(response: Response, url: str, *, basic_hint: str | None = None) -> Challenge:
    """The Bearer challenge of a 401, with the original's error texts; a Basic challenge (the
    registry refused what was sent up front, or nothing) carries ``basic_hint``."""
    value = response.headers.get("WWW-Authenticate")
    if not value:
        raise AuthError(f"Got unexpected empty WWW-Authenticate header from {url}")
    try:
        from mesos_uri._www_authenticate import select_challenge  # only a 401 needs it

        challenge = select_challenge(value)
    except AuthError as exc:
        raise AuthError(f"Failed to get WWW-Authenticate header from {url}: {exc}") from exc
    scheme = challenge.scheme.upper()
    if scheme == "BASIC":
        raise AuthError(
            f"Got unexpected BASIC Authorization response status: {response.status} from {url}",
            hint=basic_hint,
        )
    if scheme != "BEARER":
        raise AuthError(f"Got unsupported auth-scheme: {scheme} from {url}")
    return challenge


def parse_token_response(
    response: Response, url: str, *, hint: str | None = None
) -> tuple[str, float]:
    """(token, expires_in seconds) from the token endpoint's answer, a secret no error quotes."""
    if response.code != 200:
        raise AuthError(
            f"Unexpected HTTP response '{response.status}' when trying to GET '{redact_url(url)}'",
            hint=hint if response.code == 401 else None,
        )
    try:
        document = parse_object(response.body, secret=True)
    except JSONError as exc:
        raise AuthError(f"Parsing the JSON object failed: {exc}") from exc
    try:
        # The spec names it ``token``; OAuth2-style servers send ``access_token``; either will do.
        value = document.optional_string("token") or document.optional_string("access_token")
    except JSONError as exc:
        raise AuthError(f"Finding token in JSON object failed: {exc}") from exc
    if value is None:
        raise AuthError("Failed to find token in JSON object")
    if not value:
        raise AuthError("Finding token in JSON object failed: the token is empty")
    # A lifetime that is not a positive number is the spec's default, not an error.
    expires_in = document.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return value, DEFAULT_EXPIRES_IN
    return value, float(expires_in) if 0 < expires_in < math.inf else DEFAULT_EXPIRES_IN
