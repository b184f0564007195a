"""Fixtures for the tests that run against a real docker-registry (see :mod:`tests.support`).

Registries are session-scoped: each starts once, on first use, and is stopped at the end of
the session however the tests end. Images are pushed once per session through ``pushed``.
Without the ``docker-registry`` binary every test that needs one fails, never skips: a run that
skipped them would pass without having tested the main job.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    DEFAULT_ADMIN,
    INSTALL_HINT,
    ImageFormat,
    PushedImage,
    Registry,
    RegistryNotInstalledError,
    TokenServer,
    make_layer,
    push_image,
)

HERE = Path(__file__).resolve().parent
# The non-admin user of the authenticated registries, and the repositories only users may pull.
USERS: Mapping[str, str] = {"alice": "wonderland", DEFAULT_ADMIN[0]: DEFAULT_ADMIN[1]}
PRIVATE: tuple[str, ...] = ("private/*",)
# Layers that tests ask for by count are this big unless they say otherwise.
SMALL_LAYER = 4096


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything in this folder ``registry`` so ``-m 'not registry'`` leaves it out."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.registry)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """One backend here: these tests exercise the registry, not the event loop."""
    return "asyncio"


def start_registry(**options: Any) -> Registry:
    """Start a registry or fail the test (never skip) when the binary is missing."""
    registry = Registry(**options)
    try:
        return registry.start()
    except RegistryNotInstalledError:
        pytest.fail(INSTALL_HINT, pytrace=False)


def _running(**options: Any) -> Iterator[Registry]:
    registry = start_registry(**options)
    try:
        yield registry
    finally:
        registry.stop()


@dataclass(frozen=True)
class TokenRegistry:
    """A registry with token auth, and the token server that holds its users."""

    registry: Registry
    token_server: TokenServer
    users: Mapping[str, str] = field(default_factory=lambda: dict(USERS))
    private: tuple[str, ...] = PRIVATE


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """Anonymous, plain HTTP."""
    yield from _running()


@pytest.fixture(scope="session")
def token_registry() -> Iterator[TokenRegistry]:
    """Token auth: anonymous pull except for ``private/*``; ``alice`` and ``admin`` users."""
    for registry in _running(auth="token", users=USERS, private=PRIVATE):
        assert registry.token_server is not None
        yield TokenRegistry(registry=registry, token_server=registry.token_server)


@pytest.fixture(scope="session")
def basic_registry() -> Iterator[Registry]:
    """htpasswd (Basic) auth for every request; users ``alice`` and ``admin``."""
    yield from _running(auth="htpasswd", users=USERS)


@pytest.fixture(scope="session")
def tls_registry() -> Iterator[Registry]:
    """Anonymous over HTTPS; clients trust it through ``tls_registry.ca_bundle``."""
    yield from _running(tls=True)


@pytest.fixture
def make_registry() -> Iterator[Callable[..., Registry]]:
    """Start registries with any ``Registry`` options, stopped when the test ends."""
    started: list[Registry] = []

    def make(**options: Any) -> Registry:
        registry = start_registry(**options)
        started.append(registry)
        return registry

    try:
        yield make
    finally:
        for registry in reversed(started):
            registry.stop()


class Pusher:
    """Pushes an image once per session; asking again for the same image returns it."""

    def __init__(self) -> None:
        self._images: dict[tuple[str, str, str], tuple[tuple[object, ...], PushedImage]] = {}

    def __call__(
        self,
        target: Registry | TokenRegistry,
        repo: str,
        tag: str = "latest",
        layers: int | Sequence[bytes] = 2,
        *,
        layer_size: int = SMALL_LAYER,
        media_type: ImageFormat = "schema2",
        platform: str = "linux/amd64",
    ) -> PushedImage:
        """``layers`` is the layers' bytes, or a count of layers generated from ``repo:tag``."""
        registry = target.registry if isinstance(target, TokenRegistry) else target
        if isinstance(layers, int):
            seed = zlib.crc32(f"{repo}:{tag}".encode())
            layers = [make_layer(seed + i, layer_size) for i in range(layers)]
        content = (
            media_type,
            platform,
            tuple(hashlib.sha256(layer).hexdigest() for layer in layers),
        )
        key = (registry.url, repo, tag)
        if key in self._images:
            pushed_content, image = self._images[key]
            if pushed_content != content:
                pytest.fail(f"{repo}:{tag} was pushed with other content in this session")
            return image
        image = push_image(registry, repo, tag, layers, media_type=media_type, platform=platform)
        self._images[key] = (content, image)
        return image


@pytest.fixture(scope="session")
def pushed() -> Pusher:
    """``pushed(registry, repo, tag, layers)``: an image in that registry, pushed once."""
    return Pusher()
