"""The registry harness itself: what the integration tests, the demo and the benchmark stand on."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    INSTALL_HINT,
    SCHEMA1_SIGNED,
    HarnessError,
    ImageFormat,
    Registry,
    RegistryNotInstalledError,
    make_layer,
    push_blob,
    push_schema1_image,
)

from .conftest import Pusher, TokenRegistry

ROOT = Path(__file__).resolve().parents[2]


def http_get(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    ca_bundle: Path | None = None,
    basic: tuple[str, str] | None = None,
) -> tuple[int, Message[str, str], bytes]:
    """GET without the environment's proxies; any status comes back instead of raising."""
    request = urllib.request.Request(url, headers=headers or {})
    if basic is not None:
        credentials = base64.b64encode(":".join(basic).encode()).decode()
        request.add_header("Authorization", f"Basic {credentials}")
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def challenge_params(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def token_for(
    token_registry: TokenRegistry, scope: str, basic: tuple[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    server = token_registry.token_server
    query = urllib.parse.urlencode({"service": server.service, "scope": scope})
    status, _, body = http_get(f"{server.realm}?{query}", basic=basic)
    return status, json.loads(body)


def jwt_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def process_gone(pid: int) -> bool:
    """The registry was reaped (no /proc entry), or the pid now belongs to something else."""
    try:
        return b"docker-registry" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return True


# ---- serving what was pushed


@pytest.mark.parametrize("media_type", ["schema2", "oci"])
def test_a_pushed_manifest_is_served_by_tag_and_by_digest_as_pushed(
    registry: Registry, pushed: Pusher, media_type: ImageFormat
) -> None:
    image = pushed(registry, f"harness/{media_type}", "v1", 2, media_type=media_type)
    assert image.manifest_digest == "sha256:" + hashlib.sha256(image.manifest).hexdigest()
    for reference in ("v1", image.manifest_digest):
        status, headers, body = http_get(
            registry.manifest_url(image.repo, reference), headers={"Accept": image.media_type}
        )
        assert status == 200
        assert headers["Content-Type"] == image.media_type
        assert headers["Docker-Content-Digest"] == image.manifest_digest
        assert body == image.manifest


def test_the_manifest_and_config_describe_the_layers_exactly(
    registry: Registry, pushed: Pusher
) -> None:
    image = pushed(registry, "harness/app", "v1", 3)
    manifest = json.loads(image.manifest)
    assert [layer["digest"] for layer in manifest["layers"]] == list(image.layer_digests)
    assert [layer["size"] for layer in manifest["layers"]] == [len(x) for x in image.layers]
    assert manifest["config"] == {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": len(image.config),
        "digest": image.config_digest,
    }
    config = json.loads(image.config)
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["rootfs"]["diff_ids"] == [
        "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest() for layer in image.layers
    ]
    for digest, data in image.blobs.items():
        status, headers, body = http_get(registry.blob_url(image.repo, digest))
        assert (status, headers["Docker-Content-Digest"], body) == (200, digest, data)


def test_blob_data_path_is_the_file_the_registry_serves(registry: Registry, pushed: Pusher) -> None:
    # Bytes no other test pushes: the registry stores each blob once for all repositories.
    layer = b"harness corruption test " + os.urandom(32)
    image = pushed(registry, "harness/corrupt", "v1", [layer])
    path = registry.blob_data_path(image.layer_digests[0])
    assert path.read_bytes() == layer
    path.write_bytes(b"X" * len(layer))
    status, _, body = http_get(registry.blob_url(image.repo, image.layer_digests[0]))
    assert (status, body) == (200, b"X" * len(layer))


def test_docker_uri_names_the_registry_repository_reference_and_transport(
    registry: Registry, tls_registry: Registry
) -> None:
    assert registry.docker_uri("lab/app", "latest") == (
        f"docker://127.0.0.1:{registry.port}/lab/app?latest#http"
    )
    digest = "sha256:" + "a" * 64
    assert tls_registry.docker_uri("lab/app", digest, scheme="docker-blob") == (
        f"docker-blob://127.0.0.1:{tls_registry.port}/lab/app?{digest}#https"
    )


def test_make_layer_is_a_deterministic_gzip_tar_of_one_file_of_the_size_asked() -> None:
    layer = make_layer(7, 1000)
    assert layer == make_layer(7, 1000)
    assert layer != make_layer(8, 1000)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as archive:
        [member] = archive.getmembers()
        assert member.size == 1000


def test_a_signed_schema1_manifest_is_accepted_and_named_by_its_payload(
    make_registry: Any,
) -> None:
    registry = make_registry(schema1=True)
    image = push_schema1_image(registry, "harness/old", "v1", [make_layer(1, 100)])
    status, headers, body = http_get(
        registry.manifest_url(image.repo, image.manifest_digest),
        headers={"Accept": SCHEMA1_SIGNED},
    )
    assert status == 200
    assert headers["Docker-Content-Digest"] == image.manifest_digest
    manifest = json.loads(body)
    assert [layer["blobSum"] for layer in manifest["fsLayers"]] == list(image.layer_digests)
    # The digest covers the payload with the signatures cut out where "protected" says.
    protected = jwt_part(manifest["signatures"][0]["protected"] + ".", 0)
    tail = base64.urlsafe_b64decode(protected["formatTail"] + "==")
    payload = image.manifest[: protected["formatLength"]] + tail
    assert image.manifest_digest == "sha256:" + hashlib.sha256(payload).hexdigest()


def test_a_pull_through_cache_serves_its_remote_and_refuses_pushes(
    registry: Registry, pushed: Pusher, make_registry: Any
) -> None:
    image = pushed(registry, "harness/cached", "v1", 1)
    cache = make_registry(proxy_remote=registry.url)
    status, headers, body = http_get(
        cache.manifest_url(image.repo, "v1"), headers={"Accept": image.media_type}
    )
    assert (status, headers["Docker-Content-Digest"], body) == (
        200,
        image.manifest_digest,
        image.manifest,
    )
    with pytest.raises(HarnessError, match="answered 405"):
        push_blob(cache, "harness/cached", b"refused")


# ---- token auth


def test_the_token_server_counts_the_requests_of_a_pull(
    token_registry: TokenRegistry, pushed: Pusher
) -> None:
    image = pushed(token_registry, "harness/public", "v1", 1)
    server = token_registry.token_server
    server.reset_counts()
    assert server.count() == 0
    url = token_registry.registry.manifest_url(image.repo, "v1")
    accept = {"Accept": image.media_type}
    status, headers, _ = http_get(url, headers=accept)
    assert status == 401
    params = challenge_params(headers["WWW-Authenticate"])
    assert params == {
        "realm": server.realm,
        "service": server.service,
        "scope": "repository:harness/public:pull",
    }
    status, answer = token_for(token_registry, params["scope"])
    assert status == 200
    assert answer["token"] == answer["access_token"]
    status, _, body = http_get(
        url, headers={**accept, "Authorization": f"Bearer {answer['token']}"}
    )
    assert (status, body) == (200, image.manifest)
    assert server.count() == 1
    assert server.count("harness/public") == 1
    assert server.count("harness/other") == 0
    [request] = server.requests
    assert (request.had_credentials, request.user, request.status) == (False, None, 200)
    server.reset_counts()
    assert server.count() == 0


def test_tokens_are_es256_jwts_the_registry_can_verify(token_registry: TokenRegistry) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    server = token_registry.token_server
    status, answer = token_for(token_registry, "repository:harness/public:pull,push")
    assert status == 200
    assert answer["expires_in"] == 300
    header, claims = jwt_part(answer["token"], 0), jwt_part(answer["token"], 1)
    assert (header["alg"], header["typ"]) == ("ES256", "JWT")
    assert (claims["iss"], claims["aud"]) == (server.issuer, server.service)
    assert claims["exp"] - claims["iat"] == 300
    # Anonymous: pull granted, push silently dropped.
    assert claims["access"] == [
        {"type": "repository", "name": "harness/public", "actions": ["pull"]}
    ]
    cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    assert cert == x509.load_pem_x509_certificate(server.rootcertbundle.read_bytes())
    signing_input, _, signature = answer["token"].rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))


def test_a_private_repository_needs_valid_credentials(
    token_registry: TokenRegistry, pushed: Pusher
) -> None:
    image = pushed(token_registry, "private/app", "v1", 1)
    status, answer = token_for(token_registry, "repository:private/app:pull")
    assert status == 401
    assert answer["errors"][0]["code"] == "UNAUTHORIZED"
    alice = ("alice", token_registry.users["alice"])
    status, answer = token_for(token_registry, "repository:private/app:pull", basic=alice)
    assert status == 200
    status, _, body = http_get(
        token_registry.registry.manifest_url(image.repo, "v1"),
        headers={"Accept": image.media_type, "Authorization": f"Bearer {answer['token']}"},
    )
    assert (status, body) == (200, image.manifest)


def test_a_wrong_password_is_refused_even_for_a_public_repository(
    token_registry: TokenRegistry,
) -> None:
    status, answer = token_for(
        token_registry, "repository:harness/public:pull", basic=("alice", "not-the-password")
    )
    assert status == 401
    assert answer["errors"][0]["code"] == "UNAUTHORIZED"
    assert token_registry.token_server.requests[-1].had_credentials


def test_only_the_admin_is_granted_push(token_registry: TokenRegistry) -> None:
    granted = {}
    for user in ("alice", "admin"):
        basic = (user, token_registry.users[user])
        _, answer = token_for(token_registry, "repository:harness/push:pull,push", basic=basic)
        granted[user] = jwt_part(answer["token"], 1)["access"][0]["actions"]
    assert granted == {"alice": ["pull"], "admin": ["pull", "push"]}


def test_which_token_fields_and_expiry_the_server_sends_can_be_changed(
    token_registry: TokenRegistry,
) -> None:
    server = token_registry.token_server
    try:
        server.fields, server.expires_in = ("access_token",), None
        status, answer = token_for(token_registry, "repository:harness/public:pull")
    finally:
        server.fields, server.expires_in = ("token", "access_token"), 300
    assert status == 200
    assert sorted(answer) == ["access_token", "issued_at"]


def test_oauth2_password_and_refresh_token_grants(token_registry: TokenRegistry) -> None:
    server = token_registry.token_server

    def post(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        body = urllib.parse.urlencode({"service": server.service, **form}).encode()
        request = urllib.request.Request(server.realm, data=body, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    scope = "repository:private/app:pull"
    status, answer = post(
        {"grant_type": "password", "username": "alice", "password": "wonderland"}
        | {"access_type": "offline", "scope": scope, "client_id": "test"}
    )
    assert status == 200
    refresh = answer["refresh_token"]
    status, answer = post({"grant_type": "refresh_token", "refresh_token": refresh, "scope": scope})
    assert status == 200
    assert jwt_part(answer["access_token"], 1)["sub"] == "alice"
    status, _ = post({"grant_type": "refresh_token", "refresh_token": "forged", "scope": scope})
    assert status == 401


# ---- Basic auth and TLS


def test_the_htpasswd_registry_serves_alice_and_nobody_else(
    basic_registry: Registry, pushed: Pusher
) -> None:
    image = pushed(basic_registry, "harness/basic", "v1", 1)
    url = basic_registry.manifest_url(image.repo, "v1")
    accept = {"Accept": image.media_type}
    status, headers, _ = http_get(url, headers=accept)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic realm=")
    assert http_get(url, headers=accept, basic=("alice", "nope"))[0] == 401
    status, _, body = http_get(url, headers=accept, basic=("alice", "wonderland"))
    assert (status, body) == (200, image.manifest)


def test_the_tls_registry_is_reachable_with_its_ca_bundle(tls_registry: Registry) -> None:
    assert tls_registry.url.startswith("https://127.0.0.1:")
    assert tls_registry.ca_bundle is not None
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--noproxy", "*"]
    for host in ("127.0.0.1", "localhost"):
        url = f"https://{host}:{tls_registry.port}/v2/"
        trusted = subprocess.run(
            [*curl, "--cacert", str(tls_registry.ca_bundle), url], capture_output=True, text=True
        )
        assert (trusted.returncode, trusted.stdout) == (0, "200")
    untrusted = subprocess.run([*curl, f"{tls_registry.url}/v2/"], capture_output=True)
    assert untrusted.returncode == 60  # curl: peer certificate cannot be authenticated


# ---- life cycle


def test_the_registry_process_and_directory_are_gone_after_the_block_even_on_error() -> None:
    registry = Registry()
    seen: list[tuple[int, Path]] = []

    def failing_test_body() -> None:
        with registry:
            assert registry.running
            seen.append((registry.pid, registry.workdir))
            raise RuntimeError("test body failed")

    with pytest.raises(RuntimeError, match="test body failed"):
        failing_test_body()
    [(pid, workdir)] = seen
    assert process_gone(pid)
    assert not workdir.exists()
    assert not registry.running


def test_a_registry_that_cannot_start_says_why_with_its_log() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    registry = Registry(proxy_remote=dead)
    with pytest.raises(HarnessError, match="exited with status") as caught:
        registry.start()
    assert "connection refused" in str(caught.value)
    assert not registry.running


def test_a_missing_binary_is_a_clear_error() -> None:
    with pytest.raises(RegistryNotInstalledError) as caught:
        Registry(binary="docker-registry-that-is-not-installed").start()
    assert str(caught.value) == INSTALL_HINT


def test_without_the_binary_the_fixtures_fail_instead_of_skipping(tmp_path: Path) -> None:
    test = (
        f"{Path(__file__).relative_to(ROOT)}::test_the_tls_registry_is_reachable_with_its_ca_bundle"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=ROOT,
        env={**os.environ, "PATH": str(tmp_path)},  # no docker-registry on it
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert INSTALL_HINT in result.stdout
    assert "skipped" not in result.stdout.splitlines()[-1]
