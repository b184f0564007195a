"""Docker credentials: the two config file formats, merging them, and the entry a registry gets.

A docker config holds secrets, so nothing here quotes it: errors name the problem and the key,
never a value, and the ``repr`` of an entry hides its secrets.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

import attrs

from mesos_uri.docker.jsonproto import (
    Kind,
    ProtoError,
    convert,
    message,
    optional,
    parse_object,
    shorten,
)
from mesos_uri.errors import UsageError
from mesos_uri.urls import WEB_SCHEMES, Origin

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


_AUTH_ENTRY: Final = message("auth", "email", "username", "password", "identitytoken")
_NEW_FORMAT_TOP: Final = message(optional("credsStore"), optional("credHelpers", Kind.MAP))
_HELPER_KEYS: Final = frozenset({"credsStore", "credHelpers"})


def parse_auth_config(text: str) -> DockerConfig:
    """Parse ``~/.docker/config.json`` (keys under ``auths``) or ``~/.dockercfg`` (keys at the top).

    Follows SPEC.md §5.1, including its error texts, except that no error quotes the config.
    """
    try:
        document = parse_object(text)
    except ProtoError as exc:
        raise UsageError(f"JSON parse failed: {exc}") from exc

    auths = document.get("auths")
    # Docker's documentation writes config.json without "auths" ({"credsStore": "pass"},
    # {"credHelpers": {...}}), and so does `gcloud auth configure-docker`: the helper keys mark
    # the new format too, where the original saw a malformed old-format file (SPEC §5.1).
    helpers_only = "auths" not in document and bool(_HELPER_KEYS & document.keys())
    new_format = isinstance(auths, dict) or helpers_only
    if isinstance(auths, dict):
        entries = auths
    elif helpers_only:
        entries = {}
    elif auths is None:
        # Old format; an `"auths": null` then fails below as a non-object entry (SPEC §5.1).
        entries = document
    else:
        raise UsageError(
            "Failed to find 'auths' in docker config file: Found JSON value of wrong type"
        )

    parsed: dict[str, AuthEntry] = {}
    # Sorted, as the original's std::map, so that the first error is the same one.
    for key in sorted(entries):
        value = entries[key]
        if not isinstance(value, dict):
            # Departure: the original quoted the value ("Invalid JSON object '<value>'").
            raise UsageError(f"Invalid JSON object for key '{shorten(key)}'")
        try:
            record = convert(value, _AUTH_ENTRY)
        except ProtoError as exc:
            raise UsageError(f"Protobuf parse failed: {exc}") from exc
        _well_formed(key, "a key")
        for field in ("auth", "username", "password", "identitytoken"):
            _well_formed(record.optional_text(field), f"'{field}' for key '{shorten(key)}'")
        parsed[key] = AuthEntry(
            auth=record.optional_text("auth"),
            email=record.optional_text("email"),
            username=record.optional_text("username"),
            password=record.optional_text("password"),
            identitytoken=record.optional_text("identitytoken"),
        )

    creds_store: str | None = None
    cred_helpers: tuple[tuple[str, str], ...] = ()
    if new_format:
        try:
            top = convert(document, _NEW_FORMAT_TOP)
        except ProtoError as exc:
            raise UsageError(f"Protobuf parse failed: {exc}") from exc
        creds_store = _well_formed(top.optional_text("credsStore"), "'credsStore'")
        cred_helpers = top.pairs("credHelpers")
        for registry, helper in cred_helpers:
            _well_formed(registry + helper, "'credHelpers'")

    return DockerConfig(
        auths=tuple((key, parsed[key]) for key in entries),
        creds_store=creds_store,
        cred_helpers=cred_helpers,
    )


def _well_formed(text: str | None, what: str) -> str | None:
    """``text``, unless it holds a lone surrogate, which JSON's ``"\\ud800"`` escape parses
    to: no header, form or program name can carry one, so it is refused where it came in."""
    if text is not None:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UsageError(f"Invalid {what} in docker config: not valid Unicode") from exc
    return text


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
            f"Invalid 'auth' for key '{shorten(key)}' in docker config: not base64"
        ) from exc
    if b":" not in decoded:
        raise UsageError(
            f"Invalid 'auth' for key '{shorten(key)}' in docker config: "
            "expected base64 of 'username:password'"
        )
