"""The registry harness, where it could break without any product test noticing: fixtures that
skip instead of failing, a token count stuck at zero, an OCI push that is really schema 2, an
htpasswd registry that lets anyone in, a registry left running after its test."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from pathlib import Path

import pytest

from tests.support import INSTALL_HINT, MEDIA_TYPES, ImageFormat, Registry, make_layer
from tests.support.common import opener

from .conftest import Pusher, TokenRegistry

ROOT = Path(__file__).resolve().parents[2]


def http_get(
    url: str, *, headers: dict[str, str] | None = None, basic: tuple[str, str] | None = None
) -> tuple[int, Message[str, str], bytes]:
    """GET as the harness itself reaches loopback; any status comes back instead of raising."""
    request = urllib.request.Request(url, headers=headers or {})
    if basic is not None:
        credentials = base64.b64encode(":".join(basic).encode()).decode()
        request.add_header("Authorization", f"Basic {credentials}")
    try:
        with opener(None).open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


@pytest.mark.parametrize("media_type", ["schema2", "oci"])
def test_an_image_is_served_in_the_format_it_was_pushed_in(
    registry: Registry, pushed: Pusher, media_type: ImageFormat
) -> None:
    """The OCI tests would pass on a schema 2 image too, without testing OCI."""
    manifest_type, config_type, layer_type = MEDIA_TYPES[media_type]
    image = pushed(registry, f"harness/{media_type}", "v1", 1, media_type=media_type)
    status, headers, body = http_get(
        registry.manifest_url(image.repo, "v1"), headers={"Accept": manifest_type}
    )
    assert (status, headers["Content-Type"], body) == (200, manifest_type, image.manifest)
    manifest = json.loads(body)
    assert manifest["config"]["mediaType"] == config_type
    assert [layer["mediaType"] for layer in manifest["layers"]] == [layer_type]


def test_make_layer_is_a_deterministic_gzip_tar_of_one_file_of_the_size_asked() -> None:
    """Images are pushed once per session and per benchmark: the same seed must give the same
    digest, and the size asked is what the large-layer tests and the benchmark measure."""
    layer = make_layer(7, 1000)
    assert layer == make_layer(7, 1000)
    assert layer != make_layer(8, 1000)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as archive:
        [member] = archive.getmembers()
        assert member.size == 1000


def test_a_token_it_issues_is_accepted_by_the_registry_and_counted(
    token_registry: TokenRegistry, pushed: Pusher
) -> None:
    """Tests assert how many tokens a fetch asked for, some of them that it asked for none."""
    image = pushed(token_registry, "harness/public", "v1", 1)
    server = token_registry.token_server
    server.reset_counts()
    url = token_registry.registry.manifest_url(image.repo, "v1")
    accept = {"Accept": image.media_type}
    status, headers, _ = http_get(url, headers=accept)
    assert status == 401
    challenge = dict(re.findall(r'(\w+)="([^"]*)"', headers["WWW-Authenticate"]))
    assert challenge["realm"] == server.realm
    query = urllib.parse.urlencode({"service": challenge["service"], "scope": challenge["scope"]})
    status, _, answer = http_get(f"{challenge['realm']}?{query}")
    assert status == 200
    bearer = {"Authorization": f"Bearer {json.loads(answer)['token']}"}
    status, _, body = http_get(url, headers={**accept, **bearer})
    assert (status, body) == (200, image.manifest)
    assert (server.count(), server.count(image.repo), server.count("harness/other")) == (1, 1, 0)
    server.reset_counts()
    assert server.count() == 0


def test_the_htpasswd_registry_lets_in_only_its_users(
    basic_registry: Registry, pushed: Pusher
) -> None:
    """A registry that served anyone would let the Basic-auth tests pass without any auth."""
    image = pushed(basic_registry, "harness/basic", "v1", 1)
    url = basic_registry.manifest_url(image.repo, "v1")
    accept = {"Accept": image.media_type}
    status, headers, _ = http_get(url, headers=accept)
    assert (status, headers["WWW-Authenticate"].split()[0]) == (401, "Basic")
    status, _, body = http_get(url, headers=accept, basic=("alice", "wonderland"))
    assert (status, body) == (200, image.manifest)


def test_the_registry_process_directory_and_port_are_gone_after_the_block_even_on_error() -> None:
    registry = Registry()
    seen: list[tuple[int, Path, int]] = []

    def failing_test_body() -> None:
        with registry:
            assert registry.running
            seen.append((registry.pid, registry.workdir, registry.port))
            raise RuntimeError("test body failed")

    with pytest.raises(RuntimeError, match="test body failed"):
        failing_test_body()
    [(pid, workdir, port)] = seen
    assert not registry.running
    # Reaped (no /proc entry), or the pid already belongs to another program.
    cmdline = Path(f"/proc/{pid}/cmdline")
    assert not cmdline.exists() or b"docker-registry" not in cmdline.read_bytes()
    assert not workdir.exists()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def test_without_the_binary_the_fixtures_fail_instead_of_skipping(tmp_path: Path) -> None:
    """A run that skipped the registry tests would pass without having tested the main job."""
    name = test_a_token_it_issues_is_accepted_by_the_registry_and_counted.__name__
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            f"{Path(__file__).relative_to(ROOT)}::{name}",
        ],
        cwd=ROOT,
        env={**os.environ, "PATH": str(tmp_path)},  # no docker-registry on it
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert INSTALL_HINT in result.stdout
    assert "skipped" not in result.stdout.splitlines()[-1]
