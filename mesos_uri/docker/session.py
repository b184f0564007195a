"""Talking to one repository of one registry: requests and downloads with their 401 dance.

A session is what the original threads through its continuations by hand: the registry URL, the
repository, the Basic credentials and the headers that authorise the next request (SPEC.md §5.4).
It is made per fetch; the token cache it uses lives in the plugin, so sessions share tokens.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from typing import Final

import attrs

from mesos_uri import curl
from mesos_uri.curl import TLS
from mesos_uri.docker.auth import (
    MAX_TOKEN_RESPONSE_BYTES,
    Token,
    TokenCache,
    TokenKey,
    bearer_challenge,
    check_realm,
    parse_token_response,
    token_url,
)
from mesos_uri.docker.credentials import (
    OAUTH_CONTENT_TYPE,
    RegistryCredentials,
    identity_token_request,
    parse_oauth_response,
)
from mesos_uri.errors import AuthError, DecodeError, HTTPStatusError
from mesos_uri.http import DEFAULT_PORTS, REDIRECT_CODES, Response
from mesos_uri.retry import RetryPolicy, run_with_retries, transient_status

__all__ = ["MAX_REDIRECTS", "Session", "registry_error_detail", "same_origin"]

# curl's own default for --max-redirs is 50; a registry needs one hop (to storage), so 10 is
# generous and stops a redirect loop early (the original recursed without bound, SPEC §9 row 16).
MAX_REDIRECTS: Final = 10


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def same_origin(a: str, b: str) -> bool:
    """Scheme, host and port equal: only then may a redirect carry our Authorization header."""
    return _origin(a) == _origin(b)


def _check_content_range(response: Response, offset: int, url: str) -> None:
    """A 206 must continue exactly where we stopped, or the bytes would be spliced wrongly."""
    value = response.headers.get("Content-Range") or ""
    unit, _, spec = value.partition(" ")
    start = spec.partition("-")[0]
    if unit.strip().lower() != "bytes" or not start.isdigit() or int(start) != offset:
        raise DecodeError(f"Resuming '{url}' at byte {offset} got 'Content-Range: {value}' instead")


def registry_error_detail(response: Response) -> str:
    """`` (CODE: message)`` from a registry's JSON error body, or nothing (REGISTRY-NOTES.md)."""
    try:
        document = json.loads(response.body)
        first = document["errors"][0]
        code, message = str(first.get("code", "")), str(first.get("message", ""))
    except (
        ValueError,
        UnicodeDecodeError,
        RecursionError,  # a hostile body nested deeper than json can follow
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
    ):
        return ""
    text = ": ".join(part for part in (code, message) if part)
    return f" ({text})" if text else ""


@attrs.define
class Session:
    registry: str  # T://host[:port], no trailing slash
    repository: str
    credentials: RegistryCredentials | None
    tokens: TokenCache
    stall_timeout: float | None = None
    connect_timeout: float | None = None
    # MESOS-10092: a challenge without service/scope is completed from the /v2/ root challenge.
    scope_fallback: bool = True
    retry: RetryPolicy = attrs.Factory(RetryPolicy)
    # The CA bundle / client certificate / verification for a URL (per host, as Docker's).
    tls_for: Callable[[str], TLS | None] = lambda url: None

    def basic_header(self) -> dict[str, str]:
        """Basic credentials, for the registry and its realm only; an identity token has none."""
        if self.credentials is None or self.credentials.is_identity_token:
            return {}
        return {"Authorization": f"Basic {self.credentials.basic()}"}

    def auth_headers(self) -> dict[str, str]:
        """What to send up front: a cached token for this repository, else Basic, else nothing."""
        token = self.tokens.cached_for(self.registry, self.repository)
        return token.header() if token is not None else self.basic_header()

    async def get(self, url: str, *, accept: str | None = None, max_bytes: int) -> Response:
        """A request-mode GET, authorised; a 401 is answered once with a (new) token."""
        extra = {"Accept": accept} if accept else {}
        sent = self.tokens.cached_for(self.registry, self.repository)
        response = await self._request(url, {**extra, **self.auth_headers()}, max_bytes)
        if response.code == 401:
            token = await self.authorize(response, url, rejected=sent)
            response = await self._request(url, {**extra, **token.header()}, max_bytes)
        return response

    async def download(
        self,
        url: str,
        sink: Callable[[bytes], None],
        *,
        restart: Callable[[], None],
        offset: int = 0,
        anonymous: bool = False,
        renewed: bool = False,
        hops: int = 0,
    ) -> Response:
        """Download ``url`` into ``sink``; returns the final response (the caller checks it).

        ``renewed``: the token was already renewed for this attempt (no second renewal);
        ``hops``: redirects already followed for it (a batched first attempt's).

        Redirects are followed here rather than by curl, so that the Authorization header goes
        only to the registry's own origin (blob storage and CDNs get none). ``anonymous`` sends
        no credentials at all (a foreign layer's URLs are not the registry's). With ``offset``
        the download resumes there; a server that ignores the Range answers 200 and ``restart``
        rewinds the sink before the first byte arrives.
        """
        ranged = {"Range": f"bytes={offset}-"} if offset else {}
        auth = {} if anonymous else self.auth_headers()
        sent = None if anonymous else self.tokens.cached_for(self.registry, self.repository)
        authorized = renewed

        def check(response: Response) -> None:
            if offset and response.code == 200:
                restart()
            elif response.code == 206:
                _check_content_range(response, offset, url)

        for _ in range(MAX_REDIRECTS + 1 - hops):
            result = await curl.download(
                url,
                sink,
                headers={**ranged, **(auth if same_origin(url, self.registry) else {})},
                stall_timeout=self.stall_timeout,
                connect_timeout=self.connect_timeout,
                on_response=check,
                tls=self.tls_for(url),
            )
            response = result.response
            if (
                response.code == 401
                and not (authorized or anonymous)
                and same_origin(url, self.registry)
            ):
                # The challenge comes with the download itself: no probe request (SPEC §9 row 4).
                # A token refused here (expired, revoked) is renewed once, never twice.
                authorized = True
                auth = (await self.authorize(response, url, rejected=sent)).header()
                continue
            if response.code in REDIRECT_CODES and result.redirect_url:
                url = result.redirect_url
                continue
            return response
        raise HTTPStatusError(
            f"Too many redirects (more than {MAX_REDIRECTS}) when trying to download '{url}'",
            code=0,
        )

    async def authorize(self, response: Response, url: str, *, rejected: Token | None) -> Token:
        """Answer a 401: find the token the challenge asks for, from the cache or the realm."""
        challenge = bearer_challenge(response, url)
        realm = challenge.param("realm") or ""
        service = challenge.param("service")
        scope = challenge.param("scope")
        if not (realm and service and scope):
            raw = response.headers.get("WWW-Authenticate") or ""
            message = f"Missing 'realm', 'service' or 'scope' in header WWW-Authenticate: {raw}"
            if not self.scope_fallback:
                raise AuthError(message)
            realm, service, scope = await self._root_challenge(service)
        check_realm(realm, registry_scheme=urllib.parse.urlsplit(self.registry).scheme, url=url)
        key = TokenKey(realm, service, scope)
        token_endpoint = token_url(realm, service, [scope] if scope else [])

        async def attempt(_: int) -> tuple[str, float]:
            if self.credentials is not None and self.credentials.is_identity_token:
                return await self._refresh_token(realm, service, scope)
            reply = await self._request(
                token_endpoint, self.basic_header(), MAX_TOKEN_RESPONSE_BYTES
            )
            if transient_status(reply.code):
                raise HTTPStatusError(
                    f"Unexpected HTTP response '{reply.status}' when trying to GET "
                    f"'{token_endpoint}'",
                    code=reply.code,
                    retry_after=reply.headers.get("Retry-After"),
                )
            if reply.code == 401 and self.credentials is None:
                raise AuthError(
                    f"Unexpected HTTP response '{reply.status}' when trying to GET "
                    f"'{token_endpoint}': the repository needs credentials and none were given"
                )
            return parse_token_response(reply, token_endpoint)

        async def fetch() -> tuple[str, float]:
            return await run_with_retries(
                attempt, policy=self.retry, describe=f"token from {realm}"
            )

        return await self.tokens.obtain(
            key, registry=self.registry, repository=self.repository, fetch=fetch, rejected=rejected
        )

    async def _refresh_token(
        self, realm: str, service: str | None, scope: str | None
    ) -> tuple[str, float]:
        """An identity token (``docker login`` with OAuth) is traded at the realm by POST."""
        assert self.credentials is not None
        url, body = identity_token_request(realm, service, scope, self.credentials)
        reply = await curl.request(
            url,
            method="POST",
            data=body,
            headers={"Content-Type": OAUTH_CONTENT_TYPE},
            stall_timeout=self.stall_timeout,
            connect_timeout=self.connect_timeout,
            max_bytes=MAX_TOKEN_RESPONSE_BYTES,
            tls=self.tls_for(url),
        )
        if transient_status(reply.code):
            raise HTTPStatusError(
                f"Unexpected HTTP response '{reply.status}' when trying to POST to '{realm}'",
                code=reply.code,
                retry_after=reply.headers.get("Retry-After"),
            )
        token = parse_oauth_response(reply, url)
        return token.access_token, token.expires_in

    async def _root_challenge(self, service: str | None) -> tuple[str, str | None, str]:
        """Realm and service from the ``/v2/`` challenge, scope generated (MESOS-10092)."""
        root = f"{self.registry}/v2/"
        reply = await self._request(root, self.basic_header(), MAX_TOKEN_RESPONSE_BYTES)
        challenge = bearer_challenge(reply, root)
        realm = challenge.param("realm")
        if not realm:
            raise AuthError(f"Missing 'realm' in WWW-Authenticate header obtained from {root}")
        return realm, challenge.param("service") or service, f"repository:{self.repository}:pull"

    async def _request(self, url: str, headers: dict[str, str], max_bytes: int) -> Response:
        return await curl.request(
            url,
            headers=headers,
            stall_timeout=self.stall_timeout,
            connect_timeout=self.connect_timeout,
            max_bytes=max_bytes,
            tls=self.tls_for(url),
        )
