"""Talking to one repository of one registry: requests with their 401 dance and redirects.

A session is what the original threads through its continuations by hand: the registry, the
repository, the credentials and the headers that authorise the next request. It is made per
fetch; the token cache it uses lives in the plugin, so sessions share tokens.

Redirects are followed here, not by curl, under one rule (:func:`mesos_uri._urls.follow_redirect`),
and the ``Authorization`` header goes only to the registry's own origin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import attrs

from mesos_uri import _curl as curl
from mesos_uri._curl import TLS, Timeouts
from mesos_uri._docker.auth import (
    MAX_TOKEN_RESPONSE_BYTES,
    Token,
    TokenCache,
    TokenKey,
    bearer_challenge,
    check_realm,
    parse_token_response,
    token_url,
)
from mesos_uri._http import Response
from mesos_uri._json import JSONError, parse_object
from mesos_uri._retry import RetryPolicy, run_with_retries, transient_status
from mesos_uri._urls import REDIRECT_CODES, Origin, follow_redirect, redact_url, same_origin
from mesos_uri.errors import AuthError, HTTPStatusError, excerpt

if TYPE_CHECKING:
    from mesos_uri._docker.credentials import RegistryCredentials
    from mesos_uri._progress import BlobObserver
    from mesos_uri._transfers import Batcher, Outcome

__all__ = ["Session", "registry_error_detail", "status_error"]

# How much of a registry's error code and message an error text quotes.
_MAX_ERROR_CODE: Final = 64
_MAX_ERROR_MESSAGE: Final = 200


def registry_error_detail(body: bytes) -> str:
    """`` (CODE: message)`` from a registry's error body, sanitised and short, or nothing.

    Registries answer ``{"errors": [{"code": ..., "message": ..., "detail": ...}]}``; a server
    in front of one may answer a line of text ("Client sent an HTTP request to an HTTPS
    server."), which is quoted too; an HTML page is not.
    """
    try:
        errors = parse_object(body).children("errors")
        if not errors:
            return ""
        code = errors[0].optional_string("code") or ""
        message = errors[0].optional_string("message") or ""
    except JSONError:
        line = body[:_MAX_ERROR_MESSAGE].decode("utf-8", "replace").strip().split("\n", 1)[0]
        if not line or line.startswith(("<", "{", "[")):
            return ""
        code, message = "", line
    parts = (excerpt(code, _MAX_ERROR_CODE), excerpt(message, _MAX_ERROR_MESSAGE))
    text = ": ".join(part for part in parts if part)
    return f" ({text})" if text else ""


def status_error(reply: Response | Outcome, doing: str, body: bytes = b"") -> HTTPStatusError:
    """A response we cannot use: its status, what the registry said of it, when to retry."""
    return HTTPStatusError(
        f"Unexpected HTTP response '{reply.status}' when trying to {doing}"
        + registry_error_detail(body),
        code=reply.code,
        retry_after=reply.headers.get("Retry-After"),
    )


@attrs.define(kw_only=True)
class Session:
    registry: str  # T://host[:port], no trailing slash
    repository: str
    credentials: RegistryCredentials | None
    tokens: TokenCache
    timeouts: Timeouts
    retry: RetryPolicy
    # The CA bundle / client certificate / verification for a URL (per host, as Docker's).
    tls_for: Callable[[str], TLS | None]
    # An insecure registry may send us from https to plain http.
    insecure: bool
    max_blob_size: int | None
    # For blob downloads: the plugin's batcher (their shared curls), and who hears of progress.
    batcher: Batcher
    observer: BlobObserver | None
    _tls: dict[str, TLS | None] = attrs.field(factory=dict, init=False, repr=False)

    def tls(self, url: str) -> TLS | None:
        """The TLS settings for ``url``'s server, worked out once per server and session."""
        key = "/".join(url.split("/", 3)[:3])  # scheme://authority
        if key not in self._tls:
            self._tls[key] = self.tls_for(url)
        return self._tls[key]

    def basic_header(self) -> dict[str, str]:
        """Basic credentials, for the registry and its realm only; an identity token has none."""
        if self.credentials is None or self.credentials.is_identity_token:
            return {}
        return {"Authorization": f"Basic {self.credentials.basic()}"}

    def token(self) -> Token | None:
        """The cached token this repository was last authorised with, if still fresh."""
        return self.tokens.cached_for(self.registry, self.repository)

    def auth_headers(self, url: str) -> dict[str, str]:
        """What to send ``url`` up front: for the registry's own origin a cached token, else
        Basic, else nothing; for any other origin (blob storage, a CDN) nothing at all."""
        if not (url.startswith(self.registry + "/") or same_origin(url, self.registry)):
            return {}
        token = self.token()
        return token.header() if token is not None else self.basic_header()

    async def get(self, url: str, *, accept: str, max_bytes: int) -> Response:
        """A GET, authorised, redirects followed; a 401 is answered once with a (new) token."""
        sent = self.token()
        renewed = False
        hops = 0
        while True:
            headers = {"Accept": accept, **self.auth_headers(url)}
            response = await self._request(url, headers, max_bytes)
            if response.code == 401 and not renewed and same_origin(url, self.registry):
                await self.authorize(response, url, rejected=sent)
                renewed = True
                continue
            location = response.headers.get("Location")
            if response.code in REDIRECT_CODES and location:
                url = follow_redirect(url, location, hops=hops, allow_downgrade=self.insecure)
                hops += 1
                continue
            return response

    def _credentials_refused(self) -> str:
        """What a refused request says to the operator: whose credentials were refused, or
        where credentials are given."""
        hostport = Origin.of(self.registry).hostport
        if self.credentials is None:
            return f"{hostport} asks for credentials: give them with --docker_config or --data"
        source = self.credentials.source
        return f"the registry rejected the credentials for {hostport} from {source}"

    async def authorize(self, response: Response, url: str, *, rejected: Token | None) -> Token:
        """Answer a 401: find the token the challenge asks for, from the cache or the realm."""
        challenge = bearer_challenge(response, url, basic_hint=self._credentials_refused())
        realm = challenge.param("realm") or ""
        service = challenge.param("service")
        scope = challenge.param("scope")
        if not (realm and service and scope):
            realm, service, scope = await self._root_challenge(service)
        check_realm(realm, registry_scheme=Origin.of(self.registry).scheme, url=url)
        key = TokenKey(realm, service, scope)
        token_endpoint = token_url(realm, service, [scope])

        async def attempt(_: int) -> tuple[str, float]:
            if self.credentials is not None and self.credentials.is_identity_token:
                return await self._refresh_token(realm, service, scope)
            reply = await self._token_request(token_endpoint, self.basic_header())
            return parse_token_response(reply, token_endpoint, hint=self._credentials_refused())

        describe = f"token from {redact_url(realm)}"
        fetch = functools.partial(run_with_retries, attempt, policy=self.retry, describe=describe)
        return await self.tokens.obtain(
            key, registry=self.registry, repository=self.repository, fetch=fetch, rejected=rejected
        )

    async def _token_request(
        self, url: str, headers: dict[str, str], *, data: bytes | None = None
    ) -> Response:
        """A request to a token endpoint: a redirect is followed only within its origin, and
        never for a POST, whose body (a refresh token) must go nowhere else. A 408, 429 or 5xx
        is retried as any other request's."""
        request = f"GET '{redact_url(url)}'" if data is None else f"POST to '{redact_url(url)}'"
        hops = 0
        while True:
            response = await self._request(url, headers, MAX_TOKEN_RESPONSE_BYTES, data=data)
            location = response.headers.get("Location")
            if transient_status(response.code):
                raise status_error(response, request)
            if response.code not in REDIRECT_CODES or not location:
                return response
            target = follow_redirect(url, location, hops=hops)
            if data is not None or not same_origin(url, target):
                raise AuthError(
                    f"Refusing to follow the token endpoint '{redact_url(url)}' to another "
                    "server: it would carry our credentials there"
                )
            url = target
            hops += 1

    async def _refresh_token(
        self, realm: str, service: str | None, scope: str
    ) -> tuple[str, float]:
        """An identity token (``docker login`` with OAuth) is traded at the realm by POST."""
        assert self.credentials is not None
        from mesos_uri._docker.credentials import (
            OAUTH_CONTENT_TYPE,
            identity_token_request,
            parse_oauth_response,
        )

        url, body = identity_token_request(realm, service, scope, self.credentials)
        reply = await self._token_request(url, {"Content-Type": OAUTH_CONTENT_TYPE}, data=body)
        token = parse_oauth_response(reply, url)
        return token.access_token, token.expires_in

    async def _root_challenge(self, service: str | None) -> tuple[str, str | None, str]:
        """For a registry whose challenges name neither service nor scope (nvcr.io): realm and
        service from the ``/v2/`` challenge, and the scope of a pull of this repository."""
        root = f"{self.registry}/v2/"
        reply = await self._request(root, self.basic_header(), MAX_TOKEN_RESPONSE_BYTES)
        challenge = bearer_challenge(reply, root)
        realm = challenge.param("realm")
        if not realm:
            raise AuthError(f"Missing 'realm' in WWW-Authenticate header obtained from {root}")
        return realm, challenge.param("service") or service, f"repository:{self.repository}:pull"

    async def _request(
        self, url: str, headers: dict[str, str], max_bytes: int, *, data: bytes | None = None
    ) -> Response:
        return await curl.request(
            url,
            headers=headers,
            data=data,
            max_bytes=max_bytes,
            tls=self.tls(url),
            timeouts=self.timeouts,
        )
