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
from mesos_uri.errors import UsageError, excerpt
from mesos_uri.urls import DEFAULT_PORTS

__all__ = [
    "DOCKER_HUB_HOSTS",
    "DOCKER_HUB_KEY",
    "AuthEntry",
    "DockerConfig",
    "basic_credentials",
    "merge",
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

    A key matches when its host[:port], after dropping ``http(s)://`` and any path as
    ``parseAuthUrl`` does, names the registry: host names compare case-insensitively and the
    scheme's default port equals no port (``host:443`` is ``host`` over https). The Docker Hub
    names match each other; the original let any host containing "docker.io" have the
    credentials of any key containing it (SPEC.md §9 row 17). Entries are tried in the config's
    order (see :func:`merge`); the first matching one with credentials wins: its ``auth`` when
    set (checked, never rewritten), else its ``username`` and ``password`` encoded.
    """
    default_port = DEFAULT_PORTS.get(scheme)
    wanted_host = _normal_host(host)
    wanted_port = None if port == default_port else port
    for key, entry in config.auths:
        found = _registry_of_key(key)
        if found is None:
            continue
        key_host, key_port = found
        if key_port == default_port:
            key_port = None
        same_host = key_host == wanted_host or (
            key_host in DOCKER_HUB_HOSTS and wanted_host in DOCKER_HUB_HOSTS
        )
        if not same_host or key_port != wanted_port:
            continue
        # An empty `auth` is what `docker login` leaves when a credential store holds the secret.
        if entry.auth:
            _check_auth(key, entry.auth)
            return entry.auth
        if entry.username and entry.password is not None:
            pair = f"{entry.username}:{entry.password}".encode()
            return base64.b64encode(pair).decode("ascii")
    return None


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


def _normal_host(host: str) -> str:
    host = host.lower()
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _registry_of_key(key: str) -> tuple[str, int | None] | None:
    """``(host, port)`` named by a config key, or None when it names no registry."""
    text = key
    for prefix in ("http://", "https://"):
        if text[: len(prefix)].lower() == prefix:
            text = text[len(prefix) :]
            break
    text = text.split("/", 1)[0]
    if text.startswith("["):  # [IPv6]:port
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, None
    if not host:
        return None
    if port_text is None:
        return host.lower(), None
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        return None
    return host.lower(), int(port_text)
