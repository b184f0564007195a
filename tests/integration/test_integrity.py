"""Integrity end to end: every byte verified, nothing half-written, no credential where it does not
belong.

Against the real registry where it can show the case (a blob corrupted on its disk, a retried or
concurrent pull, a killed fetch, wrong credentials), and against the fault server for what a
real registry will not do (wrong or overlong bodies, hostile digests, oversized manifests and
token responses, redirects to a second loopback server that records what it was sent).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import anyio
import attrs
import pytest

from mesos_uri.errors import (
    AuthError,
    DigestError,
    DigestMismatchError,
    FetchError,
    ManifestError,
)
from mesos_uri.fetcher import Fetcher, Flags, create
from tests.support import DEFAULT_ADMIN, Registry, TokenServer, make_layer
from tests.support.faults import (
    Content,
    Exchange,
    FaultServer,
    Oversized,
    Redirect,
    Serve,
    Stall,
    Status,
    WrongBytes,
    blob_path,
    manifest_path,
)
from tests.support.procs import Proc, curl_procs, processes

from .conftest import PRIVATE, USERS, Pusher, TokenRegistry

ROOT = Path(__file__).resolve().parents[2]
# The store's temporary files (mesos_uri/_store.py): none may outlive a fetch.
TEMP_PREFIX = ".mesos-uri-"
MiB = 1024 * 1024
MANIFEST_LIMIT = 4 * MiB
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REPO = "lab/app"
USER, PASSWORD = "alice", USERS["alice"]
WRONG_PASSWORD = "Wr0ng-pa55word-4-integrity"
# Long enough for any step of a loopback fetch on a loaded machine.
DEADLINE = 60.0
# A stalled transfer outlives every test that waits on one.
STALL_SECONDS = 120.0


# ---------------------------------------------------------------------------------------------
# Helpers


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def auth_config(registry: str, user: str = USER, password: str = PASSWORD) -> str:
    """A docker ``config.json`` holding ``user:password`` for ``registry`` (``host:port``)."""
    return json.dumps({"auths": {registry: {"auth": b64(f"{user}:{password}")}}})


def secrets_of(user: str, password: str) -> list[str]:
    """Every form in which a password might leak: itself and the Basic credential."""
    return [password, b64(f"{user}:{password}"), b64(password)]


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def config_flag(path: Path) -> str:
    # The file:// spelling; a bare path names the same file (tests/test_flags.py).
    return f"--docker_config=file://{path}"


def cli(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m mesos_uri.fetch ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "mesos_uri.fetch", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        preexec_fn=preexec_fn,
        check=False,
    )


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mesos_uri.fetch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def temp_files(directory: Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(name for name in os.listdir(directory) if name.startswith(TEMP_PREFIX))


def tree(root: Path) -> set[str]:
    """Every path under ``root``, relative to it."""
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def assert_only_verified_files(directory: Path) -> None:
    """No temporary file is left, and every digest-named file holds the bytes its name says.
    A fetch that made the directory and failed removes it: nothing is left at all."""
    if not directory.exists():
        return
    assert temp_files(directory) == []
    for path in directory.iterdir():
        if path.name.startswith("sha256:"):
            assert sha256(path.read_bytes()) == path.name, f"{path.name} holds other bytes"


def curl_children(parent: int) -> list[Proc]:
    return curl_procs([parent])


def still_running(seen: Sequence[Proc]) -> list[Proc]:
    """Those of ``seen`` that still exist (under any parent: an orphan is re-parented)."""
    now = {(p.pid, p.start) for p in processes()}
    return [p for p in seen if (p.pid, p.start) in now]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def partial_download(directory: Path, digest: str) -> bool:
    """A temporary file of ``digest`` with some bytes in it: that blob is mid-transfer."""
    for name in temp_files(directory):
        if not name.startswith(f"{TEMP_PREFIX}{digest}."):
            continue
        try:
            if (directory / name).stat().st_size > 0:
                return True
        except FileNotFoundError:
            continue
    return False


def image_manifest(config: bytes, layers: Sequence[bytes], digests: Sequence[str] = ()) -> bytes:
    """A schema 2 manifest for ``config`` and ``layers``; ``digests`` overrides layer digests."""
    names = list(digests) or [sha256(layer) for layer in layers]
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": SCHEMA2,
            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": sha256(config)},
            "layers": [
                {"mediaType": LAYER_TYPE, "size": len(layer), "digest": name}
                for layer, name in zip(layers, names, strict=True)
            ],
        },
        indent=3,
    ).encode()


@attrs.frozen
class Served:
    """An image the fault server serves under ``REPO:latest``."""

    manifest: bytes
    config: bytes
    layers: tuple[bytes, ...]

    @property
    def manifest_digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> dict[str, bytes]:
        return {sha256(self.config): self.config, **{sha256(b): b for b in self.layers}}

    @property
    def layer_path(self) -> str:
        """The registry path of the first layer, the one tests make misbehave."""
        return blob_path(REPO, sha256(self.layers[0]))


def serve_image(server: FaultServer, layers: Sequence[bytes] = (b"layer one " * 400,)) -> Served:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    image = Served(image_manifest(config, layers), config, tuple(layers))
    server.registry(REPO, image.manifest, SCHEMA2, image.blobs)
    return image


def uri_of(server: FaultServer, reference: str = "latest", scheme: str = "docker") -> str:
    return f"{scheme}://{server.host}/{REPO}?{reference}#http"


def registry_uri(registry: Registry, repo: str, reference: str = "latest") -> str:
    return registry.docker_uri(repo, reference)


def hostport(registry: Registry) -> str:
    return f"{registry.host}:{registry.port}"


async def fetch_fails(
    fetcher: Fetcher, uri: str, target: Path, error: type[FetchError] = FetchError
) -> FetchError:
    """Fetch ``uri`` expecting ``error``; afterwards no temporary file and no curl child."""
    with pytest.raises(error) as caught:
        await fetcher.fetch(uri, target)
    assert_only_verified_files(target)
    assert curl_children(os.getpid()) == []
    return caught.value


def blob_gets(registry: Registry, repo: str) -> list[str]:
    """The digests of every blob GET the registry's access log holds for ``repo``, in order.

    A sentinel request is logged first: the registry logs each request when it has answered, so
    once the sentinel shows, every earlier exchange is in the log too.
    """
    marker = uuid.uuid4().hex
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{registry.url}/v2/?sentinel={marker}", timeout=DEADLINE) as answer:
        answer.read()
    wait_until(lambda: marker in registry.access_log_path.read_text(), "the access log")
    pattern = re.compile(rf'"GET /v2/{re.escape(repo)}/blobs/(sha256:[0-9a-f]{{64}}) HTTP')
    return pattern.findall(registry.access_log_path.read_text())


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


@pytest.fixture
def storage() -> Iterator[FaultServer]:
    """A second loopback server, on another port: blob storage or a CDN, not the registry."""
    with FaultServer() as running:
        yield running


# ---------------------------------------------------------------------------------------------
# Every byte verified


def corrupt(path: Path, how: str) -> bytes:
    """Damage a blob on the registry's disk: flip its last byte, or append bytes to it."""
    data = path.read_bytes()
    damaged = data[:-1] + bytes([data[-1] ^ 0xFF]) if how == "flip" else data + b"trailing junk"
    path.write_bytes(damaged)
    return damaged


@pytest.mark.parametrize("how", ["flip", "append"])
def test_a_blob_corrupted_on_the_registry_fails_the_fetch_and_leaves_no_file(
    make_registry: Callable[..., Registry], pushed: Pusher, tmp_path: Path, how: str
) -> None:
    """The user sees exit 1 and one line naming the expected and the actual digest (or the
    declared size); no file under the digest's name, no temporary file."""
    registry = make_registry()
    image = pushed(registry, "integrity/corrupted", layers=3, layer_size=64 * 1024)
    victim = image.layer_digests[1]
    damaged = corrupt(registry.blob_data_path(victim), how)
    target = tmp_path / "dir"

    result = cli(registry_uri(registry, image.repo), str(target))

    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Failed to fetch 'docker://")
    assert victim in result.stderr
    if how == "flip":
        assert f"expected '{victim}', got '{sha256(damaged)}'" in result.stderr
    else:
        assert f"larger than the {len(image.blobs[victim])} bytes" in result.stderr
    assert not (target / victim).exists()
    assert_only_verified_files(target)


@pytest.mark.anyio
async def test_wrong_bytes_from_the_registry_are_rejected(
    server: FaultServer, tmp_path: Path
) -> None:
    """Same length, one byte off: the fetch fails with both digests named, nothing kept."""
    image = serve_image(server)
    server.script(image.layer_path, [WrongBytes()])
    target = tmp_path / "dir"

    error = await fetch_fails(create(), uri_of(server), target, DigestMismatchError)

    assert isinstance(error, DigestMismatchError)
    layer = image.layers[0]
    assert error.expected == sha256(layer)
    assert error.actual == sha256(layer[:-1] + bytes([layer[-1] ^ 0xFF]))
    assert error.expected in str(error)
    assert error.actual in str(error)
    assert not (target / sha256(layer)).exists()


@attrs.define
class Overlong:
    """An act that sends ``total`` bytes for a blob, in chunks, and records how far it got.

    With ``announce`` the header block promises them (Content-Length); without, the body runs to
    the end of the connection.
    """

    total: int
    announce: bool = True
    chunk: int = 64 * 1024
    sent: int = 0
    finished: bool = False
    done: threading.Event = attrs.Factory(threading.Event)

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        try:
            length = [("Content-Length", str(self.total))] if self.announce else []
            exchange.head(200, [("Content-Type", "application/octet-stream"), *length])
            block = b"\x5a" * self.chunk
            while self.sent < self.total and exchange.connected:
                exchange.raw(block)
                if exchange.connected:
                    self.sent += len(block)
            self.finished = exchange.connected
        finally:
            self.done.set()


@pytest.mark.parametrize("announce", [True, False], ids=["content-length", "to-eof"])
@pytest.mark.anyio
async def test_a_body_longer_than_its_descriptor_is_stopped_and_rejected(
    server: FaultServer, tmp_path: Path, announce: bool
) -> None:
    """A blob that runs past its declared size is cut off at once (the server sees the
    connection closed long before its 64 MiB are out) and nothing of it is kept."""
    image = serve_image(server)
    act = Overlong(64 * MiB, announce=announce)
    server.script(image.layer_path, [act])
    target = tmp_path / "dir"

    error = await fetch_fails(create(), uri_of(server), target)

    assert f"larger than the {len(image.layers[0])} bytes its manifest declares" in str(error)
    assert act.done.wait(DEADLINE), "the server is still sending"
    assert not act.finished
    assert act.sent < act.total // 2
    assert not (target / sha256(image.layers[0])).exists()


# ---------------------------------------------------------------------------------------------
# Untrusted names never become paths

HOSTILE_DIGESTS = {
    "parent-path": "../../etc/passwd",
    "path-in-encoded": "sha256:../x",
    "empty": "",
    "oversized": "sha256:" + "a" * 10_000,
    "uppercase-hex": "sha256:" + "A" * 64,
    "absolute-path": "/etc/passwd",
    "slash-inside": "sha256:aa/" + "a" * 61,
}


@pytest.mark.parametrize("where", ["layer", "config"])
@pytest.mark.parametrize("hostile", list(HOSTILE_DIGESTS.values()), ids=list(HOSTILE_DIGESTS))
@pytest.mark.anyio
async def test_a_manifest_naming_a_hostile_digest_is_refused_before_anything_is_written(
    server: FaultServer, tmp_path: Path, hostile: str, where: str
) -> None:
    """A clear error naming the bad digest; no ``manifest`` file, no file anywhere outside
    DIR (its parents are checked), no blob requested."""
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = b"layer"
    document = json.loads(image_manifest(config, [layer]))
    if where == "config":
        document["config"]["digest"] = hostile
    else:
        document["layers"][0]["digest"] = hostile
    manifest = json.dumps(document).encode()
    server.registry(REPO, manifest, SCHEMA2, {sha256(config): config, sha256(layer): layer})
    target = tmp_path / "a" / "b" / "dir"
    before = tree(tmp_path)

    error = await fetch_fails(create(), uri_of(server), target, ManifestError)

    assert "Incorrect 'digest' format" in str(error)
    assert "Invalid digest" in str(error)
    assert hostile[:64] in str(error)
    assert len(str(error)) < 1000  # an oversized digest is not quoted whole
    assert tree(tmp_path) - before <= {"a", "a/b", "a/b/dir"}
    assert not target.exists()  # the fetch made it, failed, and removed it again
    assert not [r for r in server.requests if "/blobs/" in r.path]


@pytest.mark.parametrize(
    "hostile", ["sha256:../x", "../../etc/passwd", "sha256:" + "A" * 64, "sha256:" + "a" * 300]
)
@pytest.mark.anyio
async def test_a_blob_uri_with_a_hostile_digest_is_refused_before_any_request(
    server: FaultServer, tmp_path: Path, hostile: str
) -> None:
    """The agent's ``docker-blob`` call: the digest is checked before it becomes a path or a
    URL, so nothing is written and the registry is never asked."""
    target = tmp_path / "a" / "dir"
    before = tree(tmp_path)

    with pytest.raises(DigestError, match="Invalid digest"):
        await create().fetch(f"docker-blob://{server.host}/{REPO}?{hostile}#http", target)

    assert tree(tmp_path) - before <= {"a", "a/dir"}
    assert not (target.exists() and os.listdir(target))
    assert server.requests == []


def test_the_cli_refuses_a_blob_uri_with_a_hostile_digest(
    server: FaultServer, tmp_path: Path
) -> None:
    """A malformed digest on the command line is a usage error (exit 2), nothing fetched."""
    result = cli(f"docker-blob://{server.host}/{REPO}?sha256:../x#http", str(tmp_path / "dir"))

    assert result.returncode == 2
    assert "Invalid digest 'sha256:../x'" in result.stderr
    assert not (tmp_path / "dir").exists()
    assert server.requests == []


# ---------------------------------------------------------------------------------------------
# Bounded inputs


def says_the_limit(message: str) -> bool:
    return "4 MiB" in message or str(MANIFEST_LIMIT) in message


@pytest.mark.parametrize("size", [MANIFEST_LIMIT + 1, 16 * MiB], ids=["4MiB+1", "16MiB"])
@pytest.mark.anyio
async def test_a_manifest_over_4_mib_is_refused_with_the_limit_named(
    server: FaultServer, tmp_path: Path, size: int
) -> None:
    """Just over the limit, and far over it (curl is stopped early): the error says 4 MiB,
    the limit the user knows, and no manifest is written."""
    serve_image(server)
    server.script(manifest_path(REPO, "latest"), [Oversized(size)])
    target = tmp_path / "dir"

    error = await fetch_fails(create(), uri_of(server), target)

    assert says_the_limit(str(error)), str(error)
    assert not target.exists()  # the fetch made it, failed, and removed it again


def challenge(server: FaultServer, realm_path: str = "/token") -> Status:
    """A registry's 401 sending clients to the token realm on ``server``."""
    value = (
        f'Bearer realm="{server.url(realm_path)}",service="fault-registry",'
        f'scope="repository:{REPO}:pull"'
    )
    return Status(401, headers=[("WWW-Authenticate", value)])


@pytest.mark.parametrize("size", [MANIFEST_LIMIT + 1, 16 * MiB], ids=["4MiB+1", "16MiB"])
@pytest.mark.anyio
async def test_a_token_response_over_4_mib_is_refused_with_the_limit_named(
    server: FaultServer, tmp_path: Path, size: int
) -> None:
    """A token endpoint that never stops talking fails the fetch with the limit named."""
    serve_image(server)
    server.script(manifest_path(REPO, "latest"), [challenge(server)])
    token = json.dumps({"token": "t0ken", "expires_in": 300}).encode()
    server.script("/token", [Oversized(size, body=token)])
    target = tmp_path / "dir"

    error = await fetch_fails(create(), uri_of(server), target)

    assert says_the_limit(str(error)), str(error)
    assert not target.exists()  # the fetch made it, failed, and removed it again


# ---------------------------------------------------------------------------------------------
# Manifests are verified


@pytest.mark.anyio
async def test_a_manifest_whose_content_digest_header_lies_is_rejected(
    server: FaultServer, tmp_path: Path
) -> None:
    """Fetched by tag: the body must hash to the registry's Docker-Content-Digest."""
    image = serve_image(server)
    claimed = "sha256:" + "0" * 64
    server.script(
        manifest_path(REPO, "latest"), [Serve(headers=[("Docker-Content-Digest", claimed)])]
    )
    target = tmp_path / "dir"

    error = await fetch_fails(create(), uri_of(server), target, DigestMismatchError)

    assert isinstance(error, DigestMismatchError)
    assert (error.expected, error.actual) == (claimed, image.manifest_digest)
    assert claimed in str(error)
    assert image.manifest_digest in str(error)
    assert not target.exists()  # the fetch made it, failed, and removed it again


@pytest.mark.anyio
async def test_a_manifest_fetched_by_digest_must_have_that_digest(
    server: FaultServer, tmp_path: Path
) -> None:
    """Other bytes (still a valid manifest) under a digest are refused, header or not."""
    image = serve_image(server)
    other = json.dumps(json.loads(image.manifest)).encode()  # same document, other bytes
    assert sha256(other) != image.manifest_digest
    server.script(manifest_path(REPO, image.manifest_digest), [Serve(body=other)])
    target = tmp_path / "dir"

    error = await fetch_fails(
        create(), uri_of(server, image.manifest_digest), target, DigestMismatchError
    )

    assert isinstance(error, DigestMismatchError)
    assert (error.expected, error.actual) == (image.manifest_digest, sha256(other))
    assert not target.exists()  # the fetch made it, failed, and removed it again


def spoil_manifest(registry: Registry, digest: str) -> None:
    """Change one indenting space of a stored manifest into a tab: still valid JSON, and still
    the same image, but other bytes than its digest names."""
    path = registry.blob_data_path(digest)
    data = path.read_bytes()
    position = data.index(b"\n   ") + 1
    path.write_bytes(data[:position] + b"\t" + data[position + 1 :])


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_a_manifest_corrupted_on_the_registry_is_rejected(
    make_registry: Callable[..., Registry], pushed: Pusher, tmp_path: Path, by: str
) -> None:
    """The real registry serves a manifest whose stored bytes changed: by tag its
    Docker-Content-Digest, by digest the reference itself, no longer match. Exit 1, the
    expected digest named, no ``manifest`` file."""
    registry = make_registry()
    image = pushed(registry, "integrity/spoiled-manifest", layers=1)
    spoil_manifest(registry, image.manifest_digest)
    reference = image.tag if by == "tag" else image.manifest_digest
    target = tmp_path / "dir"

    result = cli(registry_uri(registry, image.repo, reference), str(target))

    assert result.returncode == 1, result.stderr
    assert f"expected '{image.manifest_digest}'" in result.stderr
    assert not target.exists()  # the fetch made it, failed, and removed it again


# ---------------------------------------------------------------------------------------------
# Nothing half-written: killed and cancelled fetches


def stalled_blob(server: FaultServer) -> Served:
    """An image whose first layer stops after 64 KiB of 1 MiB and sends nothing more."""
    image = serve_image(server, [os.urandom(MiB)])
    server.script(image.layer_path, [Stall(STALL_SECONDS, after=64 * 1024)])
    return image


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_killed_cli_fetch_leaves_no_temp_file_and_no_curl(
    server: FaultServer, tmp_path: Path, signum: signal.Signals
) -> None:
    """Exit 128+signal with one line saying the fetch was interrupted; the partial blob is
    gone, and so is every curl the CLI started. Meanwhile the Basic credential reached the
    registry but never appeared in a curl's argv."""
    image = stalled_blob(server)
    config = write_config(tmp_path / "config.json", auth_config(server.host))
    target = tmp_path / "dir"
    process = start_cli(config_flag(config), uri_of(server), str(target))
    try:
        layer = sha256(image.layers[0])
        wait_until(lambda: partial_download(target, layer), "the layer to be mid-transfer")
        wait_until(lambda: bool(curl_children(process.pid)), "the layer's curl")
        curls = curl_children(process.pid)
    finally:
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=DEADLINE)

    assert process.returncode == 128 + signum, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "interrupted" in lines[0]
    assert temp_files(target) == []
    assert not (target / sha256(image.layers[0])).exists()
    assert curls, "no curl was seen mid-transfer"
    assert still_running(curls) == []
    for proc in curls:
        for secret in secrets_of(USER, PASSWORD):
            assert secret.encode() not in proc.cmdline
    authorization = server.requests_for(image.layer_path)[0].header("Authorization")
    assert authorization == f"Basic {b64(f'{USER}:{PASSWORD}')}"


@pytest.mark.anyio
async def test_cancelling_the_library_call_leaves_no_temp_file_and_no_curl(
    server: FaultServer, tmp_path: Path
) -> None:
    """The caller's cancel scope ends the fetch mid-blob: it returns cancelled, with no
    temporary file, no blob under its name, no curl process, and no secret in curl's argv."""
    image = stalled_blob(server)
    fetcher = create(Flags(docker_config=auth_config(server.host)))
    target = tmp_path / "dir"
    seen: list[Proc] = []
    pid = os.getpid()

    async def cancel_mid_transfer(scope: anyio.CancelScope) -> None:
        while True:
            if partial_download(target, sha256(image.layers[0])) and curl_children(pid):
                break
            await anyio.sleep(0.02)
        seen.extend(curl_children(pid))
        scope.cancel()

    with anyio.move_on_after(DEADLINE) as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(cancel_mid_transfer, scope)
            await fetcher.fetch(uri_of(server), target)
    assert scope.cancelled_caught
    assert seen, "no curl was seen mid-transfer"

    assert temp_files(target) == []
    assert not (target / sha256(image.layers[0])).exists()
    assert curl_children(os.getpid()) == []
    assert still_running(seen) == []
    for proc in seen:
        for secret in secrets_of(USER, PASSWORD):
            assert secret.encode() not in proc.cmdline


def test_a_full_disk_fails_with_one_line_and_leaves_no_temp_file(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """Writing a blob fails (here: the file size limit): exit 1, one line, nothing partial."""
    image = pushed(registry, "integrity/full-disk", layers=1, layer_size=512 * 1024)
    target = tmp_path / "dir"

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death by signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (128 * 1024, 128 * 1024))

    result = cli(registry_uri(registry, image.repo), str(target), preexec_fn=small_files)

    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Failed to fetch 'docker://")
    assert "File too large" in result.stderr
    assert not (target / image.layer_digests[0]).exists()
    assert_only_verified_files(target)


# ---------------------------------------------------------------------------------------------
# Retries are cheap; concurrent pulls agree


def test_a_verified_blob_is_not_downloaded_again_and_a_wrong_one_is_replaced(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """A retried pull costs no blob GET (counted in the registry's access log); a file with
    wrong bytes under a digest's name is fetched again and replaced."""
    image = pushed(registry, "integrity/again", layers=3)
    target = tmp_path / "dir"
    uri = registry_uri(registry, image.repo)
    assert cli(uri, str(target)).returncode == 0
    first = blob_gets(registry, image.repo)
    assert sorted(first) == sorted(image.blobs)

    again = cli(uri, str(target))
    assert again.returncode == 0, again.stderr
    assert blob_gets(registry, image.repo) == first

    victim = image.layer_digests[1]
    (target / victim).write_bytes(b"not the layer")
    repaired = cli(uri, str(target))
    assert repaired.returncode == 0, repaired.stderr
    assert blob_gets(registry, image.repo) == [*first, victim]
    assert (target / victim).read_bytes() == image.blobs[victim]
    assert sorted(os.listdir(target)) == sorted(["manifest", *image.blobs])
    assert_only_verified_files(target)


def test_a_truncated_blob_left_by_the_original_is_replaced(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """The original left partial downloads under the digest's name; a pull repairs them."""
    image = pushed(registry, "integrity/truncated", layers=2)
    target = tmp_path / "dir"
    target.mkdir()
    victim = image.layer_digests[0]
    (target / victim).write_bytes(image.blobs[victim][:100])

    result = cli(registry_uri(registry, image.repo), str(target))

    assert result.returncode == 0, result.stderr
    assert (target / victim).read_bytes() == image.blobs[victim]
    assert_only_verified_files(target)


def large_image(registry: Registry, pushed: Pusher, repo: str) -> dict[str, bytes]:
    layers = [make_layer(seed_of(repo) + i, 512 * 1024) for i in range(4)]
    return pushed(registry, repo, layers=layers).blobs


def seed_of(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


@pytest.mark.parametrize("shared", [True, False], ids=["one-fetcher", "two-fetchers"])
@pytest.mark.anyio
async def test_two_library_fetches_into_one_directory_at_once_both_succeed(
    registry: Registry, pushed: Pusher, tmp_path: Path, shared: bool
) -> None:
    """Both calls return, and the directory holds the image and nothing else."""
    blobs = large_image(registry, pushed, "integrity/together")
    uri = registry_uri(registry, "integrity/together")
    target = tmp_path / "dir"
    first = create()
    second = first if shared else create()

    async with anyio.create_task_group() as group:
        group.start_soon(first.fetch, uri, target)
        group.start_soon(second.fetch, uri, target)

    assert sorted(os.listdir(target)) == sorted(["manifest", *blobs])
    for digest, data in blobs.items():
        assert (target / digest).read_bytes() == data


def test_two_cli_fetches_into_one_directory_at_once_both_succeed(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """Two processes pulling the same image into one directory: both exit 0, and the
    directory holds the image and nothing else."""
    blobs = large_image(registry, pushed, "integrity/together-cli")
    uri = registry_uri(registry, "integrity/together-cli")
    target = tmp_path / "dir"

    processes = [start_cli(uri, str(target)) for _ in range(2)]
    results = [(p.communicate(timeout=DEADLINE)[1], p.returncode) for p in processes]

    assert [code for _, code in results] == [0, 0], results
    assert sorted(os.listdir(target)) == sorted(["manifest", *blobs])
    for digest, data in blobs.items():
        assert (target / digest).read_bytes() == data


# ---------------------------------------------------------------------------------------------
# Credentials stay home


def token_route(server: FaultServer, token: str) -> None:
    body = json.dumps({"token": token, "expires_in": 300}).encode()
    server.script("/token", [Serve(body=body, headers=[("Content-Type", "application/json")])])


def expected_authorization(kind: str, token: str) -> str:
    return f"Bearer {token}" if kind == "bearer" else f"Basic {b64(f'{USER}:{PASSWORD}')}"


@pytest.mark.parametrize("kind", ["basic", "bearer"])
@pytest.mark.anyio
async def test_a_blob_redirect_to_another_port_carries_no_authorization(
    server: FaultServer, storage: FaultServer, tmp_path: Path, kind: str
) -> None:
    """Download mode: the registry sees the credential, blob storage on another port none."""
    image = serve_image(server)
    token = "bearer-" + uuid.uuid4().hex
    if kind == "bearer":
        server.script(manifest_path(REPO, "latest"), [challenge(server), Serve()])
        token_route(server, token)
    server.script(image.layer_path, [Redirect(storage.url("/cdn/layer"))])
    storage.script("/cdn/layer", [Serve(body=image.layers[0])])
    target = tmp_path / "dir"
    fetcher = create(Flags(docker_config=auth_config(server.host)))

    await fetcher.fetch(uri_of(server), target)

    assert (target / sha256(image.layers[0])).read_bytes() == image.layers[0]
    sent = server.requests_for(image.layer_path)
    assert [r.header("Authorization") for r in sent] == [expected_authorization(kind, token)]
    reached = storage.requests_for("/cdn/layer")
    assert len(reached) == 1
    assert reached[0].header("Authorization") is None


@pytest.mark.parametrize("kind", ["basic", "bearer"])
@pytest.mark.anyio
async def test_a_manifest_redirect_to_another_port_carries_no_authorization(
    server: FaultServer, storage: FaultServer, tmp_path: Path, kind: str
) -> None:
    """Request mode (curl follows the redirect itself): no Authorization on the other port."""
    image = serve_image(server)
    token = "bearer-" + uuid.uuid4().hex
    away = Redirect(storage.url("/cdn/manifest"))
    if kind == "bearer":
        server.script(manifest_path(REPO, "latest"), [challenge(server), away])
        token_route(server, token)
    else:
        server.script(manifest_path(REPO, "latest"), [away])
    storage.script(
        "/cdn/manifest", [Serve(body=image.manifest, headers=[("Content-Type", SCHEMA2)])]
    )
    target = tmp_path / "dir"
    fetcher = create(Flags(docker_config=auth_config(server.host)))

    await fetcher.fetch(uri_of(server, scheme="docker-manifest"), target)

    assert (target / "manifest").read_bytes() == image.manifest
    sent = server.requests_for(manifest_path(REPO, "latest"))
    assert sent[-1].header("Authorization") == expected_authorization(kind, token)
    reached = storage.requests_for("/cdn/manifest")
    assert len(reached) == 1
    assert reached[0].header("Authorization") is None


@pytest.fixture
def tls_registry_with_http_realm(
    make_registry: Callable[..., Registry], pushed: Pusher, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TokenRegistry]:
    """An https registry whose token realm is plain http, holding a private image."""
    token_server = TokenServer(users=USERS, private=PRIVATE, push_users=[DEFAULT_ADMIN[0]])
    try:
        registry = make_registry(auth="token", tls=True, token_server=token_server)
        assert registry.ca_bundle is not None
        monkeypatch.setenv("CURL_CA_BUNDLE", str(registry.ca_bundle))
        pushed(registry, "private/clear-realm", layers=1)
        token_server.reset_counts()
        yield TokenRegistry(registry=registry, token_server=token_server)
    finally:
        token_server.stop()


@pytest.mark.anyio
async def test_a_plain_http_realm_for_an_https_registry_is_refused(
    tls_registry_with_http_realm: TokenRegistry, tmp_path: Path
) -> None:
    """The credentials would cross the network in clear: the fetch fails before sending them."""
    registry = tls_registry_with_http_realm.registry
    assert tls_registry_with_http_realm.token_server.realm.startswith("http://")
    fetcher = create(Flags(docker_config=auth_config(hostport(registry))))
    target = tmp_path / "dir"

    error = await fetch_fails(
        fetcher, registry_uri(registry, "private/clear-realm"), target, AuthError
    )

    assert "plain http for an https registry" in str(error)
    assert tls_registry_with_http_realm.token_server.requests == []
    assert not target.exists()  # the fetch made it, failed, and removed it again
    for secret in secrets_of(USER, PASSWORD):
        assert secret not in str(error)


@pytest.fixture(params=["htpasswd", "token"])
def private_image(request: pytest.FixtureRequest, pushed: Pusher) -> tuple[Registry, str]:
    """A registry and a repository that needs credentials: htpasswd, or token auth."""
    if request.param == "htpasswd":
        basic: Registry = request.getfixturevalue("basic_registry")
        return basic, pushed(basic, "integrity/private", layers=1).repo
    token: TokenRegistry = request.getfixturevalue("token_registry")
    return token.registry, pushed(token, "private/integrity", layers=1).repo


def test_a_wrong_password_is_never_in_the_error_message(
    private_image: tuple[Registry, str], tmp_path: Path
) -> None:
    """Exit 1 with a message that holds neither the password nor its base64 forms."""
    registry, repo = private_image
    config = write_config(
        tmp_path / "config.json", auth_config(hostport(registry), USER, WRONG_PASSWORD)
    )

    result = cli(config_flag(config), registry_uri(registry, repo), str(tmp_path / "d"))

    assert result.returncode == 1
    assert result.stderr.startswith("Failed to fetch 'docker://")
    for secret in secrets_of(USER, WRONG_PASSWORD):
        assert secret not in result.stderr
        assert secret not in result.stdout


@pytest.mark.parametrize("mode", [0o644, 0o600], ids=["0644", "0600"])
@pytest.mark.parametrize("form", ["--docker_config=/path", "--docker_config=file://", "--data"])
def test_a_world_readable_credentials_file_is_used_but_warned_about(
    basic_registry: Registry, pushed: Pusher, tmp_path: Path, form: str, mode: int
) -> None:
    """The fetch succeeds either way (the registry refuses anonymous pulls, so the file was
    read); only a file every user can read draws a warning."""
    image = pushed(basic_registry, "integrity/warned", layers=1)
    config = write_config(tmp_path / "config.json", auth_config(hostport(basic_registry)), mode)
    flag = {
        "--docker_config=/path": f"--docker_config={config}",
        "--docker_config=file://": f"--docker_config=file://{config}",
        "--data": f"--data={config}",
    }[form]
    target = tmp_path / "dir"

    result = cli(flag, registry_uri(basic_registry, image.repo), str(target))

    assert result.returncode == 0, result.stderr
    assert (target / "manifest").read_bytes() == image.manifest
    if mode == 0o644:
        assert "warning" in result.stderr
        assert "readable by every user" in result.stderr
        assert str(config) in result.stderr
    else:
        assert result.stderr == ""
