"""Docker credentials: the two config file formats, merging them, and the entry a registry gets.

A docker config holds secrets, so nothing here quotes it: errors name the problem and the key,
never a value, and the ``repr`` of an entry hides its secrets.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

import attrs

from mesos_uri._json import Fields, JSONError, parse_object
from mesos_uri._urls import WEB_SCHEMES, Origin
from mesos_uri.errors import UsageError, excerpt

__all__ = [
    "DOCKER_HUB_HOSTS",
    "DOCKER_HUB_KEY",
    "AuthEntry",
    "DockerConfig",
    "basic_credentials",
    "merge",
    "names_registry",
    "parse_auth_config",
]

# The key `docker login` writes for Docker Hub, and the host names that all mean Docker Hub.
DOCKER_HUB_KEY: Final = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


def _redact(value: str | None) -> str:
    return "None" if value is None else "'***'"


@attrs.frozen
class AuthEntry:
    """One registry's entry in a docker config (``auths.<key>`` or a ``.dockercfg`` key)."""

    auth: str | None = attrs.field(default=None, repr=_redact)
    email: str | None = None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=_redact)
    identitytoken: str | None = attrs.field(default=None, repr=_redact)


@attrs.frozen
class DockerConfig:
    """A parsed docker config: entries by key in file order, and the credential helpers.

    ``creds_store`` and ``cred_helpers`` (registry -> helper name) only come from the new
    ``config.json`` format.
    """

    auths: tuple[tuple[str, AuthEntry], ...] = ()
    creds_store: str | None = None
    cred_helpers: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> AuthEntry | None:
        """The entry stored under exactly ``key``."""
        for name, entry in self.auths:
            if name == key:
                return entry
        return None

    def keys(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.auths)


_HELPER_KEYS: Final = frozenset({"credsStore", "credHelpers"})


def parse_auth_config(text: str) -> DockerConfig:
    """Parse ``~/.docker/config.json`` (keys under ``auths``) or ``~/.dockercfg`` (keys at the top).

    The original's texts, except that no error quotes the config: it holds secrets.
    """
    try:
        document = parse_object(text, secret=True)
    except JSONError as exc:
        raise UsageError(f"JSON parse failed: {exc}") from exc
    auths = document.get("auths")
    # Docker's documentation writes config.json without "auths" ({"credsStore": "pass"},
    # {"credHelpers": {...}}), and so does `gcloud auth configure-docker`: the helper keys mark
    # the new format too, where the original saw a malformed old-format file.
    helpers_only = "auths" not in document.values and bool(_HELPER_KEYS & document.values.keys())
    if auths is not None and not isinstance(auths, dict):
        raise UsageError(
            "Failed to find 'auths' in docker config file: Found JSON value of wrong type"
        )
    try:
        if isinstance(auths, dict) or helpers_only:
            # The new format: its other top-level keys (HttpHeaders, ...) are not registries.
            entries = document.child("auths").objects() if auths else ()
            creds_store = document.optional_string("credsStore")
            cred_helpers = document.string_map("credHelpers")
        else:
            # The old format; an `"auths": null` then fails as an entry that is not an object.
            entries = document.objects()
            creds_store, cred_helpers = None, ()
        parsed = tuple((key, _entry(fields)) for key, fields in entries)
    except JSONError as exc:
        raise UsageError(str(exc)) from exc
    return DockerConfig(auths=parsed, creds_store=creds_store, cred_helpers=cred_helpers)


def _entry(fields: Fields) -> AuthEntry:
    return AuthEntry(
        auth=fields.optional_string("auth"),
        email=fields.optional_string("email"),
        username=fields.optional_string("username"),
        password=fields.optional_string("password"),
        identitytoken=fields.optional_string("identitytoken"),
    )


def merge(per_fetch: DockerConfig | None, default: DockerConfig | None) -> DockerConfig:
    """The per-fetch config first, then every default entry whose key it does not have.

    The original inserted defaults without overwriting into a hash map, so which of two matching
    keys won was hash order (SPEC.md §5.2); here the order is fixed and the per-fetch entries come
    first. ``credsStore`` is the per-fetch one when set; ``credHelpers`` merge like ``auths``.
    """
    first = per_fetch if per_fetch is not None else DockerConfig()
    second = default if default is not None else DockerConfig()
    taken = set(first.keys())
    helpers_taken = {registry for registry, _ in first.cred_helpers}
    return DockerConfig(
        auths=first.auths + tuple((k, e) for k, e in second.auths if k not in taken),
        creds_store=first.creds_store if first.creds_store is not None else second.creds_store,
        cred_helpers=first.cred_helpers
        + tuple((r, h) for r, h in second.cred_helpers if r not in helpers_taken),
    )


def basic_credentials(
    config: DockerConfig, host: str, port: int | None, *, scheme: str = "https"
) -> str | None:
    """The base64 ``user:password`` for the registry at ``host[:port]``, or None (anonymous).

    The entries whose key names the registry (:func:`names_registry`) are tried in the config's
    order (see :func:`merge`); the first one with credentials wins: its ``auth`` when set
    (checked, never rewritten), else its ``username`` and ``password`` encoded.
    """
    registry = Origin.at(host, port, scheme=scheme)
    for key, entry in config.auths:
        if not names_registry(key, registry):
            continue
        # An empty `auth` is what `docker login` leaves when a credential store holds the secret.
        if entry.auth:
            _check_auth(key, entry.auth)
            return entry.auth
        if entry.username and entry.password is not None:
            pair = f"{entry.username}:{entry.password}".encode()
            return base64.b64encode(pair).decode("ascii")
    return None


def names_registry(name: str, registry: Origin) -> bool:
    """Whether ``name``, a docker config key or a registry named in a flag, names ``registry``.

    Docker reduces a key to ``host[:port]``: one ``http://`` or ``https://`` and any path are
    dropped, and the key's scheme says nothing about the registry's (``https://index.docker.io
    /v1/`` is Docker Hub however it is reached). What is left reads as the registry's origin:
    host names compare case-insensitively and no port is the registry scheme's default port
    (``host:443`` is ``host`` over https). Docker Hub's names name each other; the original let
    any host containing "docker.io" have the credentials of any key containing it.
    """
    scheme, sep, rest = name.partition("://")
    hostport = rest if sep and scheme.lower() in WEB_SCHEMES else name
    try:
        named = Origin.parse(hostport.split("/", 1)[0], scheme=registry.scheme)
    except ValueError:
        return False
    hub = named.host in DOCKER_HUB_HOSTS and registry.host in DOCKER_HUB_HOSTS
    return named.port == registry.port and (named.host == registry.host or hub)


def _check_auth(key: str, auth: str) -> None:
    # What Docker's decodeAuth checks; it also keeps a stray CR/LF out of the header.
    try:
        decoded = base64.b64decode(auth, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UsageError(
            f"Invalid 'auth' for key '{excerpt(key, 80)}' in docker config: not base64"
        ) from exc
    if b":" not in decoded:
        raise UsageError(
            f"Invalid 'auth' for key '{excerpt(key, 80)}' in docker config: "
            "expected base64 of 'username:password'"
        )
