"""The Docker fetcher plugin: schemes ``docker``, ``docker-manifest`` and ``docker-blob``.

``fetch`` is the original's chain, step by step: check the URI, resolve the manifest (following
an index to the wanted platform), commit it, and fetch the blobs it names in parallel.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Final

import anyio
import anyio.lowlevel
import attrs

from mesos_uri import _uri as uris
from mesos_uri._docker import config as docker_config
from mesos_uri._docker import manifest as manifests
from mesos_uri._docker.auth import TokenCache
from mesos_uri._docker.blobs import fetch_blob, fetch_blobs, together
from mesos_uri._docker.descriptor import Descriptor
from mesos_uri._docker.digest import Digest, digest_of, parse_digest
from mesos_uri._docker.endpoints import Endpoints
from mesos_uri._docker.session import Session, status_error
from mesos_uri._flags import config_text
from mesos_uri._http import Response
from mesos_uri._json import JSONError, parse_object
from mesos_uri._retry import RetryPolicy, run_with_retries
from mesos_uri._store import Store
from mesos_uri._transfers import Batcher
from mesos_uri._uri import DEFAULT_DOCKER_TRANSPORT, URI
from mesos_uri._urls import Origin
from mesos_uri.errors import (
    CurlError,
    DigestError,
    FetchError,
    HTTPStatusError,
    ManifestError,
    ResponseTooLargeError,
    UsageError,
    excerpt,
)
from mesos_uri.fetcher import BlobResult, FetchSummary, Flags

if TYPE_CHECKING:
    from mesos_uri._docker.credentials import RegistryCredentials
    from mesos_uri._docker.platform import Platform

__all__ = ["DockerFetcherPlugin", "parse_docker_config"]

_SCHEMES: Final = ("docker", "docker-manifest", "docker-blob")
# Head room for the header block(s) that curl prints before a manifest's body.
_HEADER_ROOM: Final = 256 * 1024
# How many indexes deep an index entry that is itself an index is followed: registries nest
# once at most; the bound stops an index that (indirectly) names itself.
_MAX_INDEX_DEPTH: Final = 4
# How long credentials found for a registry serve later fetches: one image's manifest and
# blobs, not an agent's lifetime.
_CREDENTIALS_TTL: Final = 300.0
_log = logging.getLogger(__name__)


@attrs.frozen
class _Resolved:
    manifest: manifests.ImageManifest | manifests.Schema1Manifest
    media_type: str
    raw: bytes
    digest: Digest
    index_raw: bytes | None
    platform: Platform | None


class DockerFetcherPlugin:
    """One object per agent: the options, the default credentials, and what fetches share:
    credentials found per registry, tokens per credentials (a token obtained with one task's
    credentials serves no other's), and the curl processes of concurrent downloads.
    ``durable`` (fsync before rename) is on but where a test turns it off.
    """

    name: Final = "docker"
    schemes: Final = _SCHEMES

    def __init__(self, flags: Flags | None = None, *, durable: bool = True) -> None:
        self.flags = flags or Flags()
        self.durable = durable
        self.default_config = parse_docker_config(
            None if self.flags.docker_config is None else config_text(self.flags.docker_config)
        )
        self.endpoints = self.flags.endpoints or Endpoints()
        self.retry = RetryPolicy(retries=self.flags.retries)
        # An endpoint with another behind it (a mirror, https before an insecure registry's
        # http) gets one attempt: dockerd falls back at once; the retries are the last one's.
        self._fallback_retry = attrs.evolve(self.retry, retries=0)
        self._tokens: dict[RegistryCredentials | None, TokenCache] = {}
        self._batchers: dict[object, Batcher] = {}
        # Credentials found and when: a helper's answer (often a token of a few hours) is
        # not kept for a long-lived plugin's whole life.
        self._credentials: dict[tuple[str | None, str], tuple[RegistryCredentials | None, float]]
        self._credentials = {}
        self._credential_locks: dict[tuple[str | None, str], anyio.Lock] = {}

    async def fetch(
        self,
        uri: URI,
        directory: str | os.PathLike[str],
        data: str | None = None,
        output_file_name: str | None = None,
    ) -> FetchSummary:
        """Fetch ``uri`` into ``directory``; errors name the URI (``Failed to fetch '…': …``).

        ``output_file_name`` is accepted for the facade's sake and ignored, as in the original.
        """
        store = Store(directory, durable=self.durable)
        try:
            if uri.scheme not in _SCHEMES:
                raise UsageError(
                    f"Docker fetcher plugin does not support '{uri.scheme}' URI scheme"
                )
            store.create()
            return await self._fetch(uri, store, data)
        except FetchError as exc:
            exc.uri = uri.redacted()
            exc.hint = exc.hint or _hint(exc, uri)
            store.remove_if_empty()
            raise

    async def _fetch(self, uri: URI, store: Store, data: str | None) -> FetchSummary:
        """Mirrors first, in order, then the registry; an insecure registry without an explicit
        transport is tried over https without verification, then over plain http (Docker's
        meaning of ``--insecure-registry``)."""
        transport = uri.fragment or DEFAULT_DOCKER_TRANSPORT
        mirrors = self.endpoints.mirrors_for(uri.host or "", uri.port, scheme=transport)
        candidates = [
            attrs.evolve(uri, host=mirror.host, port=mirror.port, fragment=mirror.scheme)
            for mirror in mirrors
        ]
        candidates.append(uri)
        if uri.fragment is None and self.endpoints.is_insecure(uris.registry_base(uri)):
            candidates.append(attrs.evolve(uri, fragment="http"))
        for position, candidate in enumerate(candidates[:-1]):
            try:
                return await self._fetch_from(candidate, store, data, self._fallback_retry)
            except UsageError:
                raise
            except FetchError as exc:
                # A failing mirror is worth a warning; an insecure registry that speaks plain
                # HTTP is what trying https first expects.
                _log.log(
                    logging.WARNING if position < len(mirrors) else logging.INFO,
                    "the %s %s failed, fetching from %s instead: %s",
                    "mirror" if position < len(mirrors) else "https endpoint",
                    uris.registry_base(candidate),
                    uris.registry_base(candidates[position + 1]),
                    exc,
                )
        return await self._fetch_from(candidates[-1], store, data, self.retry)

    async def _fetch_from(
        self, uri: URI, store: Store, data: str | None, retry: RetryPolicy
    ) -> FetchSummary:
        session = await self._session(uri, data, retry)
        assert uri.query is not None  # a docker URI always has one
        if uri.scheme == "docker-blob":
            descriptor = Descriptor(
                "", _digest(uri.query, what="the blob URI"), manifests.UNKNOWN_SIZE
            )
            blob = await fetch_blob(session, store, descriptor)
            return FetchSummary(uri.redacted(), blobs=(blob,))

        resolved = await self._resolve(session, uri.query)
        _log.info(
            "%s: %s is %s (%s)", uri.redacted(), uri.query, resolved.digest, resolved.media_type
        )
        summary = FetchSummary(
            uri.redacted(),
            manifest_digest=str(resolved.digest),
            media_type=resolved.media_type,
            platform=str(resolved.platform) if resolved.platform else None,
        )

        async def commit_manifest() -> None:
            if resolved.index_raw is not None:
                await store.write_file("index", resolved.index_raw)
            await store.write_file("manifest", resolved.raw)

        if uri.scheme == "docker-manifest":
            await commit_manifest()
            return summary
        blobs: tuple[BlobResult, ...] = ()

        async def fetch_all() -> None:
            nonlocal blobs
            blobs = await fetch_blobs(session, store, manifests.blob_descriptors(resolved.manifest))

        # The manifest is flushed to disk while the blobs download.
        await together(commit_manifest, fetch_all)
        wanted = self.flags.platform
        if wanted is not None and resolved.index_raw is None:
            await anyio.to_thread.run_sync(_check_platform, store, resolved.manifest, wanted)
        return attrs.evolve(summary, blobs=blobs)

    async def _session(self, uri: URI, data: str | None, retry: RetryPolicy) -> Session:
        registry = uris.registry_base(uri)
        credentials = await self._credentials_for(uri, data)
        return Session(
            registry=registry,
            repository=uri.path,
            credentials=credentials,
            tokens=self._tokens.setdefault(credentials, TokenCache()),
            timeouts=self.flags.docker_timeouts,
            retry=retry,
            tls_for=self.endpoints.tls_for,
            insecure=self.endpoints.is_insecure(registry),
            max_blob_size=self.flags.max_blob_size,
            batcher=self._batcher(),
            observer=self.flags.observer,
        )

    async def _credentials_for(self, uri: URI, data: str | None) -> RegistryCredentials | None:
        """The registry's credentials, found once per registry and per-fetch config (and
        again once they are _CREDENTIALS_TTL old).

        Per-fetch data wins; the defaults are asked only when it has nothing for this
        registry, so a default credential helper cannot override it.
        """
        if data is None and self.default_config is None:
            return None
        key = (data, uris.registry_base(uri))
        async with self._credential_locks.setdefault(key, anyio.Lock()):
            found, when = self._credentials.get(key, (None, -_CREDENTIALS_TTL))
            if time.monotonic() - when >= _CREDENTIALS_TTL:
                from mesos_uri._docker.credentials import resolve_credentials

                found = None
                for config, source in (
                    (parse_docker_config(data), "the per-fetch docker config (--data)"),
                    (self.default_config, "the default docker config (--docker_config)"),
                ):
                    if config is not None and found is None:
                        found = await resolve_credentials(
                            config,
                            uri.host or "",
                            uri.port,
                            scheme=uri.fragment or DEFAULT_DOCKER_TRANSPORT,
                            source=source,
                        )
                if found is not None:
                    _log.info("credentials for %s from %s", uris.registry_base(uri), found.source)
                self._credentials[key] = (found, time.monotonic())
                self._forget_old_credentials()
            return found

    def _forget_old_credentials(self) -> None:
        """Drop what expired, and the tokens of credentials no longer held: an agent fetches
        with many tasks' configs, and should keep neither their secrets nor a growing map."""
        now = time.monotonic()
        self._credentials = {
            key: found
            for key, found in self._credentials.items()
            if now - found[1] < _CREDENTIALS_TTL
        }
        self._credential_locks = {
            key: lock
            for key, lock in self._credential_locks.items()
            if key in self._credentials or lock.locked()
        }
        held = {None, *(found for found, _ in self._credentials.values())}
        self._tokens = {key: cache for key, cache in self._tokens.items() if key in held}

    def _batcher(self) -> Batcher:
        # A batcher belongs to one event loop; the agent's concurrent ``docker-blob`` fetches
        # through one plugin share it, and so share curl processes and connections.
        loop = anyio.lowlevel.current_token()
        if loop not in self._batchers:
            self._batchers[loop] = Batcher(
                parallel=self.flags.jobs, timeouts=self.flags.docker_timeouts
            )
        return self._batchers[loop]

    # -- the manifest ---------------------------------------------------------------------------

    async def _resolve(self, session: Session, reference: str) -> _Resolved:
        """The image manifest for ``reference``, following indexes to the wanted platform."""
        expected = _digest(reference, what="the image URI") if ":" in reference else None
        media_type, raw, digest = await self._get_manifest(session, reference, expected)
        index_raw: bytes | None = None
        platform: Platform | None = None
        depth = 0
        while manifests.is_index(media_type):
            from mesos_uri._docker import index as indexes
            from mesos_uri._docker.platform import host_platform

            depth += 1
            if depth > _MAX_INDEX_DEPTH:
                raise ManifestError(f"Image indexes nested deeper than {_MAX_INDEX_DEPTH} levels")
            index_raw = raw if index_raw is None else index_raw
            platform = self.flags.platform or host_platform()
            child = indexes.choose(indexes.parse_index(media_type, raw), platform)
            media_type, raw, digest = await self._get_manifest(
                session, str(child.digest), child.digest
            )
        manifest = manifests.parse_image_manifest(media_type, raw)
        return _Resolved(manifest, media_type, raw, digest, index_raw, platform)

    async def _get_manifest(
        self, session: Session, reference: str, expected: Digest | None
    ) -> tuple[str, bytes, Digest]:
        url = uris.manifest_url(session.registry, session.repository, reference)

        async def attempt(_: int) -> tuple[str, bytes, Digest]:
            try:
                response = await session.get(
                    url,
                    accept=manifests.ACCEPT,
                    max_bytes=manifests.MAX_MANIFEST_BYTES + _HEADER_ROOM,
                )
            except ResponseTooLargeError as exc:
                if exc.limit != manifests.MAX_MANIFEST_BYTES + _HEADER_ROOM:
                    raise  # the token's answer, on the way: it names its own URL and limit
                # curl stopped at the limit plus header room: say the limit the user knows.
                raise ManifestError(
                    f"Manifest from '{url}' is larger than the "
                    f"{manifests.MAX_MANIFEST_BYTES // (1024 * 1024)} MiB limit"
                ) from exc
            if response.code != 200:
                raise status_error(response, "get the manifest", response.body)
            media_type = manifests.classify(response.headers.get("Content-Type"), response.body)
            return media_type, response.body, _verify_manifest(response, media_type, expected)

        return await run_with_retries(
            attempt, policy=session.retry, describe=f"manifest {session.repository}:{reference}"
        )


def _check_platform(
    store: Store, manifest: manifests.ImageManifest | manifests.Schema1Manifest, wanted: Platform
) -> None:
    """Warn when an image that is not an index, so had no platform to choose, is not for the
    platform asked for: the fetch did what it was told, but the container may not run."""
    from mesos_uri._docker.platform import Platform, matches

    if not isinstance(manifest, manifests.ImageManifest):
        return
    try:
        document = parse_object(store.path(str(manifest.config.digest)).read_bytes())
        offered = Platform(
            document.string("os"),
            document.string("architecture"),
            document.optional_string("variant"),
        )
    except (OSError, JSONError):
        return  # not an image config (an artifact): nothing to compare
    if not matches(wanted, offered):
        _log.warning(
            "the image is for %s, not %s: it is not an index, so --platform chose nothing",
            excerpt(str(offered), 80),
            wanted,
        )


# curl's exit codes for a server certificate it could not verify, or a CA file it could not use.
_UNTRUSTED: Final = frozenset({60, 77, 83})
# curl's exit code for a client certificate or key it could not use.
_CLIENT_CERT: Final = 58
# curl's exit code for a TLS handshake that failed.
_HANDSHAKE: Final = 35
# What Go's HTTP server answers plain HTTP sent to its TLS port.
_PLAIN_TO_TLS: Final = "Client sent an HTTP request to an HTTPS server"


def _hint(exc: FetchError, uri: URI) -> str | None:
    """What the operator can do about ``exc``, when it is a mistake we can recognise."""
    if uri.scheme not in _SCHEMES:
        return None  # not a registry's URI: nothing here to name
    hostport = Origin.of(uris.registry_base(uri)).hostport
    if isinstance(exc, CurlError) and exc.exit_code == _HANDSHAKE:
        if uri.fragment is None and "wrong version number" in exc.stderr:
            return (
                f"{hostport} answers in plain HTTP: add '#http' to the URI, or pass "
                f"--insecure_registry={hostport}"
            )
        return f"the TLS handshake with {hostport} failed"
    if isinstance(exc, CurlError) and exc.exit_code in _UNTRUSTED:
        return (
            f"the certificate of {hostport} is not trusted here: pass its CA with "
            f"--cacert={hostport}=CA.pem, or put it in --certs_dir's {hostport}/ca.crt"
        )
    if isinstance(exc, CurlError) and exc.exit_code == _CLIENT_CERT:
        return (
            f"the client certificate for {hostport} could not be used: check its .cert and "
            f".key pair in --certs_dir's {hostport}/"
        )
    if isinstance(exc, HTTPStatusError) and _PLAIN_TO_TLS in exc.message:
        return (
            f"{hostport} speaks https: drop '#http' from the URI, or for an image reference "
            f"pass --https_registry={hostport}"
        )
    return None


def parse_docker_config(text: str | None) -> docker_config.DockerConfig | None:
    """A docker config's text, parsed; errors name the problem, never a value (it holds
    secrets)."""
    if text is None:
        return None
    try:
        return docker_config.parse_auth_config(text)
    except UsageError as exc:
        raise UsageError(f"Failed to parse docker config: {exc}") from exc


def _digest(text: str, *, what: str) -> Digest:
    try:
        return parse_digest(text)
    except DigestError as exc:
        raise DigestError(f"{exc} in {what}") from exc


def _verify_manifest(response: Response, media_type: str, expected: Digest | None) -> Digest:
    """The manifest's digest, checked against the one asked for or the one the registry sent.

    A signed schema 1 manifest is re-signed on every GET: its digest covers the payload without
    the signatures, so that is what is hashed.
    """
    content = response.body
    if media_type in (manifests.SCHEMA1, manifests.SCHEMA1_SIGNED):
        from mesos_uri._docker.schema1 import schema1_payload

        content = schema1_payload(response.body)
    header = response.headers.get("Docker-Content-Digest")
    wanted = expected or (_digest(header.strip(), what="Docker-Content-Digest") if header else None)
    if wanted is None:
        return digest_of(content)
    wanted.verify(wanted.hasher(content), what="the manifest")
    return wanted
