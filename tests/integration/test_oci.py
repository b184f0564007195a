"""Today's images: OCI manifests and indexes, Docker manifest lists, the platform an
index is resolved to, and foreign layers, fetched with the CLI and with the library.

Images are pushed to the real registry through its API. What a real registry will not do (lie in
Docker-Content-Digest, leave out or blur the Content-Type, show the Accept header it got) is
played by the fault server of ``tests.support.faults`` serving the very same images.

After a successful fetch of an index, DIR holds ``manifest`` (the chosen image manifest, as
pushed), ``index`` (the index named by the URI, as pushed) and that image's blobs, each named by
its digest, and nothing else.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio
import pytest

from mesos_uri._docker.platform import host_platform, parse_platform
from mesos_uri.errors import DigestMismatchError, FetchError, ManifestError
from mesos_uri.fetcher import FetchSummary, Flags, create
from tests.support import (
    INSTALL_HINT,
    SCHEMA1_SIGNED,
    SCHEMA2,
    ImageFormat,
    Registry,
    RegistryNotInstalledError,
)
from tests.support.faults import FaultServer, Serve, manifest_path, respond

from .conftest import PRIVATE, USERS, TokenRegistry
from .images import (
    DOCKER_LIST,
    OCI_INDEX,
    Image,
    Index,
    build_image,
    build_index,
    make_layers,
    push,
    serve,
    sha256,
)

ROOT: Final = Path(__file__).resolve().parents[2]
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
SCHEMA1: Final = "application/vnd.docker.distribution.manifest.v1+json"
AMD64: Final = "linux/amd64"
ARM64: Final = "linux/arm64/v8"
# A fetch on loopback takes well under a second; this only stops a hung test.
CLI_TIMEOUT: Final = 120.0


# -- running a fetch, through the CLI or the library --------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How a fetch ended, as its user sees it."""

    exit_code: int  # the CLI's; the library's is 0, or 1 when it raised
    message: str  # the CLI's stderr, or the text of the library's exception
    error: FetchError | None = None  # the library's exception
    summary: FetchSummary | None = None  # the library's result


@dataclass(frozen=True)
class Fetch:
    """``await fetch(uri, DIR, platform=..., docker_config=...)``, through ``via``."""

    via: str
    workdir: Path

    async def __call__(
        self,
        uri: str,
        directory: Path,
        *,
        platform: str | None = None,
        docker_config: Mapping[str, object] | None = None,
    ) -> Outcome:
        config = None if docker_config is None else json.dumps(docker_config)
        if self.via == "cli":
            return await self._cli(uri, directory, platform, config)
        flags = Flags(
            platform=None if platform is None else parse_platform(platform),
            docker_config=config,
        )
        try:
            summary = await create(flags).fetch(uri, directory)
        except FetchError as exc:
            return Outcome(1, str(exc), error=exc)
        return Outcome(0, "", summary=summary)

    async def _cli(
        self, uri: str, directory: Path, platform: str | None, config: str | None
    ) -> Outcome:
        argv = [sys.executable, "-m", "mesos_uri.fetch", uri, str(directory)]
        if platform is not None:
            argv += ["--platform", platform]
        if config is not None:
            # A file only its owner reads, as credentials should be (inline JSON is in argv).
            path = self.workdir / "docker-config.json"
            path.touch(mode=0o600)
            path.write_text(config)
            argv += ["--docker_config", f"file://{path}"]
        with anyio.fail_after(CLI_TIMEOUT):
            run = await anyio.run_process(argv, check=False, cwd=ROOT)
        return Outcome(run.returncode, run.stderr.decode(errors="replace"))


@pytest.fixture(params=["cli", "library"])
def fetch(request: pytest.FixtureRequest, tmp_path: Path) -> Fetch:
    """The same fetch through ``python -m mesos_uri.fetch`` and through ``fetcher.create()``."""
    return Fetch(str(request.param), tmp_path)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    """DIR: not there yet, as the agent hands it over."""
    return tmp_path / "out"


# -- what DIR must hold ---------------------------------------------------------------------------


def files_in(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()} if directory.exists() else set()


def assert_succeeded(outcome: Outcome) -> None:
    assert outcome.exit_code == 0, outcome.message
    assert outcome.message == ""


def assert_image_in(directory: Path, image: Image, *, index: bytes | None = None) -> None:
    """DIR holds ``manifest`` (the image's, byte for byte), ``index`` when one was fetched (as
    pushed), and exactly the image's blobs, each one's sha256 equal to its name."""
    expected = {"manifest", *image.blobs} | ({"index"} if index is not None else set())
    assert files_in(directory) == expected
    assert (directory / "manifest").read_bytes() == image.manifest
    if index is not None:
        assert (directory / "index").read_bytes() == index
    for digest in image.blobs:
        assert sha256((directory / digest).read_bytes()) == digest


def assert_failed(outcome: Outcome, uri: str, *, via: str) -> str:
    """Exit 1 with the one line ``Failed to fetch '<URI>': <reason>``; returns the reason."""
    assert outcome.exit_code == 1, outcome.message
    prefix = f"Failed to fetch '{uri}': "
    assert outcome.message.startswith(prefix), outcome.message
    if via == "cli":
        assert outcome.message.endswith("\n")
        assert outcome.message.count("\n") == 1, outcome.message
    return outcome.message.removeprefix(prefix).strip()


# -- the images -----------------------------------------------------------------------------------

MULTI_REPO: Final = "lab/multi"
LIST_REPO: Final = "oci/list"
SINGLE_REPO: Final = "oci/single"
NESTED_REPO: Final = "oci/nested"
# The platforms of the Docker manifest list: arm64 without a variant, as many lists have it.
LIST_PLATFORMS: Final = (AMD64, "linux/arm64", "linux/arm/v7")


def platform_images(
    repo: str, platforms: tuple[str, ...], image_format: ImageFormat
) -> list[Image]:
    """One image per platform, each with its own two layers."""
    return [
        build_image(platform, make_layers(f"{repo} {platform}", 2), image_format=image_format)
        for platform in platforms
    ]


@pytest.fixture(scope="module")
def multi(registry: Registry) -> Index:
    """``lab/multi:latest``: an OCI index of linux/amd64 and linux/arm64/v8 OCI manifests."""
    index = build_index(platform_images(MULTI_REPO, (AMD64, ARM64), "oci"))
    push(registry, MULTI_REPO, "latest", index)
    return index


@pytest.fixture(scope="module")
def docker_list(registry: Registry) -> Index:
    """``oci/list:latest``: a Docker manifest list of schema 2 manifests (LIST_PLATFORMS)."""
    images = platform_images(LIST_REPO, LIST_PLATFORMS, "schema2")
    index = build_index(images, media_type=DOCKER_LIST)
    push(registry, LIST_REPO, "latest", index)
    return index


@pytest.fixture(scope="module")
def single(registry: Registry) -> Image:
    """``oci/single:latest``: one OCI image manifest for linux/amd64, no index."""
    image = build_image(AMD64, make_layers(SINGLE_REPO, 3))
    push(registry, SINGLE_REPO, "latest", image)
    return image


@pytest.fixture(scope="module")
def nested(registry: Registry) -> Index:
    """``oci/nested:latest``: an OCI index whose one entry is an OCI index of two platforms."""
    inner = build_index(platform_images(NESTED_REPO, (AMD64, ARM64), "oci"))
    outer = build_index([inner])
    push(registry, NESTED_REPO, "latest", outer)
    return outer


def uri_of(registry: Registry, repo: str, scheme: str = "docker") -> str:
    return registry.docker_uri(repo, "latest", scheme)


def host_choice(offered: Mapping[str, str]) -> str | None:
    """Which pushed platform this machine should get, by its normalised name (None: none)."""
    return offered.get(str(host_platform()))


# Normalised host platform -> the entry of lab/multi (and of oci/nested) it runs.
MULTI_FOR_HOST: Final = {AMD64: AMD64, ARM64: ARM64}
# ... and the entry of the Docker manifest list (arm64 listed there without its variant).
LIST_FOR_HOST: Final = {AMD64: AMD64, ARM64: "linux/arm64", "linux/arm/v7": "linux/arm/v7"}


def expected_platform(
    flag: str | None, chosen: str | None, offered: Mapping[str, str]
) -> str | None:
    """The platform whose image a fetch with ``--platform flag`` must leave; None when the flag
    is left out on a host that runs none of the pushed platforms."""
    return chosen if flag is not None else host_choice(offered)


def assert_no_image_for_host(outcome: Outcome, uri: str, *, via: str) -> None:
    """On a host no entry suits, the fetch without ``--platform`` fails naming the host's."""
    reason = assert_failed(outcome, uri, via=via)
    assert reason.startswith(f"No manifest for platform '{host_platform()}' in the image index")


# -- a multi-platform image end to end ---------------------------------------------------------


def test_issue_example_leaves_exactly_the_arm64_image(
    registry: Registry, multi: Index, directory: Path
) -> None:
    """``python -m mesos_uri.fetch docker://127.0.0.1:PORT/lab/multi?latest#http DIR
    --platform linux/arm64`` exits 0 and leaves the arm64 image: its manifest, the index, its
    config and layers, and none of the amd64 blobs."""
    uri = f"docker://127.0.0.1:{registry.port}/lab/multi?latest#http"
    argv = [sys.executable, "-m", "mesos_uri.fetch", uri, str(directory)]
    run = subprocess.run(
        [*argv, "--platform", "linux/arm64"],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert_image_in(directory, multi.image(ARM64), index=multi.body)
    assert not files_in(directory) & set(multi.image(AMD64).blobs)


# -- indexes and lists from the real registry -----------------------------------------------------

MULTI_CHOICES: Final = [
    pytest.param(None, None, id="host"),
    pytest.param("linux/amd64", AMD64, id="amd64"),
    pytest.param("linux/arm64", ARM64, id="arm64"),
    pytest.param("linux/arm64/v8", ARM64, id="arm64-v8"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("flag", "chosen"), MULTI_CHOICES)
async def test_oci_index_is_resolved_to_the_wanted_platform(
    fetch: Fetch,
    registry: Registry,
    multi: Index,
    directory: Path,
    flag: str | None,
    chosen: str | None,
) -> None:
    """An OCI index leaves the image of ``--platform`` (default: this host's), the index beside
    it, and no blob of the other platform."""
    expected = expected_platform(flag, chosen, MULTI_FOR_HOST)
    uri = uri_of(registry, MULTI_REPO)
    outcome = await fetch(uri, directory, platform=flag)
    if expected is None:
        assert_no_image_for_host(outcome, uri, via=fetch.via)
        return
    assert_succeeded(outcome)
    image = multi.image(expected)
    assert_image_in(directory, image, index=multi.body)
    if outcome.summary is not None:
        assert outcome.summary.manifest_digest == image.digest
        assert outcome.summary.platform == str(parse_platform(expected))


LIST_CHOICES: Final = [
    pytest.param(None, None, id="host"),
    pytest.param("linux/amd64", AMD64, id="amd64"),
    pytest.param("linux/arm64/v8", "linux/arm64", id="arm64-v8-matches-arm64"),
    pytest.param("linux/arm", "linux/arm/v7", id="arm-means-v7"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("flag", "chosen"), LIST_CHOICES)
async def test_docker_manifest_list_is_resolved_to_the_wanted_platform(
    fetch: Fetch,
    registry: Registry,
    docker_list: Index,
    directory: Path,
    flag: str | None,
    chosen: str | None,
) -> None:
    """A Docker manifest list is resolved like an OCI index, with the variant defaults
    containerd uses: arm64 is arm64/v8, arm is arm/v7."""
    expected = expected_platform(flag, chosen, LIST_FOR_HOST)
    uri = uri_of(registry, LIST_REPO)
    outcome = await fetch(uri, directory, platform=flag)
    if expected is None:
        assert_no_image_for_host(outcome, uri, via=fetch.via)
        return
    assert_succeeded(outcome)
    assert_image_in(directory, docker_list.image(expected), index=docker_list.body)


@pytest.mark.anyio
@pytest.mark.parametrize("flag", [None, "linux/amd64"])
async def test_oci_image_manifest_is_fetched_without_an_index(
    fetch: Fetch, registry: Registry, single: Image, directory: Path, flag: str | None
) -> None:
    """An OCI image manifest (no index) leaves ``manifest`` and its blobs, and no ``index``."""
    outcome = await fetch(uri_of(registry, SINGLE_REPO), directory, platform=flag)
    assert_succeeded(outcome)
    assert_image_in(directory, single)


@pytest.mark.anyio
@pytest.mark.parametrize(("flag", "chosen"), [MULTI_CHOICES[0], MULTI_CHOICES[2]])
async def test_nested_index_is_followed_to_the_image(
    fetch: Fetch,
    registry: Registry,
    nested: Index,
    directory: Path,
    flag: str | None,
    chosen: str | None,
) -> None:
    """An index whose entry is another index is followed down to the platform's image;
    DIR/index is the index the URI names (the outer one), byte for byte."""
    expected = expected_platform(flag, chosen, MULTI_FOR_HOST)
    uri = uri_of(registry, NESTED_REPO)
    outcome = await fetch(uri, directory, platform=flag)
    if expected is None:
        assert_no_image_for_host(outcome, uri, via=fetch.via)
        return
    assert_succeeded(outcome)
    assert_image_in(directory, nested.image(expected), index=nested.body)


@pytest.mark.anyio
async def test_docker_manifest_of_an_index_writes_manifest_and_index_only(
    fetch: Fetch, registry: Registry, multi: Index, directory: Path
) -> None:
    """``docker-manifest://`` of an index leaves the chosen platform's manifest and the index,
    and no blob (the agent fetches those with ``docker-blob://``)."""
    uri = uri_of(registry, MULTI_REPO, "docker-manifest")
    outcome = await fetch(uri, directory, platform="linux/arm64")
    assert_succeeded(outcome)
    assert files_in(directory) == {"manifest", "index"}
    assert (directory / "manifest").read_bytes() == multi.image(ARM64).manifest
    assert (directory / "index").read_bytes() == multi.body


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("repo", "offered"),
    [
        pytest.param(MULTI_REPO, "linux/amd64, linux/arm64/v8", id="oci-index"),
        # As the list spells them: its arm64 entry names no variant.
        pytest.param(LIST_REPO, "linux/amd64, linux/arm64, linux/arm/v7", id="docker-list"),
    ],
)
async def test_unknown_platform_fails_listing_the_offered_ones(
    fetch: Fetch,
    registry: Registry,
    multi: Index,
    docker_list: Index,
    directory: Path,
    repo: str,
    offered: str,
) -> None:
    """``--platform linux/s390x`` on an index without it: exit 1, one line naming the wanted
    platform and every platform the index offers; nothing is written."""
    uri = uri_of(registry, repo)
    outcome = await fetch(uri, directory, platform="linux/s390x")
    reason = assert_failed(outcome, uri, via=fetch.via)
    assert reason == (
        f"No manifest for platform 'linux/s390x' in the image index; it offers: {offered}"
    )
    if outcome.error is not None:
        assert isinstance(outcome.error, ManifestError)
    assert files_in(directory) == set()


@pytest.mark.anyio
async def test_index_entry_whose_manifest_has_other_bytes_fails_on_the_real_registry(
    fetch: Fetch, make_registry: Callable[..., Registry], directory: Path
) -> None:
    """The registry's storage is altered so that the arm64 entry's digest serves the amd64
    manifest: the fetch fails naming both digests, and neither manifest nor blob is written."""
    registry = make_registry()
    index = build_index(platform_images("oci/tampered", (AMD64, ARM64), "oci"))
    push(registry, "oci/tampered", "latest", index)
    arm64, amd64 = index.image(ARM64), index.image(AMD64)
    registry.blob_data_path(arm64.digest).write_bytes(amd64.manifest)

    uri = uri_of(registry, "oci/tampered")
    outcome = await fetch(uri, directory, platform="linux/arm64")
    reason = assert_failed(outcome, uri, via=fetch.via)
    assert f"expected '{arm64.digest}', got '{amd64.digest}'" in reason
    if outcome.error is not None:
        assert isinstance(outcome.error, DigestMismatchError)
        assert (outcome.error.expected, outcome.error.actual) == (arm64.digest, amd64.digest)
    assert files_in(directory) == set()


# -- what a real registry will not do: the fault server ------------------------------------------


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def fault_uri(server: FaultServer, repo: str) -> str:
    return f"docker://{server.host}/{repo}?latest#http"


@pytest.mark.anyio
@pytest.mark.parametrize("claimed", ["asked-for", "served", "none"])
async def test_manifest_list_entry_whose_digest_does_not_match_fails(
    fetch: Fetch, fault_server: FaultServer, directory: Path, claimed: str
) -> None:
    """A registry that answers the arm64 entry's digest with the amd64 manifest is caught,
    whichever digest its Docker-Content-Digest claims (the asked-for one, the one of the bytes
    it sent, or none): exit 1, both digests named, nothing written."""
    repo = "faults/list"
    index = build_index(platform_images(repo, (AMD64, ARM64), "schema2"), media_type=DOCKER_LIST)
    serve(fault_server, repo, index)
    arm64, amd64 = index.image(ARM64), index.image(AMD64)
    headers = [("Content-Type", SCHEMA2)]
    if claimed != "none":
        headers.append(
            ("Docker-Content-Digest", arm64.digest if claimed == "asked-for" else amd64.digest)
        )
    fault_server.script(
        manifest_path(repo, arm64.digest), [Serve(body=amd64.manifest, headers=headers)]
    )

    uri = fault_uri(fault_server, repo)
    outcome = await fetch(uri, directory, platform="linux/arm64")
    reason = assert_failed(outcome, uri, via=fetch.via)
    assert f"expected '{arm64.digest}', got '{amd64.digest}'" in reason
    if outcome.error is not None:
        assert isinstance(outcome.error, DigestMismatchError)
    assert files_in(directory) == set()
    # The wrong manifest was asked for once, and no blob of either platform was.
    assert len(fault_server.requests_for(manifest_path(repo, arm64.digest))) == 1
    assert not [r for r in fault_server.requests if "/blobs/" in r.path]


def served_as(body: bytes, content_type: str | None) -> Serve:
    """``body`` with ``content_type`` (None: no Content-Type at all) and its digest."""
    headers = [("Docker-Content-Digest", sha256(body))]
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    return Serve(body=body, headers=headers)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("index_type", "manifest_type", "media_type_field"),
    [
        pytest.param("application/json", "application/json", True, id="application-json"),
        pytest.param(None, None, True, id="no-content-type"),
        pytest.param(None, None, False, id="no-content-type-no-mediatype-field"),
        pytest.param(
            "application/json; charset=utf-8", "application/json", False, id="json-charset"
        ),
        pytest.param(
            "Application/VND.OCI.Image.Index.v1+JSON; charset=utf-8",
            "APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON",
            True,
            id="parameters-and-case",
        ),
    ],
)
async def test_content_type_that_does_not_name_the_type_is_classified_by_the_body(
    fetch: Fetch,
    fault_server: FaultServer,
    directory: Path,
    index_type: str | None,
    manifest_type: str | None,
    media_type_field: bool,
) -> None:
    """An index and its manifests served as ``application/json``, without a Content-Type, or
    with parameters and odd case are recognised (by the body's ``mediaType`` or, lacking it,
    its ``manifests``/``layers``) and fetched as usual."""
    repo = "faults/classified"
    images = [
        build_image(p, make_layers(f"{repo} {p}", 2), media_type_field=media_type_field)
        for p in (AMD64, ARM64)
    ]
    index = build_index(images, media_type_field=media_type_field)
    serve(fault_server, repo, index)
    fault_server.script(manifest_path(repo, "latest"), [served_as(index.body, index_type)])
    for image in images:
        script = [served_as(image.manifest, manifest_type)]
        fault_server.script(manifest_path(repo, image.digest), script)

    outcome = await fetch(fault_uri(fault_server, repo), directory, platform="linux/arm64")
    assert_succeeded(outcome)
    assert_image_in(directory, index.image(ARM64), index=index.body)


@pytest.mark.anyio
async def test_accept_header_lists_the_oci_index_first(
    fetch: Fetch, fault_server: FaultServer, directory: Path
) -> None:
    """Every manifest request asks, in this order, for the OCI index, the Docker manifest list,
    the OCI manifest, Docker schema 2, then schema 1: a registry that holds several forms
    answers with the one that can serve every platform."""
    repo = "faults/accept"
    index = build_index(platform_images(repo, (AMD64, ARM64), "oci"))
    serve(fault_server, repo, index)

    outcome = await fetch(fault_uri(fault_server, repo), directory, platform="linux/amd64")
    assert_succeeded(outcome)
    requests = [r for r in fault_server.requests if "/manifests/" in r.path]
    assert [r.path for r in requests] == [
        manifest_path(repo, "latest"),
        manifest_path(repo, index.image(AMD64).digest),
    ]
    for request in requests:
        accept = request.header("Accept")
        assert accept is not None
        listed = [part.split(";")[0].strip() for part in accept.split(",")]
        assert listed[:4] == [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, SCHEMA2]
        assert set(listed[4:]) == {SCHEMA1, SCHEMA1_SIGNED}


# -- foreign layers -------------------------------------------------------------------------------

FOREIGN_PATH: Final = "/layers/foreign.tar.gz"
MISSING_PATH: Final = "/layers/missing.tar.gz"


class ForeignURLRegistry(Registry):
    """A registry that accepts layers with ``urls`` on loopback without holding their blobs.

    distribution refuses a manifest with ``urls`` unless ``validation.manifests.urls.allow``
    matches them: it then wants the blob pushed (``MANIFEST_BLOB_UNKNOWN``).
    """

    def _config(self, auth: dict[str, object] | None) -> dict[str, object]:
        config = super()._config(auth)
        allow = [r"^http://127\.0\.0\.1:[0-9]+/"]
        config["validation"] = {"manifests": {"urls": {"allow": allow}}}
        return config


@pytest.fixture(scope="module")
def foreign_registry() -> Iterator[TokenRegistry]:
    """Token auth like ``token_registry`` (``private/*`` needs credentials), with foreign URLs."""
    registry = ForeignURLRegistry(auth="token", users=USERS, private=PRIVATE)
    try:
        registry.start()
    except RegistryNotInstalledError:
        pytest.fail(INSTALL_HINT, pytrace=False)
    try:
        assert registry.token_server is not None
        yield TokenRegistry(registry=registry, token_server=registry.token_server)
    finally:
        registry.stop()


@pytest.fixture
def layer_server() -> Iterator[FaultServer]:
    """The second loopback server, standing in for the foreign layer's own host."""
    with FaultServer() as server:
        yield server


def alice_config(target: TokenRegistry) -> dict[str, object]:
    """A docker config with alice's credentials for the token registry."""
    secret = base64.b64encode(f"alice:{target.users['alice']}".encode()).decode()
    host = f"{target.registry.host}:{target.registry.port}"
    return {"auths": {host: {"auth": secret}}}


def push_with_foreign_layer(
    foreign_registry: TokenRegistry,
    layer_server: FaultServer,
    repo: str,
    image_format: ImageFormat,
) -> Image:
    """An image whose last layer lives only on ``layer_server``, listed after a URL there that
    answers 404; the registry holds every other blob."""
    layers = make_layers(repo, 3)
    urls = [layer_server.url(MISSING_PATH), layer_server.url(FOREIGN_PATH)]
    image = build_image(AMD64, layers, image_format=image_format, foreign_urls={2: urls})
    push(foreign_registry.registry, repo, "latest", image)
    return image


@pytest.mark.anyio
@pytest.mark.parametrize("image_format", ["schema2", "oci"])
async def test_foreign_layer_is_fetched_from_its_urls_without_credentials(
    fetch: Fetch,
    foreign_registry: TokenRegistry,
    layer_server: FaultServer,
    directory: Path,
    image_format: ImageFormat,
) -> None:
    """A layer with ``urls`` that the registry does not hold is fetched from those URLs in
    order and verified; the private repository needed alice's credentials, yet the layer's
    host got no Authorization header."""
    repo = f"private/foreign-{image_format}-{fetch.via}"
    image = push_with_foreign_layer(foreign_registry, layer_server, repo, image_format)
    (foreign,) = image.foreign
    layer_server.route(FOREIGN_PATH, respond(200, image.blobs[foreign]))

    uri = foreign_registry.registry.docker_uri(repo, "latest")
    outcome = await fetch(uri, directory, docker_config=alice_config(foreign_registry))
    assert_succeeded(outcome)
    assert_image_in(directory, image)
    requests = layer_server.requests
    assert [r.path for r in requests] == [MISSING_PATH, FOREIGN_PATH]
    assert [r.header("Authorization") for r in requests] == [None, None]
    # There was a credential to leak: alice was issued a token for this repository.
    issued = foreign_registry.token_server.requests
    assert any(r.user == "alice" and repo in r.repositories for r in issued)


@pytest.mark.anyio
async def test_foreign_layer_with_wrong_bytes_is_rejected(
    fetch: Fetch,
    foreign_registry: TokenRegistry,
    layer_server: FaultServer,
    directory: Path,
) -> None:
    """A foreign layer's host that serves other bytes (same length) fails the fetch with a
    digest mismatch, and no file bears the layer's name."""
    repo = f"private/foreign-corrupt-{fetch.via}"
    image = push_with_foreign_layer(foreign_registry, layer_server, repo, "oci")
    (foreign,) = image.foreign
    good = image.blobs[foreign]
    layer_server.route(FOREIGN_PATH, respond(200, good[:-1] + bytes([good[-1] ^ 0xFF])))

    uri = foreign_registry.registry.docker_uri(repo, "latest")
    outcome = await fetch(uri, directory, docker_config=alice_config(foreign_registry))
    reason = assert_failed(outcome, uri, via=fetch.via)
    assert foreign in reason
    if outcome.error is not None:
        assert isinstance(outcome.error, DigestMismatchError)
        assert outcome.error.expected == foreign
    left = files_in(directory)
    assert foreign not in left
    # What is left is verified (the manifest and blobs that completed), never a temporary file.
    assert left <= {"manifest", *image.blobs}
    for digest in left - {"manifest"}:
        assert sha256((directory / digest).read_bytes()) == digest
