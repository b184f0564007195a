"""The CLI as nodes run it: image references instead of URIs, mirrors and pull-through
caches, and what a user sees (progress on a terminal, --quiet, -v, --json).

Credentials, TLS and proxies, and the curl/copy plugins have files of their own
(test_credentials_e2e.py, test_tls.py, test_plugins.py).
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import PushedImage, Registry

from .conftest import Pusher, TokenRegistry
from .helpers import REPO_ROOT, assert_image, docker_config, run_cli

# A CLI run that takes longer than this in a pty has hung.
PTY_TIMEOUT = 60.0
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _hostport(registry: Registry) -> str:
    return f"{registry.host}:{registry.port}"


def _dead_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _assert_fetched(done: subprocess.CompletedProcess[str], out: Path, image: PushedImage) -> None:
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert_image(out, image)


# -- image references, normalised as the Mesos agent does ------------------------------------------


@pytest.fixture
def app(registry: Registry, pushed: Pusher) -> PushedImage:
    return pushed(registry, "lab/app", "v1", layers=2)


def test_reference_with_registry_and_tag(
    registry: Registry, app: PushedImage, tmp_path: Path
) -> None:
    """A port other than 443/80 on 127.0.0.1 means plain HTTP, as the agent decides."""
    done = run_cli(f"{_hostport(registry)}/lab/app:v1", str(tmp_path))
    _assert_fetched(done, tmp_path, app)


def test_reference_with_registry_and_digest(
    registry: Registry, app: PushedImage, tmp_path: Path
) -> None:
    done = run_cli(f"{_hostport(registry)}/lab/app@{app.manifest_digest}", str(tmp_path))
    _assert_fetched(done, tmp_path, app)


def test_reference_on_localhost_without_a_tag_means_latest(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    image = pushed(registry, "lab/app", "latest", layers=2)
    done = run_cli(f"localhost:{registry.port}/lab/app", str(tmp_path))
    _assert_fetched(done, tmp_path, image)


def test_reference_without_a_registry_goes_to_docker_registry(
    registry: Registry, app: PushedImage, tmp_path: Path
) -> None:
    done = run_cli(f"--docker_registry={registry.url}", "lab/app:v1", str(tmp_path))
    _assert_fetched(done, tmp_path, app)


def test_a_docker_io_default_registry_adds_library(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """``busybox`` on a registry whose name contains ``docker.io`` is ``library/busybox``, as the
    agent has it. curl resolves every ``*.localhost`` name to loopback itself, so this stays on
    127.0.0.1."""
    image = pushed(registry, "library/busybox", "latest", layers=2)
    default = f"http://docker.io.localhost:{registry.port}"
    done = run_cli(f"--docker_registry={default}", "busybox", str(tmp_path))
    _assert_fetched(done, tmp_path, image)


def test_busybox_through_a_docker_hub_mirror(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """``busybox DIR`` as an operator types it: Docker Hub's ``library/busybox:latest``, served by
    a Docker Hub mirror on loopback. Docker Hub itself is out of reach (a dead proxy), so the
    fetch can only succeed through the mirror."""
    image = pushed(registry, "library/busybox", "latest", layers=2)
    unreachable = f"http://127.0.0.1:{_dead_port()}"
    done = run_cli(
        "--retries=0",
        f"--registry_mirror={registry.url}",
        "busybox",
        str(tmp_path),
        env={"https_proxy": unreachable, "HTTPS_PROXY": unreachable, "no_proxy": "127.0.0.1"},
    )
    _assert_fetched(done, tmp_path, image)


@pytest.mark.parametrize(
    ("reference", "complaint"),
    [
        ("Lab/App:v1", "must be lowercase"),
        ("127.0.0.1:5000/lab/app:-v1", "tag '-v1'"),
        ("127.0.0.1:5000/lab/app:" + "v" * 129, "tag"),
        ("127.0.0.1:5000/lab/app@sha256:1234", "sha256"),
        ("127.0.0.1:99999/lab/app:v1", "registry port '99999'"),
        ("lab//app", "repository path component ''"),
        ("lab/app@one@two", "Multiple '@' symbols found"),
        ("lab/" + "a" * 256, "not be more than 255 characters"),
    ],
)
def test_an_invalid_reference_is_a_usage_error(
    reference: str, complaint: str, tmp_path: Path
) -> None:
    done = run_cli(reference, str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.startswith("python -m mesos_uri.fetch: error: Invalid image reference")
    assert complaint in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


# -- mirrors and pull-through caches --------------------------------------------------------------


def _requests(registry: Registry, *, expected: int = 0) -> list[str]:
    """``METHOD PATH`` of every request in the registry's access log but the harness's readiness
    probes (``GET /v2/``), once it holds at least ``expected`` (the registry logs a request after
    it answered it: a fast client is done before the last line is written)."""
    deadline = time.monotonic() + 5
    while True:
        text = registry.access_log_path.read_text(errors="replace")
        found = [r for r in re.findall(r'"(\S+ \S+) HTTP/[\d.]+"', text) if r != "GET /v2/"]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def _wait_until_cached(cache: Registry, image: PushedImage) -> None:
    """The cache stores what it streamed to us after it answered, then links it into the
    repository: wait until it holds all of ``image``."""
    layers = cache.storage_dir / f"docker/registry/v2/repositories/{image.repo}/_layers/sha256"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(
        cache.blob_data_path(digest).is_file()
        and cache.blob_data_path(digest).stat().st_size == len(blob)
        and (layers / digest.removeprefix("sha256:") / "link").is_file()
        for digest, blob in image.blobs.items()
    ):
        time.sleep(0.02)


def test_a_pull_through_cache_serves_the_second_pull_without_its_origin(
    make_registry: Callable[..., Registry], pushed: Pusher, tmp_path: Path
) -> None:
    origin = make_registry()
    image = pushed(origin, "lab/cached", "v1", layers=3)
    cache = make_registry(proxy_remote=origin.url)
    mirror = f"--registry_mirror={_hostport(origin)}={cache.url}"
    uri = origin.docker_uri("lab/cached", "v1")

    done = run_cli(mirror, uri, str(tmp_path / "first"))
    _assert_fetched(done, tmp_path / "first", image)
    through_cache = _requests(cache, expected=1 + len(image.blobs))
    assert "GET /v2/lab/cached/manifests/v1" in through_cache
    for digest in image.blobs:
        assert f"GET /v2/lab/cached/blobs/{digest}" in through_cache

    _wait_until_cached(cache, image)
    origin.stop()
    done = run_cli(mirror, uri, str(tmp_path / "second"))
    _assert_fetched(done, tmp_path / "second", image)


def test_a_mirror_that_is_down_falls_back_to_the_origin_with_one_warning(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """An operator learns that the mirror failed (once), unless -q asked for silence."""
    image = pushed(registry, "lab/fallback", "v1", layers=2)
    dead = f"http://127.0.0.1:{_dead_port()}"
    mirror = f"--registry_mirror={_hostport(registry)}={dead}"
    uri = registry.docker_uri("lab/fallback", "v1")

    done = run_cli(mirror, uri, str(tmp_path / "plain"))
    assert done.returncode == 0, done.stderr
    assert_image(tmp_path / "plain", image)
    [warning] = done.stderr.splitlines()
    assert warning.startswith(f"warning: the mirror {dead} failed, fetching from ")
    assert "curl: (7)" in warning

    done = run_cli("-q", mirror, uri, str(tmp_path / "quiet"))
    _assert_fetched(done, tmp_path / "quiet", image)

    done = run_cli("-v", mirror, uri, str(tmp_path / "verbose"))
    assert done.returncode == 0, done.stderr
    assert_image(tmp_path / "verbose", image)
    assert f"WARNING the mirror {dead} failed" in done.stderr


class _Hangup:
    """A loopback port that accepts connections and closes them at once (a load balancer with
    no backend behind it), counting them."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)  # so that the thread notices close() soon
        self.port: int = self._sock.getsockname()[1]
        self.accepted = 0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._closing.set()
        self._thread.join()
        self._sock.close()


@pytest.fixture
def hangup() -> Iterator[_Hangup]:
    server = _Hangup()
    yield server
    server.close()


def test_falling_back_from_a_mirror_costs_no_retries_against_it(
    registry: Registry, pushed: Pusher, hangup: _Hangup, tmp_path: Path
) -> None:
    """As dockerd: a mirror that fails is left for the next endpoint at once; the retry budget is
    for the endpoint that is the last resort, not for a mirror that has an origin behind it."""
    image = pushed(registry, "lab/fallback", "v1", layers=2)
    mirror = f"--registry_mirror={_hostport(registry)}=http://127.0.0.1:{hangup.port}"
    done = run_cli(mirror, registry.docker_uri("lab/fallback", "v1"), str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert_image(tmp_path, image)
    assert hangup.accepted == 1


def test_a_mirror_serving_corrupt_bytes_is_not_trusted(
    make_registry: Callable[..., Registry], pushed: Pusher, tmp_path: Path
) -> None:
    """Blobs from a mirror are verified like any other: a cache that serves other bytes under a
    digest does not get them into DIR, and the origin's bytes land instead."""
    origin = make_registry()
    image = pushed(origin, "lab/spoiled", "v1", layers=2)
    cache = make_registry(proxy_remote=origin.url)
    mirror = f"--registry_mirror={_hostport(origin)}={cache.url}"
    uri = origin.docker_uri("lab/spoiled", "v1")
    done = run_cli(mirror, uri, str(tmp_path / "warm"))  # fills the cache
    _assert_fetched(done, tmp_path / "warm", image)
    _wait_until_cached(cache, image)

    spoiled = cache.blob_data_path(image.layer_digests[0])
    data = bytearray(spoiled.read_bytes())
    data[-1] ^= 0xFF
    spoiled.write_bytes(bytes(data))
    done = run_cli(mirror, uri, str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert_image(tmp_path / "out", image)


# -- what a user sees -----------------------------------------------------------------------------


def _run_in_pty(*args: str) -> tuple[int, str]:
    """The CLI with a terminal for stdin, stdout and stderr; (exit status, what it wrote)."""
    main, child = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "mesos_uri.fetch", *args],
            stdin=child,
            stdout=child,
            stderr=child,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    finally:
        os.close(child)
    output = bytearray()
    deadline = time.monotonic() + PTY_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.1)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()
        status = process.wait(PTY_TIMEOUT)
    return status, output.decode("utf-8", "replace")


def test_progress_on_a_terminal_ends_with_one_summary_line(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    image = pushed(registry, "lab/progress", "v1", layers=3, layer_size=256 * 1024)
    status, output = _run_in_pty(registry.docker_uri("lab/progress", "v1"), str(tmp_path))
    assert status == 0, output
    assert_image(tmp_path, image)
    blobs = len(image.blobs)
    kib = sum(len(blob) for blob in image.blobs.values()) / 1024
    summary = output.rpartition("\x1b[J")[2]  # the live area erased; one line left
    assert re.fullmatch(rf"lab/progress: {blobs} blobs, {kib:.1f} KiB in \d+\.\d s\r\n", summary)


def test_nothing_on_stderr_without_a_terminal(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    image = pushed(registry, "lab/progress", "v1", layers=3, layer_size=256 * 1024)
    done = run_cli(registry.docker_uri("lab/progress", "v1"), str(tmp_path))
    assert (done.stdout, done.stderr) == ("", "")
    assert_image(tmp_path, image)


def test_quiet_prints_nothing_even_for_a_world_readable_data_file(
    token_registry: TokenRegistry, pushed: Pusher, tmp_path: Path
) -> None:
    registry = token_registry.registry
    image = pushed(token_registry, "private/quiet", "v1", layers=2)
    data = tmp_path / "config.json"
    data.write_text(docker_config(_hostport(registry), "alice", "wonderland"))
    data.chmod(0o644)
    out = tmp_path / "out"
    done = run_cli(
        "--quiet", f"--data={data}", registry.docker_uri("private/quiet", "v1"), str(out)
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
    assert_image(out, image)
    # Without --quiet the same run says why the file is a risk.
    done = run_cli(f"--data={data}", registry.docker_uri("private/quiet", "v1"), str(out))
    assert "readable by every user" in done.stderr


def test_verbose_logs_never_show_the_password_or_a_token(
    token_registry: TokenRegistry, pushed: Pusher, tmp_path: Path
) -> None:
    registry = token_registry.registry
    image = pushed(token_registry, "private/verbose", "v1", layers=2)
    secret = "wonderland"
    config = docker_config(_hostport(registry), "alice", secret)
    basic = json.loads(config)["auths"][_hostport(registry)]["auth"]
    data = tmp_path / "config.json"
    data.write_text(config)
    data.chmod(0o600)
    out = tmp_path / "out"
    uri = registry.docker_uri("private/verbose", "v1")
    done = run_cli("-vv", f"--data={data}", uri, str(out))
    assert done.returncode == 0, done.stderr
    assert_image(out, image)
    assert "private/verbose" in done.stderr  # it did log what happened
    for leak in (secret, basic, "Bearer ", "Basic ", "eyJ"):  # eyJ: every JWT starts so
        assert leak not in done.stderr


def test_the_manifest_request_started_before_the_imports_is_the_one_used(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """The command line asks for the manifest while Python still loads the rest; the request
    the plugin then makes must be that one, not a second (a config that no longer matches
    would cost a round trip and kill the first)."""
    pushed(registry, "lab/early", "v1", layers=1)
    out = tmp_path / "out"
    done = run_cli("-vv", registry.docker_uri("lab/early", "v1"), str(out))
    assert done.returncode == 0, done.stderr
    manifest_gets = [line for line in done.stderr.splitlines() if "/manifests/v1 -> " in line]
    assert len(manifest_gets) == 1, done.stderr
    assert manifest_gets[0].endswith("(started early)")


def test_json_summary_says_what_was_downloaded_and_what_was_already_there(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    image = pushed(registry, "lab/summary", "v1", layers=3)
    uri = registry.docker_uri("lab/summary", "v1")
    first = run_cli("--json", uri, str(tmp_path))
    second = run_cli("--json", uri, str(tmp_path))
    for done in (first, second):
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
    assert_image(tmp_path, image)

    summaries = [json.loads(done.stdout) for done in (first, second)]
    for summary, downloaded in zip(summaries, (True, False), strict=True):
        assert summary["uri"] == uri
        assert summary["manifest_digest"] == image.manifest_digest
        assert "platform" in summary
        blobs = {blob["digest"]: blob for blob in summary["blobs"]}
        assert set(blobs) == set(image.blobs)
        for digest, data in image.blobs.items():
            assert blobs[digest]["size"] == len(data)
            assert blobs[digest]["seconds"] >= 0
            assert blobs[digest]["downloaded"] is downloaded


def test_a_platform_that_a_single_image_does_not_match_is_warned_about(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """--platform chooses from an index; an image without one is fetched as it is, with a
    warning when it is for another platform, since its containers may not run."""
    image = pushed(registry, "lab/single", "v1", layers=1)
    uri = registry.docker_uri("lab/single", "v1")

    done = run_cli("--platform=linux/arm64", uri, str(tmp_path / "other"))
    assert done.returncode == 0, done.stderr
    assert_image(tmp_path / "other", image)
    assert done.stderr == (
        "warning: the image is for linux/amd64, not linux/arm64/v8: it is not an index, so "
        "--platform chose nothing\n"
    )

    done = run_cli("--platform=linux/amd64", uri, str(tmp_path / "same"))
    assert (done.returncode, done.stderr) == (0, "")
