"""The benchmark's world: registries on loopback, latency proxies in front of them, the images.

An *endpoint* is what a tool is pointed at: a registry reached either directly (``loopback``)
or through a latency proxy (``50ms``), with or without token auth. On the ``50ms`` network every
request of every tool crosses a proxy: the token registry's realm names a proxy in front of its
token server, so a token costs its round trips too. A registry's realm is part of its config,
so the token registry of each network is a registry process of its own; the anonymous registry
serves both networks.

Images are generated deterministically (``make_layer`` from a seed), pushed once per registry
that needs them and then dropped from memory: the benchmark keeps digests and sizes only, which
matters for the 1 GiB layer. Registries keep their storage in temporary directories removed
when they stop.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import repo_root  # noqa: F401  (puts the repository root on sys.path, for tests.support)

from benchlib.proxy import LatencyProxy
from tests.support import DEFAULT_ADMIN, PushedImage, Registry, TokenServer, make_layer, push_image

KIB: Final = 1024
MIB: Final = 1024 * KIB
GIB: Final = 1024 * MIB
LOOPBACK: Final = "127.0.0.1"
TAG: Final = "latest"

# Where the benchmark says what it is doing (stderr, so that stdout holds the report alone).
Progress = Callable[[str], None]

NETWORKS: Final = ("50ms", "loopback")
REGISTRIES: Final = ("anonymous", "token")


@dataclass(frozen=True)
class ImageSpec:
    key: str
    title: str
    repo: str
    layers: int
    layer_size: int
    seed: int


IMAGES: Final = (
    ImageSpec("small3", "3 x 32 KiB", "bench/small3", 3, 32 * KIB, 3000),
    ImageSpec("small40", "40 x 256 KiB", "bench/layers40", 40, 256 * KIB, 1000),
    ImageSpec("small200", "200 x 64 KiB", "bench/layers200", 200, 64 * KIB, 4000),
    ImageSpec("big4", "4 x 64 MiB", "bench/big4", 4, 64 * MIB, 2000),
    ImageSpec("huge1", "1 x 1 GiB", "bench/huge1", 1, GIB, 5000),
)
IMAGE_BY_KEY: Final = {spec.key: spec for spec in IMAGES}


@dataclass(frozen=True)
class Image:
    """What a push left in a registry, without the bytes: enough to check any tool's result."""

    repo: str
    tag: str
    manifest: bytes = field(repr=False)
    manifest_digest: str
    blobs: dict[str, int]  # digest -> size, config first

    @classmethod
    def of(cls, pushed: PushedImage) -> Image:
        sizes = {digest: len(data) for digest, data in pushed.blobs.items()}
        return cls(pushed.repo, pushed.tag, pushed.manifest, pushed.manifest_digest, sizes)


class ProxiedTokenServer(TokenServer):
    """A token server whose realm, as the registry advertises it, is a proxy's address.

    The registry writes ``realm`` into its config when it starts; pointing it at the proxy in
    front of this server makes every client's token request cross the latency.
    """

    public_url: str | None = None

    @property
    def realm(self) -> str:
        if self.public_url is None:
            return super().realm
        return self.public_url + self.realm_path


@dataclass
class Endpoint:
    """One registry as the tools reach it: directly or through proxies."""

    network: str
    registry: str
    port: int
    token_server: TokenServer | None
    proxies: list[LatencyProxy]
    images: dict[str, Image] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.network}, {self.registry}"

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def docker_uri(self, repo: str, ref: str, scheme: str = "docker") -> str:
        """``docker://127.0.0.1:PORT/repo?ref#http`` (or ``docker-manifest``, ``docker-blob``)."""
        return f"{scheme}://{self.host}/{repo}?{ref}#http"

    def manifest_url(self, repo: str, ref: str) -> str:
        return f"{self.url}/v2/{repo}/manifests/{ref}"

    def blob_url(self, repo: str, digest: str) -> str:
        return f"{self.url}/v2/{repo}/blobs/{digest}"

    def reset_counts(self) -> None:
        if self.token_server is not None:
            self.token_server.reset_counts()
        for proxy in self.proxies:
            proxy.reset()

    def tokens(self) -> int | None:
        return None if self.token_server is None else self.token_server.count()

    def connections(self) -> int | None:
        """New connections to the registry and its token server, counted by the proxies."""
        if not self.proxies:
            return None
        return sum(proxy.connections() for proxy in self.proxies)


@dataclass
class World:
    endpoints: dict[tuple[str, str], Endpoint] = field(default_factory=dict)

    def endpoint(self, network: str, registry: str) -> Endpoint:
        return self.endpoints[network, registry]


@contextlib.contextmanager
def build_world(wanted: dict[tuple[str, str], set[str]], progress: Progress) -> Iterator[World]:
    """Registries and proxies for the wanted (network, registry) pairs, each with its images.

    Everything started here is stopped, and its storage removed, however the block exits.
    """
    world = World()
    with contextlib.ExitStack() as stack:
        anonymous: Registry | None = None
        for network, registry in sorted(wanted):
            if registry == "anonymous":
                if anonymous is None:
                    anonymous = stack.enter_context(Registry())
                endpoint = _reach(stack, network, "anonymous", anonymous.port, None, [])
            elif network == "loopback":
                token = stack.enter_context(Registry(auth="token"))
                endpoint = Endpoint(network, registry, token.port, token.token_server, [])
            else:
                endpoint = _proxied_token_registry(stack)
            world.endpoints[network, registry] = endpoint
        _push_all(world, wanted, progress)
        yield world


def _reach(
    stack: contextlib.ExitStack,
    network: str,
    registry: str,
    port: int,
    token_server: TokenServer | None,
    proxies: list[LatencyProxy],
) -> Endpoint:
    if network == "loopback":
        return Endpoint(network, registry, port, token_server, proxies)
    proxy = stack.enter_context(LatencyProxy(port))
    return Endpoint(network, registry, proxy.port, token_server, [*proxies, proxy])


def _proxied_token_registry(stack: contextlib.ExitStack) -> Endpoint:
    """Token server, its proxy, the registry whose realm names that proxy, the registry's proxy."""
    server = ProxiedTokenServer(users=dict([DEFAULT_ADMIN]))
    stack.enter_context(server)
    token_proxy = stack.enter_context(LatencyProxy(server.port))
    server.public_url = token_proxy.url
    registry = stack.enter_context(Registry(auth="token", token_server=server))
    return _reach(stack, "50ms", "token", registry.port, server, [token_proxy])


def _push_all(world: World, wanted: dict[tuple[str, str], set[str]], progress: Progress) -> None:
    """Generate each image once and push it to every registry process that serves it.

    The anonymous registry serves both networks: one push, one ``Image`` for both endpoints.
    """
    keys = sorted({key for images in wanted.values() for key in images}, key=_image_order)
    for key in keys:
        spec = IMAGE_BY_KEY[key]
        progress(f"generating and pushing {spec.title}")
        layers = [make_layer(spec.seed + i, spec.layer_size) for i in range(spec.layers)]
        pushed_to: dict[int, Image] = {}  # by the port of the registry behind the endpoint
        for (network, registry), images in sorted(wanted.items()):
            if key not in images:
                continue
            endpoint = world.endpoint(network, registry)
            origin = _origin(world, endpoint)
            if origin.port not in pushed_to:
                pushed = push_image(origin, spec.repo, TAG, layers)
                pushed_to[origin.port] = Image.of(pushed)
            endpoint.images[key] = pushed_to[origin.port]
        del layers


def _image_order(key: str) -> int:
    return [spec.key for spec in IMAGES].index(key)


@dataclass(frozen=True)
class _Origin:
    """Where to push: the registry itself, never through a proxy (pushes are not timed)."""

    port: int
    admin: tuple[str, str] | None
    ca_bundle: Path | None = None
    client_cert: tuple[Path, Path] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def _origin(world: World, endpoint: Endpoint) -> _Origin:
    admin = DEFAULT_ADMIN if endpoint.registry == "token" else None
    if not endpoint.proxies:
        return _Origin(endpoint.port, admin)
    # the last proxy of an endpoint is the one in front of the registry
    return _Origin(endpoint.proxies[-1].upstream_port, admin)


# --------------------------------------------------------------------------------------------
# The peers' virtualenv

# The peers, pinned: a new release must not change a comparison of unchanged code.
PEER_PACKAGES: Final = ("python-dxf==12.1.1", "oras==0.2.43")


def peers_python(root: Path, progress: Progress) -> Path:
    """The python of ``.make/bench-venv``, created and filled from PyPI on first use.

    The peers live apart from the project's ``.venv`` so that they never become something the
    product or its tests could import by accident. A stamp names the pinned versions, so a
    change of pins re-installs.
    """
    venv = root / ".make" / "bench-venv"
    python = venv / "bin" / "python"
    stamp = venv / ("installed-" + hashlib.sha256(" ".join(PEER_PACKAGES).encode()).hexdigest())
    if stamp.exists() and python.exists():
        return python
    progress(f"installing the peers into {venv.relative_to(root)}: {', '.join(PEER_PACKAGES)}")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *PEER_PACKAGES], check=True)
    stamp.touch()
    return python
