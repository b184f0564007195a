"""The Docker fetcher plugin against real registries: every scheme on every set-up, the original's
docker tests with a local registry standing in for Docker Hub and nvcr.io, and bad input."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from mesos_uri import fetcher
from mesos_uri._docker.plugin import DockerFetcherPlugin
from mesos_uri._uri import parse_uri
from mesos_uri.errors import FetchError, HTTPStatusError
from tests.support import Registry, make_layer

from .conftest import Pusher, TokenRegistry
from .helpers import assert_image, assert_verified, docker_config, run_cli

pytestmark = pytest.mark.anyio


def _hostport(registry: Registry) -> str:
    return f"{registry.host}:{registry.port}"


# -- every scheme on every set-up -------------------------------------------------------------


@pytest.fixture(params=["anonymous", "token", "htpasswd", "tls"])
def setup(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[Registry, list[str]]:
    """A registry of each kind, with the CLI flags a user needs to pull from it."""
    if request.param == "anonymous":
        return request.getfixturevalue("registry"), []
    if request.param == "token":
        token: TokenRegistry = request.getfixturevalue("token_registry")
        return token.registry, []
    if request.param == "htpasswd":
        basic: Registry = request.getfixturevalue("basic_registry")
        config = docker_config(_hostport(basic), "alice", "wonderland")
        return basic, [f"--docker_config={config}"]
    tls: Registry = request.getfixturevalue("tls_registry")
    assert tls.ca_bundle is not None
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tls.ca_bundle))
    return tls, []


def test_docker_scheme_fetches_manifest_and_every_blob(
    setup: tuple[Registry, list[str]], pushed: Pusher, tmp_path: Path
) -> None:
    """`docker://` leaves DIR/manifest as served plus every blob, each verified, nothing else."""
    registry, flags = setup
    image = pushed(registry, "lab/three", "v1", layers=3)
    done = run_cli(*flags, registry.docker_uri("lab/three", "v1"), str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert_image(tmp_path / "out", image)


def test_docker_manifest_scheme_fetches_the_manifest_only(
    setup: tuple[Registry, list[str]], pushed: Pusher, tmp_path: Path
) -> None:
    registry, flags = setup
    image = pushed(registry, "lab/three", "v1", layers=3)
    uri = registry.docker_uri("lab/three", "v1", scheme="docker-manifest")
    done = run_cli(*flags, uri, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert_image(tmp_path, image, blobs=False)


def test_docker_blob_scheme_fetches_one_blob(
    setup: tuple[Registry, list[str]], pushed: Pusher, tmp_path: Path
) -> None:
    registry, flags = setup
    image = pushed(registry, "lab/three", "v1", layers=3)
    digest = image.layer_digests[1]
    done = run_cli(
        *flags, registry.docker_uri("lab/three", digest, scheme="docker-blob"), str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == [digest]
    assert (tmp_path / digest).read_bytes() == image.layers[1]


def test_image_fetched_by_digest(registry: Registry, pushed: Pusher, tmp_path: Path) -> None:
    image = pushed(registry, "lab/three", "v1", layers=3)
    done = run_cli(registry.docker_uri("lab/three", image.manifest_digest), str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert_image(tmp_path, image)


def test_a_layer_used_twice_is_fetched_once(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """A manifest may name one layer twice; DIR holds it once, as the original's digest set."""
    shared = make_layer(424242, 8192)
    image = pushed(registry, "lab/shared", "v1", layers=[shared, make_layer(1, 100), shared])
    done = run_cli("--json", registry.docker_uri("lab/shared", "v1"), str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert_image(tmp_path, image)
    summary = json.loads(done.stdout)
    assert len(summary["blobs"]) == 3  # config + two distinct layers
    assert summary["manifest_digest"] == image.manifest_digest


# -- the original's docker tests (DockerFetcherPluginTest) ---------------------------------------


async def test_fetch_manifest(registry: Registry, pushed: Pusher, tmp_path: Path) -> None:
    """FetchManifest: DIR/manifest is a schema 2 manifest."""
    pushed(registry, "library/busybox", "latest", layers=2)
    uri = parse_uri(registry.docker_uri("library/busybox", "latest", scheme="docker-manifest"))
    await fetcher.create().fetch(uri, tmp_path)
    manifest = json.loads((tmp_path / "manifest").read_bytes())
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"


async def test_fetch_blob(token_registry: TokenRegistry, pushed: Pusher, tmp_path: Path) -> None:
    """FetchBlob: the anonymous token flow gets one blob."""
    image = pushed(token_registry, "library/busybox", "latest", layers=2)
    digest = image.layer_digests[0]
    uri = token_registry.registry.docker_uri("library/busybox", digest, scheme="docker-blob")
    await fetcher.create().fetch(uri, tmp_path)
    assert (tmp_path / digest).read_bytes() == image.layers[0]


async def test_fetch_image(token_registry: TokenRegistry, pushed: Pusher, tmp_path: Path) -> None:
    """FetchImage: the config blob and every layer exist next to a schema 2 manifest."""
    image = pushed(token_registry, "library/busybox", "latest", layers=2)
    await fetcher.create().fetch(
        token_registry.registry.docker_uri("library/busybox", "latest"), tmp_path
    )
    assert_image(tmp_path, image)


async def test_invoke_fetch_by_name(registry: Registry, pushed: Pusher, tmp_path: Path) -> None:
    """InvokeFetchByName: the plugin named ``docker`` does the same as dispatch by scheme."""
    image = pushed(registry, "library/busybox", "latest", layers=2)
    await fetcher.create().fetch(
        registry.docker_uri("library/busybox", "latest"), tmp_path, plugin="docker"
    )
    assert_image(tmp_path, image)


class _ChallengeStripper(ThreadingHTTPServer):
    """A reverse proxy that drops ``service`` and ``scope`` from the registry's challenges on
    repository paths, as nvcr.io does; ``/v2/`` is passed through unchanged. ``stripped`` and
    ``root_asked`` say what a client met and did."""

    def __init__(self, upstream: Registry) -> None:
        self.upstream = upstream
        self.stripped = 0
        self.root_asked = 0
        super().__init__(("127.0.0.1", 0), _StripHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class _StripHandler(BaseHTTPRequestHandler):
    server: _ChallengeStripper

    def do_GET(self) -> None:
        if self.path == "/v2/":
            self.server.root_asked += 1
        upstream = http.client.HTTPConnection(self.server.upstream.host, self.server.upstream.port)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        upstream.request("GET", self.path, headers=headers)
        reply = upstream.getresponse()
        body = reply.read()
        self.send_response(reply.status)
        for name, value in reply.getheaders():
            if name.lower() in ("content-length", "connection", "transfer-encoding"):
                continue
            if name.lower() == "www-authenticate" and self.path != "/v2/":
                value = re.sub(r',(service|scope)="[^"]*"', "", value)
                self.server.stripped += 1
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stripper(token_registry: TokenRegistry) -> Iterator[_ChallengeStripper]:
    proxy = _ChallengeStripper(token_registry.registry)
    yield proxy
    proxy.stop()


async def test_generated_repository_scope(
    token_registry: TokenRegistry, stripper: _ChallengeStripper, pushed: Pusher, tmp_path: Path
) -> None:
    """GeneratedRepositoryScope: a challenge without service/scope is completed (the scope
    generated, realm and service from the ``/v2/`` challenge) and the pull succeeds."""
    image = pushed(token_registry, "nvidia/k8s/cuda-sample", "nbody", layers=2)
    uri = parse_uri(f"docker://127.0.0.1:{stripper.server_port}/nvidia/k8s/cuda-sample?nbody#http")
    await DockerFetcherPlugin().fetch(uri, tmp_path / "fallback")
    assert_image(tmp_path / "fallback", image)
    assert stripper.stripped > 0
    assert stripper.root_asked > 0


# -- credentials --------------------------------------------------------------------------------


def test_private_repository_with_credentials(
    token_registry: TokenRegistry, pushed: Pusher, tmp_path: Path
) -> None:
    registry = token_registry.registry
    image = pushed(token_registry, "private/fetched", "v1", layers=2)
    config = tmp_path / "config.json"
    config.write_text(docker_config(_hostport(registry), "alice", "wonderland"))
    config.chmod(0o600)
    done = run_cli(
        "--data", str(config), registry.docker_uri("private/fetched", "v1"), str(tmp_path / "o")
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert_image(tmp_path / "o", image)


def test_per_fetch_data_wins_over_the_default_config(
    token_registry: TokenRegistry, pushed: Pusher, tmp_path: Path
) -> None:
    """``--data`` (read from stdin here) overrides a wrong default for the same registry."""
    registry = token_registry.registry
    image = pushed(token_registry, "private/fetched", "v1", layers=2)
    wrong = docker_config(_hostport(registry), "alice", "not-her-password")
    right = docker_config(_hostport(registry), "alice", "wonderland")
    done = run_cli(
        f"--docker_config={wrong}",
        "--data=-",
        registry.docker_uri("private/fetched", "v1"),
        str(tmp_path),
        stdin=right,
    )
    assert done.returncode == 0, done.stderr
    assert_image(tmp_path, image)


def test_private_repository_without_credentials_fails(
    token_registry: TokenRegistry, pushed: Pusher, tmp_path: Path
) -> None:
    registry = token_registry.registry
    pushed(token_registry, "private/fetched", "v1", layers=2)
    uri = registry.docker_uri("private/fetched", "v1")
    done = run_cli(uri, str(tmp_path / "o"))
    assert done.returncode == 1
    assert done.stderr.startswith(f"Failed to fetch '{uri}': ")
    assert "401 Unauthorized" in done.stderr
    hostport = _hostport(registry)
    assert f"({hostport} asks for credentials: give them with --docker_config or --data)" in (
        done.stderr
    )
    assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "o" / "manifest").exists()


def test_wrong_password_fails_without_showing_it(
    basic_registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    pushed(basic_registry, "lab/three", "v1", layers=3)
    config = docker_config(_hostport(basic_registry), "alice", "s3cret-guess")
    done = run_cli(
        f"--docker_config={config}", basic_registry.docker_uri("lab/three", "v1"), str(tmp_path)
    )
    assert done.returncode == 1
    assert "401 Unauthorized" in done.stderr
    assert (
        f"(the registry rejected the credentials for {_hostport(basic_registry)} from the "
        "default docker config (--docker_config))"
    ) in done.stderr
    assert "s3cret-guess" not in done.stderr
    assert json.loads(config)["auths"][_hostport(basic_registry)]["auth"] not in done.stderr


def test_a_wrong_password_on_a_token_registry_names_where_it_came_from(
    token_registry: TokenRegistry, pushed: Pusher, tmp_path: Path
) -> None:
    registry = token_registry.registry
    pushed(token_registry, "private/refused", "v1", layers=1)
    done = run_cli(
        "--data=-",
        registry.docker_uri("private/refused", "v1"),
        str(tmp_path),
        stdin=docker_config(_hostport(registry), "alice", "not-her-password"),
    )
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert "'401 Unauthorized' when trying to GET" in done.stderr
    assert (
        f"(the registry rejected the credentials for {_hostport(registry)} from the per-fetch "
        "docker config (--data))"
    ) in done.stderr
    assert "not-her-password" not in done.stderr


# -- bad input: a clear one-line error and the right exit status --------------------------------


def test_unknown_tag(registry: Registry, pushed: Pusher, tmp_path: Path) -> None:
    pushed(registry, "lab/three", "v1", layers=3)
    uri = registry.docker_uri("lab/three", "no-such-tag")
    done = run_cli(uri, str(tmp_path))
    assert done.returncode == 1
    assert done.stderr == (
        f"Failed to fetch '{uri}': Unexpected HTTP response '404 Not Found' when trying to get "
        "the manifest (MANIFEST_UNKNOWN: manifest unknown)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_unknown_repository(registry: Registry, tmp_path: Path) -> None:
    done = run_cli(registry.docker_uri("lab/nothing-here", "v1"), str(tmp_path))
    assert done.returncode == 1
    assert "404 Not Found" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_unknown_blob(registry: Registry, pushed: Pusher, tmp_path: Path) -> None:
    pushed(registry, "lab/three", "v1", layers=3)
    uri = registry.docker_uri("lab/three", "sha256:" + "0" * 64, scheme="docker-blob")
    done = run_cli(uri, str(tmp_path))
    assert done.returncode == 1
    assert "when trying to download the blob (BLOB_UNKNOWN" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        ("docker://127.0.0.1:5000", "repository"),
        ("docker://127.0.0.1:5000/lab/app", "tag or digest"),
        ("docker://127.0.0.1:port/lab/app?v1", "port"),
        ("docker-blob://127.0.0.1:5000/lab/app?sha256:../../etc/passwd", "digest"),
        ("Not An/Image", "Invalid image reference"),
        ("http//missing-colon/x", "Invalid image reference"),
    ],
)
def test_malformed_uri_is_a_usage_error(uri: str, complaint: str, tmp_path: Path) -> None:
    done = run_cli(uri, str(tmp_path / "o"))
    assert done.returncode == 2
    assert complaint in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_unsupported_scheme_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("gopher://127.0.0.1/x", str(tmp_path))
    assert done.returncode == 2
    assert "Scheme 'gopher' is not supported" in done.stderr


def test_unknown_flag_and_missing_argument_are_usage_errors(tmp_path: Path) -> None:
    assert run_cli("--no-such-flag", "docker://h/r?t", str(tmp_path)).returncode == 2
    assert run_cli("docker://h/r?t").returncode == 2


def test_bad_duration_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("--docker_stall_timeout=10", "docker://h/r?t", str(tmp_path))
    assert done.returncode == 2
    assert "Invalid duration '10'" in done.stderr


def test_unreachable_registry(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"docker://127.0.0.1:{port}/lab/app?v1#http"
    done = run_cli("--retries=0", uri, str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.startswith(f"Failed to fetch '{uri}': Failed to perform 'curl'")
    assert "(7)" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_missing_curl_is_one_clear_line_from_the_first_request_on(tmp_path: Path) -> None:
    """The manifest's request starts before the rest of the program loads: without curl it
    fails like every later request does."""
    missing = str(tmp_path / "no-such-curl")
    uri = "docker://127.0.0.1:9/lab/app?v1"
    done = run_cli(uri, str(tmp_path / "out"), env={"MESOS_URI_CURL": missing})
    assert done.returncode == 1
    assert done.stderr == (
        f"Failed to fetch '{uri}': Failed to exec the curl subprocess: [Errno 2] No such file or "
        f"directory: '{missing}' (is curl installed and on PATH?)\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags", [[], ["--insecure_registry=127.0.0.1:9"]])
def test_a_uri_with_bytes_that_are_not_utf8_reaches_curl_as_they_are(
    flags: list[str], tmp_path: Path
) -> None:
    """With or without the early manifest request: the same one-line error, no traceback."""
    uri = "docker://127.0.0.1:9/lab/app\udcff?v1"
    done = run_cli("--retries=0", *flags, uri, str(tmp_path))
    assert done.returncode == 1
    assert "Failed to perform 'curl' for '" in done.stderr
    assert "/v2/lab/app\\udcff/manifests/v1': curl: (7) " in done.stderr
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("flag", ["--docker_config", "--data"])
def test_malformed_docker_config_is_a_usage_error_from_either_flag(
    flag: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    config.write_text("{not json")
    config.chmod(0o600)
    for value in ("{not json", str(config)):
        done = run_cli(f"{flag}={value}", "docker://127.0.0.1:9/r?t", str(tmp_path / "out"))
        assert done.returncode == 2
        assert len(done.stderr.splitlines()) == 1
        assert "error: Failed to parse docker config: JSON parse failed" in done.stderr
        assert not (tmp_path / "out").exists()


# The command line with fd 0 closed, as a service manager may start it.
CLOSED_STDIN = 'exec "$0" -m mesos_uri.fetch --data - docker://127.0.0.1:9/r?t "$1" <&-'


def test_data_from_a_closed_stdin_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        ["sh", "-c", CLOSED_STDIN, sys.executable, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.endswith("error: --data -: stdin is closed; pass the docker config on it\n")


def test_directory_that_cannot_be_created(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    pushed(registry, "lab/three", "v1", layers=3)
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should go")
    done = run_cli(registry.docker_uri("lab/three", "v1"), str(blocker / "sub"))
    assert done.returncode == 1
    assert f"Failed to create directory '{blocker / 'sub'}'" in done.stderr


def test_help_documents_the_flags() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for flag in (
        "--docker_config",
        "--data",
        "--docker_stall_timeout",
        "--platform",
        "--jobs",
        "--retries",
        "--json",
        "Exit status",
    ):
        assert flag in done.stdout


# -- the agent's path: one manifest, then every blob at once, through one Fetcher --------------


async def test_agent_path_costs_one_token_request(
    token_registry: TokenRegistry, pushed: Pusher, tmp_path: Path
) -> None:
    """The agent calls docker-manifest, then every docker-blob concurrently: one token in all."""
    registry = token_registry.registry
    image = pushed(token_registry, "lab/agent", "v1", layers=6)
    shared = fetcher.create()
    token_registry.token_server.reset_counts()
    await shared.fetch(registry.docker_uri("lab/agent", "v1", scheme="docker-manifest"), tmp_path)
    async with anyio.create_task_group() as group:
        for digest in image.blobs:
            uri = registry.docker_uri("lab/agent", digest, scheme="docker-blob")
            group.start_soon(shared.fetch, uri, tmp_path)
    assert_image(tmp_path, image)
    assert token_registry.token_server.count() == 1


async def test_blobs_alone_concurrently_cost_one_token_request(
    token_registry: TokenRegistry, pushed: Pusher, tmp_path: Path
) -> None:
    """Concurrent docker-blob fetches with no token yet share a single token request."""
    registry = token_registry.registry
    image = pushed(token_registry, "lab/agent2", "v1", layers=6)
    shared = fetcher.create()
    token_registry.token_server.reset_counts()
    async with anyio.create_task_group() as group:
        for digest in image.blobs:
            uri = registry.docker_uri("lab/agent2", digest, scheme="docker-blob")
            group.start_soon(shared.fetch, uri, tmp_path)
    assert token_registry.token_server.count() == 1
    assert {p.name for p in tmp_path.iterdir()} == set(image.blobs)
    assert_verified(tmp_path)


def test_docker_scheme_costs_one_token_request(
    token_registry: TokenRegistry, pushed: Pusher, tmp_path: Path
) -> None:
    image = pushed(token_registry, "lab/many", "v1", layers=12)
    token_registry.token_server.reset_counts()
    done = run_cli(token_registry.registry.docker_uri("lab/many", "v1"), str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert_image(tmp_path, image)
    assert token_registry.token_server.count() == 1


async def test_one_failing_blob_fails_the_fetch_and_names_the_uri(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    image = pushed(registry, "lab/broken", "v1", layers=3)
    registry.blob_data_path(image.layer_digests[2]).unlink()
    uri = registry.docker_uri("lab/broken", "v1")
    with pytest.raises(HTTPStatusError) as caught:
        await fetcher.create().fetch(uri, tmp_path)
    assert str(caught.value).startswith(f"Failed to fetch '{uri}': Collect failed: ")
    assert caught.value.code == 404
    assert image.layer_digests[2] not in os.listdir(tmp_path)
    assert_verified(tmp_path)


async def test_fetch_error_is_the_projects_own(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="Scheme 'nope' is not supported"):
        await fetcher.create().fetch("nope://x/y", tmp_path)


async def test_the_docker_plugin_refuses_another_scheme_in_its_own_words(tmp_path: Path) -> None:
    uri = parse_uri("https://bob:hunter2@example.com/x")
    with pytest.raises(FetchError) as caught:
        await DockerFetcherPlugin().fetch(uri, tmp_path / "out")
    assert str(caught.value) == (
        "Failed to fetch 'https://bob:***@example.com/x': "
        "Docker fetcher plugin does not support 'https' URI scheme"
    )
    assert not (tmp_path / "out").exists()
