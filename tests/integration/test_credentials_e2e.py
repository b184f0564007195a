"""Credentials found as Docker finds them, end to end: the CLI, a private repository on the token
registry, and the fake credential helper (tests/bin) run from PATH."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from mesos_uri._docker import plugin as plugin_module
from mesos_uri.errors import AuthError
from mesos_uri.fetcher import Flags, create
from tests.support import DEFAULT_ADMIN, PushedImage

from .conftest import Pusher, TokenRegistry
from .helpers import assert_image, docker_config, run_cli

BIN = Path(__file__).resolve().parents[1] / "bin"
FAKE = BIN / "docker-credential-fake"
USER, PASSWORD = "alice", "wonderland"


class Helpers:
    """The fake helper's state file and call log, and a PATH directory for more helper names."""

    def __init__(self, directory: Path) -> None:
        self.links = directory / "bin"
        self.links.mkdir()
        self.state = directory / "helper-state.json"
        self.state.write_text("{}")
        self.env = {
            "PATH": os.pathsep.join([str(self.links), str(BIN), os.environ["PATH"]]),
            "FAKE_CREDENTIAL_HELPER_STATE": str(self.state),
        }

    def answer(self, **by_name: dict[str, Any]) -> None:
        """What ``docker-credential-<name>`` answers; each name is a link to the fake helper."""
        for name in by_name:
            link = self.links / f"docker-credential-{name}"
            if name != "fake" and not link.exists():
                link.symlink_to(FAKE)
        self.state.write_text(
            json.dumps({f"docker-credential-{name}": value for name, value in by_name.items()})
        )

    def calls(self) -> list[dict[str, Any]]:
        log = Path(f"{self.state}.calls")
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def helpers(tmp_path: Path) -> Helpers:
    return Helpers(tmp_path)


@pytest.fixture
def private(token_registry: TokenRegistry, pushed: Pusher) -> PushedImage:
    """An image in a repository only users may pull, and the counts reset."""
    image = pushed(token_registry, "private/e2e", "v1", layers=2)
    token_registry.token_server.reset_counts()
    return image


def _server(token_registry: TokenRegistry) -> str:
    """The key Docker keeps this registry's credentials under: ``host:port``."""
    registry = token_registry.registry
    return f"{registry.host}:{registry.port}"


def _stored(server: str, username: str = USER, secret: str = PASSWORD) -> dict[str, Any]:
    return {"credentials": {server: {"Username": username, "Secret": secret}}}


def _users_seen(token_registry: TokenRegistry) -> set[str | None]:
    return {request.user for request in token_registry.token_server.requests}


# Docker's documentation writes these files without an "auths" key; `docker login` adds one.
CONFIG_FORMS = [
    pytest.param(False, id="as-documented"),
    pytest.param(True, id="with-auths"),
]


@pytest.mark.parametrize("with_auths", CONFIG_FORMS)
def test_cred_helpers_entry_for_the_registry_fetches_a_private_image(
    with_auths: bool,
    token_registry: TokenRegistry,
    private: PushedImage,
    helpers: Helpers,
    tmp_path: Path,
) -> None:
    server = _server(token_registry)
    helpers.answer(fake=_stored(server))
    config: dict[str, Any] = {"credHelpers": {server: "fake"}}
    if with_auths:
        config["auths"] = {}
    out = tmp_path / "out"
    uri = token_registry.registry.docker_uri("private/e2e", "v1")
    done = run_cli(f"--docker_config={json.dumps(config)}", uri, str(out), env=helpers.env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert_image(out, private)
    assert [(c["program"], c["args"], c["stdin"]) for c in helpers.calls()] == [
        ("docker-credential-fake", ["get"], server)
    ]
    assert _users_seen(token_registry) == {USER}


@pytest.mark.parametrize("with_auths", CONFIG_FORMS)
def test_creds_store_fetches_a_private_image(
    with_auths: bool,
    token_registry: TokenRegistry,
    private: PushedImage,
    helpers: Helpers,
    tmp_path: Path,
) -> None:
    server = _server(token_registry)
    helpers.answer(store=_stored(server))
    config: dict[str, Any] = {"credsStore": "store"}
    if with_auths:
        config["auths"] = {}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    out = tmp_path / "out"
    uri = token_registry.registry.docker_uri("private/e2e", "v1")
    done = run_cli(f"--docker_config={path}", uri, str(out), env=helpers.env)
    assert done.returncode == 0, done.stderr
    assert_image(out, private)
    assert [c["program"] for c in helpers.calls()] == ["docker-credential-store"]
    assert _users_seen(token_registry) == {USER}


def test_a_missing_credential_helper_is_a_clear_error(
    token_registry: TokenRegistry, private: PushedImage, helpers: Helpers, tmp_path: Path
) -> None:
    config = json.dumps({"auths": {}, "credsStore": "absent"})
    out = tmp_path / "out"
    uri = token_registry.registry.docker_uri("private/e2e", "v1")
    done = run_cli(f"--docker_config={config}", uri, str(out), env=helpers.env)
    assert done.returncode == 1
    assert done.stderr == (
        f"Failed to fetch '{uri}': docker-credential-absent not found on PATH (the docker config "
        f"names 'absent' as the credential helper for '{_server(token_registry)}')\n"
    )
    assert not (out / "manifest").exists()


def test_identity_token_is_exchanged_by_an_oauth_post(
    token_registry: TokenRegistry, private: PushedImage, tmp_path: Path
) -> None:
    """``docker login`` with OAuth stores a refresh token; it goes to the realm in a POST
    (grant_type=refresh_token), never in a GET or on stderr."""
    refresh = token_registry.token_server.issue_refresh_token(USER)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {_server(token_registry): {"identitytoken": refresh}}}))
    config.chmod(0o600)
    out = tmp_path / "out"
    uri = token_registry.registry.docker_uri("private/e2e", "v1")
    done = run_cli("-v", f"--docker_config={config}", uri, str(out))
    assert done.returncode == 0, done.stderr
    assert_image(out, private)
    requests = token_registry.token_server.requests
    assert [(r.method, r.query.get("grant_type"), r.user, r.status) for r in requests] == [
        ("POST", ("refresh_token",), USER, 200)
    ]
    assert requests[0].query["refresh_token"] == (refresh,)
    assert refresh not in done.stderr


def test_per_fetch_data_wins_over_a_default_config_that_names_a_helper(
    token_registry: TokenRegistry, private: PushedImage, helpers: Helpers, tmp_path: Path
) -> None:
    """The default's helper would answer a wrong password; ``--data`` has the right one, so the
    helper is not even asked."""
    server = _server(token_registry)
    helpers.answer(fake=_stored(server, secret="not-her-password"))
    default = json.dumps({"auths": {}, "credsStore": "fake"})
    out = tmp_path / "out"
    done = run_cli(
        f"--docker_config={default}",
        "--data=-",
        token_registry.registry.docker_uri("private/e2e", "v1"),
        str(out),
        stdin=docker_config(server, USER, PASSWORD),
        env=helpers.env,
    )
    assert done.returncode == 0, done.stderr
    assert_image(out, private)
    assert helpers.calls() == []
    assert _users_seen(token_registry) == {USER}


@pytest.mark.anyio
async def test_the_agents_path_runs_the_credential_helper_once_per_registry(
    token_registry: TokenRegistry,
    private: PushedImage,
    helpers: Helpers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The agent fetches the manifest, then every blob at once, through one fetcher: the
    registry's credentials are found once, and one token serves them all."""
    server = _server(token_registry)
    helpers.answer(fake=_stored(server))
    for name, value in helpers.env.items():
        monkeypatch.setenv(name, value)
    fetcher = create(Flags(docker_config=json.dumps({"credHelpers": {server: "fake"}})))
    registry = token_registry.registry
    out = tmp_path / "out"
    await fetcher.fetch(registry.docker_uri("private/e2e", "v1", "docker-manifest"), out)
    async with anyio.create_task_group() as group:
        for digest in private.blobs:
            group.start_soon(
                fetcher.fetch, registry.docker_uri("private/e2e", digest, "docker-blob"), out
            )
    assert_image(out, private)
    assert [c["program"] for c in helpers.calls()] == ["docker-credential-fake"]
    assert len(token_registry.token_server.requests) == 1
    assert _users_seen(token_registry) == {USER}


@pytest.mark.anyio
async def test_a_token_obtained_with_one_fetchs_credentials_serves_no_other(
    token_registry: TokenRegistry, private: PushedImage, tmp_path: Path
) -> None:
    """An agent fetches for many tasks through one fetcher: a token got with one task's
    credentials is never sent for another's. Without credentials, or with a password the token
    server refuses, the private image is refused; another user gets a token of their own."""
    server = _server(token_registry)
    tokens = token_registry.token_server
    fetcher = create(Flags())  # no default docker config: only per-fetch data has credentials
    uri = token_registry.registry.docker_uri("private/e2e", "v1")
    alice = docker_config(server, USER, PASSWORD)
    refused = (
        f"Failed to fetch '{uri}': Unexpected HTTP response '401 Unauthorized' "
        f"when trying to GET '{tokens.realm}?"
    )

    await fetcher.fetch(uri, tmp_path / "alice", alice)
    assert_image(tmp_path / "alice", private)
    assert [(r.user, r.status) for r in tokens.requests] == [(USER, 200)]

    # No credentials: the token server is asked anonymously and refuses the private repository.
    tokens.reset_counts()
    with pytest.raises(AuthError) as anonymous:
        await fetcher.fetch(uri, tmp_path / "anonymous", None)
    assert str(anonymous.value).startswith(refused)
    assert [(r.had_credentials, r.user, r.status) for r in tokens.requests] == [(False, None, 401)]
    assert not (tmp_path / "anonymous" / "manifest").exists()

    # Alice's name with a wrong password: refused too, not served alice's token.
    tokens.reset_counts()
    with pytest.raises(AuthError) as wrong:
        await fetcher.fetch(
            uri, tmp_path / "wrong", docker_config(server, USER, "not-her-password")
        )
    assert str(wrong.value).startswith(refused)
    assert [(r.had_credentials, r.user, r.status) for r in tokens.requests] == [(True, None, 401)]
    assert not (tmp_path / "wrong" / "manifest").exists()

    # Another user who may pull: a token of their own, not alice's.
    tokens.reset_counts()
    admin, admin_password = DEFAULT_ADMIN
    await fetcher.fetch(uri, tmp_path / "admin", docker_config(server, admin, admin_password))
    assert_image(tmp_path / "admin", private)
    assert [(r.user, r.status) for r in tokens.requests] == [(admin, 200)]

    # Alice again: her own token still serves her.
    tokens.reset_counts()
    await fetcher.fetch(uri, tmp_path / "alice-again", alice)
    assert_image(tmp_path / "alice-again", private)
    assert tokens.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("ttl", "runs"),
    [
        pytest.param(None, 1, id="within-the-ttl"),
        pytest.param(0.0, 2, id="after-the-ttl"),
    ],
)
async def test_credentials_found_by_a_helper_are_found_again_after_the_ttl(
    ttl: float | None,
    runs: int,
    token_registry: TokenRegistry,
    private: PushedImage,
    helpers: Helpers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A helper's answer is kept for later fetches through one fetcher, but only for
    ``_CREDENTIALS_TTL`` seconds: then the helper is run again."""
    if ttl is not None:
        monkeypatch.setattr(plugin_module, "_CREDENTIALS_TTL", ttl)
    server = _server(token_registry)
    helpers.answer(fake=_stored(server))
    for name, value in helpers.env.items():
        monkeypatch.setenv(name, value)
    fetcher = create(Flags(docker_config=json.dumps({"credHelpers": {server: "fake"}})))
    uri = token_registry.registry.docker_uri("private/e2e", "v1")
    for attempt in ("first", "second"):
        await fetcher.fetch(uri, tmp_path / attempt)
        assert_image(tmp_path / attempt, private)
    assert [(c["program"], c["args"], c["stdin"]) for c in helpers.calls()] == [
        ("docker-credential-fake", ["get"], server)
    ] * runs
    assert _users_seen(token_registry) == {USER}
