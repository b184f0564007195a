"""Docker config files: the two formats, and which of their keys names a registry. A config holds
secrets: errors name the problem and the key, never a value, and reprs hide the secrets.
"""

from __future__ import annotations

from typing import Final

import attrs

from mesos_uri._json import Fields, JSONError, parse_object
from mesos_uri._urls import WEB_SCHEMES, Origin
from mesos_uri.errors import UsageError

__all__ = [
    "DOCKER_HUB_HOSTS",
    "DOCKER_HUB_KEY",
    "AuthEntry",
    "DockerConfig",
    "names_registry",
    "parse_auth_config",
    "secret_repr",
]

# The key `docker login` writes for Docker Hub, and the host names that all mean Docker Hub.
DOCKER_HUB_KEY: Final = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

# These mark config.json too when it has no "auths", as `gcloud auth configure-docker` writes it.
_HELPER_KEYS: Final = frozenset({"credsStore", "credHelpers"})


def secret_repr(value: str | None) -> str:
    return "None" if value is None else "'***'"


@attrs.frozen
class AuthEntry:
    """One registry's entry in a docker config (``auths.<key>`` or a ``.dockercfg`` key)."""

    auth: str | None = attrs.field(default=None, repr=secret_repr)
    email: str | None = None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=secret_repr)
    identitytoken: str | None = attrs.field(default=None, repr=secret_repr)


@attrs.frozen
class DockerConfig:
    """Entries by key in file order, and config.json's credential helpers."""

    auths: tuple[tuple[str, AuthEntry], ...] = ()
    creds_store: str | None = None
    cred_helpers: tuple[tuple[str, str], ...] = ()


def parse_auth_config(text: str) -> DockerConfig:
    """Parse ``~/.docker/config.json`` (keys under ``auths``) or ``~/.dockercfg`` (at the top)."""
    try:
        document = parse_object(text, secret=True)
    except JSONError as exc:
        raise UsageError(f"JSON parse failed: {exc}") from exc
    auths = document.get("auths")
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
    # AuthEntry's fields are named as the keys of the JSON entry.
    return AuthEntry(**{key: fields.optional_string(key) for key in attrs.fields_dict(AuthEntry)})


def names_registry(name: str, registry: Origin) -> bool:
    """Whether ``name``, a docker config key or a registry named in a flag, names ``registry``.

    As Docker, a key is reduced to ``host[:port]`` (one ``http(s)://``, which says nothing about
    the registry's scheme, and any path dropped) and compared as an origin. Docker Hub's names
    name each other; the original matched any host containing "docker.io" to such a key.
    """
    scheme, sep, rest = name.partition("://")
    hostport = rest if sep and scheme.lower() in WEB_SCHEMES else name
    try:
        named = Origin.parse(hostport.split("/", 1)[0], scheme=registry.scheme)
    except ValueError:
        return False
    hub = named.host in DOCKER_HUB_HOSTS and registry.host in DOCKER_HUB_HOSTS
    return named.port == registry.port and (named.host == registry.host or hub)
