"""Registry credentials found as the Docker CLI finds them, and the OAuth2 identity-token exchange
(an identity token is a refresh token; distribution docs/spec/auth/oauth.md). Secrets never
appear in a message or a ``repr``.
"""

from __future__ import annotations

import base64
import shutil
import urllib.parse
from typing import Final

import anyio
import attrs

from mesos_uri._docker.auth import parse_token_response
from mesos_uri._docker.config import DOCKER_HUB_KEY, DockerConfig, names_registry, secret_repr
from mesos_uri._http import Response
from mesos_uri._json import JSONError, parse_object
from mesos_uri._urls import Origin, redact_url
from mesos_uri.errors import AuthError, UsageError, excerpt

__all__ = [
    "OAUTH_CONTENT_TYPE",
    "OAuthToken",
    "RegistryCredentials",
    "identity_token_request",
    "parse_oauth_response",
    "resolve_credentials",
]

# docker/cli credentials/native_store.go: the helper program prefix, the identity-token username.
HELPER_PREFIX: Final = "docker-credential-"
TOKEN_USERNAME: Final = "<token>"
# docker-credential-helpers credentials/error.go: what a helper prints when it has no entry.
NOT_FOUND_MESSAGE: Final = "credentials not found in native keychain"
# A helper may ask a keychain or a cloud API; Docker waits for ever, we give it this long.
HELPER_TIMEOUT: Final = 30.0
# The token spec requires a client_id "to allow auditing keys created by unregistered clients".
CLIENT_ID: Final = "mesos-uri"
OAUTH_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"

# Enough of a helper's or token server's error text for a message; the rest is noise.
_MAX_QUOTED: Final = 1000


@attrs.frozen
class RegistryCredentials:
    """A username and password, or an identity token (``username`` None)."""

    username: str | None
    secret: str = attrs.field(repr=secret_repr)
    is_identity_token: bool = False
    # Where they came from, for a message that says whose credentials a registry refused.
    source: str = attrs.field(default="a docker config", eq=False)

    def basic(self) -> str:
        """The base64 ``user:password`` of a ``Basic`` Authorization header."""
        if self.is_identity_token:
            raise UsageError(
                "An identity token has no Basic form: exchange it at the token realm "
                "(identity_token_request)"
            )
        # surrogateescape: an `auth` that decoded to non-UTF-8 bytes goes back out unchanged.
        pair = f"{self.username or ''}:{self.secret}".encode("utf-8", "surrogateescape")
        return base64.b64encode(pair).decode("ascii")


def _credentials(username: str, secret: str) -> RegistryCredentials:
    if username == TOKEN_USERNAME:
        return RegistryCredentials(None, secret, is_identity_token=True)
    return RegistryCredentials(username, secret)


@attrs.frozen
class OAuthToken:
    """The token endpoint's answer to a refresh-token grant."""

    access_token: str = attrs.field(repr=secret_repr)
    expires_in: float


def server_url(registry: Origin) -> str:
    """The key Docker stores a registry's credentials under (docker/cli ``ResolveAuthConfig``):
    no default port, as ``docker login`` stores none while the agent's default names 443."""
    return DOCKER_HUB_KEY if names_registry(DOCKER_HUB_KEY, registry) else registry.hostport


def credential_helper(config: DockerConfig, server: str) -> str | None:
    """``credHelpers[server]`` (matched exactly, as docker/cli's getConfiguredCredentialStore
    does), else ``credsStore``, else None; an empty name is no helper, as Docker's ``omitempty``."""
    named = (helper for registry, helper in config.cred_helpers if registry == server and helper)
    helper = next(named, config.creds_store)
    return _checked_name(helper) if helper else None


def _checked_name(name: str) -> str:
    # The name becomes part of a program name looked up on PATH; a path in it would escape PATH.
    if "/" in name or "\0" in name:
        raise UsageError(f"Invalid credential helper name '{name[:_MAX_QUOTED]}' in docker config")
    return name


def auths_credentials(config: DockerConfig, registry: Origin) -> RegistryCredentials | None:
    """The credentials of the first ``auths`` entry that names the registry and holds any:
    ``identitytoken`` wins (a token login also stores an ``auth`` of ``user:``), then ``auth``
    (empty when a helper holds the secret), then ``username`` and ``password``."""
    for key, entry in config.auths:
        if not names_registry(key, registry):
            continue
        if entry.identitytoken:
            return _credentials(TOKEN_USERNAME, entry.identitytoken)
        if entry.auth:
            username, _, secret = _decode_auth(key, entry.auth).partition(":")
            return _credentials(username, secret)
        if entry.username and entry.password is not None:
            return _credentials(entry.username, entry.password)
    return None


def _decode_auth(key: str, auth: str) -> str:
    # What Docker's decodeAuth checks; it also keeps a stray CR/LF out of the header.
    invalid = f"Invalid 'auth' for key '{excerpt(key, 80)}' in docker config: "
    try:
        decoded = base64.b64decode(auth, validate=True)
    except ValueError as exc:  # binascii.Error among them
        raise UsageError(invalid + "not base64") from exc
    if b":" not in decoded:
        raise UsageError(invalid + "expected base64 of 'username:password'")
    return decoded.decode("utf-8", "surrogateescape")


def parse_helper_output(program: str, stdout: bytes) -> RegistryCredentials | None:
    """The credentials in a helper's successful answer; None when its secret is empty."""
    try:
        document = parse_object(stdout, secret=True)
        username = document.optional_string("Username") or ""
        secret = document.string("Secret")
    except JSONError as exc:
        # Neither text quotes the answer, which holds the secret.
        raise AuthError(
            f"{program} get printed malformed output (expected a JSON credentials object): {exc}"
        ) from exc
    return _credentials(username, secret) if secret else None


async def run_credential_helper(name: str, server: str) -> RegistryCredentials | None:
    """Run ``docker-credential-<name> get`` (no shell) with ``server`` on stdin; None when it has
    no entry. The helper is killed and reaped when the call is cancelled or times out; ``name``
    comes from :func:`credential_helper`, which checked it."""
    program = HELPER_PREFIX + name
    path = shutil.which(program)
    if path is None:
        raise AuthError(
            f"{program} not found on PATH (the docker config names '{name}' as the credential "
            f"helper for '{server}')"
        )
    try:
        with anyio.fail_after(HELPER_TIMEOUT):
            done = await anyio.run_process([path, "get"], input=server.encode(), check=False)
    except TimeoutError as exc:  # before OSError, of which it is a subclass
        raise AuthError(
            f"{program} get gave no answer for '{server}' within {HELPER_TIMEOUT:g} s"
        ) from exc
    except OSError as exc:
        raise AuthError(f"Failed to run {program}: {exc}") from exc
    if done.returncode == 0:
        return parse_helper_output(program, done.stdout)
    stdout, stderr = (out.decode("utf-8", "replace").strip() for out in (done.stdout, done.stderr))
    # Helpers built on docker-credential-helpers print their errors on stdout.
    if NOT_FOUND_MESSAGE in stdout or NOT_FOUND_MESSAGE in stderr:
        return None
    # A failed helper's stdout is an error text, unless it printed JSON, which may hold a secret.
    said = [text for text in (stderr, stdout) if text and not text.startswith("{")]
    detail = ": " + "; ".join(said)[:_MAX_QUOTED] if said else ""
    raise AuthError(f"{program} get failed for '{server}' (exit status {done.returncode}){detail}")


async def resolve_credentials(
    config: DockerConfig,
    host: str,
    port: int | None,
    *,
    scheme: str = "https",
    source: str = "a docker config",
) -> RegistryCredentials | None:
    """The credentials for the registry at ``host[:port]``, or None (anonymous); ``source``
    names the config in messages. As docker/cli's ``ConfigFile.GetAuthConfig``: a helper named
    for the server, else ``credsStore``, else the ``auths`` entries (the original read only their
    ``auth``); a configured helper is final, as in Docker's native store."""
    registry = Origin.at(host, port, scheme=scheme)
    server = server_url(registry)
    helper = credential_helper(config, server)
    if helper is not None:
        found = await run_credential_helper(helper, server)
        source = f"{HELPER_PREFIX}{helper} (named by {source})"
    else:
        found = auths_credentials(config, registry)
    return None if found is None else attrs.evolve(found, source=source)


def identity_token_request(
    realm: str, service: str | None, scope: str | None, credentials: RegistryCredentials
) -> tuple[str, bytes]:
    """The URL and form body (:data:`OAUTH_CONTENT_TYPE`) of the refresh-token POST. The caller
    checks the realm first (``auth.check_realm``): the refresh token must only go where the
    registry pointed."""
    if not credentials.is_identity_token:
        raise UsageError("identity_token_request needs identity-token credentials")
    form = [("grant_type", "refresh_token")]
    if service:
        form.append(("service", service))
    if scope:
        form.append(("scope", scope))
    form += [("client_id", CLIENT_ID), ("refresh_token", credentials.secret)]
    # surrogateescape: a token from an `auth` that was not UTF-8 goes out as its bytes.
    return realm, urllib.parse.urlencode(form, errors="surrogateescape").encode("ascii")


def parse_oauth_response(response: Response, url: str) -> OAuthToken:
    """The access token and its lifetime from the realm's answer, read as the GET flow's are.
    A rotated ``refresh_token`` is ignored, as Docker's daemon ignores it: the docker config's
    identity token is sent next time."""
    if response.code != 200:
        raise AuthError(
            f"Unexpected HTTP response '{response.status}' when trying to POST to "
            f"'{redact_url(url)}'{_oauth_error(response.body)}"
        )
    return OAuthToken(*parse_token_response(response, url))


def _oauth_error(body: bytes) -> str:
    """`` (invalid_grant)`` from an OAuth2 error body; its description may echo the token."""
    try:
        code = parse_object(body, secret=True).optional_string("error") or ""
    except JSONError:
        return ""
    return f" ({code[:100]})" if code and code.isascii() and code.isprintable() else ""
