"""Credentials as Docker finds them: helpers, auths entries, identity tokens, secrets kept out."""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from mesos_uri._docker.config import DOCKER_HUB_KEY, DockerConfig, parse_auth_config
from mesos_uri._docker.credentials import (
    CLIENT_ID,
    OAuthToken,
    RegistryCredentials,
    identity_token_request,
    parse_oauth_response,
    resolve_credentials,
    server_url,
)
from mesos_uri._http import Response
from mesos_uri._urls import Origin
from mesos_uri.errors import AuthError, FetchError, UsageError

BIN = Path(__file__).parent / "bin"
SECRET = "s3cr3t-Pa55word"
TOKEN = "refresh-T0ken-xyz"
REGISTRY = "127.0.0.1:5000"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config(auths: dict[str, Any] | None = None, **top: Any) -> DockerConfig:
    return parse_auth_config(json.dumps({"auths": auths or {}, **top}))


@attrs.define
class Helpers:
    """The fake helper's state file, its call log, and a PATH directory for more helper names."""

    state: Path
    links: Path

    def answer(self, **by_name: dict[str, Any]) -> None:
        """What each ``docker-credential-<name>`` answers; every name but ``fake`` gets linked."""
        for name in by_name:
            link = self.links / f"docker-credential-{name}"
            if name != "fake" and not link.exists():
                link.symlink_to(BIN / "docker-credential-fake")
        programs = {f"docker-credential-{name}": value for name, value in by_name.items()}
        self.state.write_text(json.dumps(programs))

    def calls(self) -> list[dict[str, Any]]:
        log = Path(f"{self.state}.calls")
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Helpers:
    links = tmp_path / "bin"
    links.mkdir()
    state = tmp_path / "helper-state.json"
    state.write_text("{}")
    monkeypatch.setenv("PATH", os.pathsep.join([str(links), str(BIN), os.environ["PATH"]]))
    monkeypatch.setenv("FAKE_CREDENTIAL_HELPER_STATE", str(state))
    return Helpers(state, links)


def stored(username: str, secret: str) -> dict[str, Any]:
    return {"credentials": {REGISTRY: {"Username": username, "Secret": secret}}}


async def resolve(conf: DockerConfig, host: str = "127.0.0.1", port: int | None = 5000) -> Any:
    return await resolve_credentials(conf, host, port, scheme="http")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --- lookup order (docker/cli GetAuthConfig) ---------------------------------------------------


@pytest.mark.anyio
async def test_cred_helpers_win_over_creds_store_and_auths(helpers: Helpers) -> None:
    helpers.answer(fake=stored("from-helper", SECRET), store=stored("from-store", "other"))
    conf = config(
        {REGISTRY: {"auth": b64("from-auths:pw")}},
        credsStore="store",
        credHelpers={REGISTRY: "fake"},
    )

    found = await resolve(conf)

    assert found == RegistryCredentials("from-helper", SECRET, is_identity_token=False)
    calls = helpers.calls()
    assert [(c["program"], c["args"], c["stdin"]) for c in calls] == [
        ("docker-credential-fake", ["get"], REGISTRY)
    ]


@pytest.mark.anyio
async def test_creds_store_wins_over_auths(helpers: Helpers) -> None:
    helpers.answer(store=stored("from-store", SECRET))
    conf = config(
        {REGISTRY: {"auth": b64("from-auths:pw")}},
        credsStore="store",
        credHelpers={"other.example.com": "fake"},
    )

    found = await resolve(conf)

    assert found == RegistryCredentials("from-store", SECRET)
    assert [c["program"] for c in helpers.calls()] == ["docker-credential-store"]


@pytest.mark.anyio
async def test_helper_without_an_entry_means_anonymous(helpers: Helpers) -> None:
    # Docker's native store answers for the registry, not found included: auths are not consulted.
    helpers.answer(fake={"credentials": {}})
    conf = config({REGISTRY: {"auth": b64("from-auths:pw")}}, credsStore="fake")

    assert await resolve(conf) is None
    assert len(helpers.calls()) == 1


@pytest.mark.anyio
async def test_helper_with_an_empty_secret_means_anonymous(helpers: Helpers) -> None:
    helpers.answer(fake=stored("", ""))

    assert await resolve(config(credsStore="fake")) is None


@pytest.mark.anyio
async def test_auths_entry_used_when_no_helper_is_configured(helpers: Helpers) -> None:
    conf = config({"http://127.0.0.1:5000/v2/": {"username": "alice", "password": SECRET}})

    found = await resolve(conf)

    assert found == RegistryCredentials("alice", SECRET)
    assert found.basic() == b64(f"alice:{SECRET}")
    assert helpers.calls() == []


@pytest.mark.anyio
async def test_auths_entry_auth_field_decoded() -> None:
    found = await resolve(config({REGISTRY: {"auth": b64(f"bob:{SECRET}:with-colon")}}))

    assert found == RegistryCredentials("bob", f"{SECRET}:with-colon")


@pytest.mark.anyio
async def test_auth_that_is_not_utf8_goes_out_unchanged() -> None:
    raw = base64.b64encode(b"bob:\xff\xfe").decode()

    found = await resolve(config({REGISTRY: {"auth": raw}}))

    assert found is not None
    assert found.basic() == raw


@pytest.mark.anyio
async def test_no_entry_no_helper_is_anonymous() -> None:
    conf = config({"other.example.com": {"auth": b64("x:y")}})

    assert await resolve(conf) is None


# --- server URL, the key helpers are asked for ---------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "scheme", "expected"),
    [
        ("registry-1.docker.io", None, "https", DOCKER_HUB_KEY),
        ("registry-1.docker.io", 443, "https", DOCKER_HUB_KEY),
        ("docker.io", None, "https", DOCKER_HUB_KEY),
        ("Index.Docker.IO", None, "https", DOCKER_HUB_KEY),
        ("docker.io", 5000, "https", "docker.io:5000"),
        ("registry.example.com", 443, "https", "registry.example.com"),
        ("registry.example.com", 443, "http", "registry.example.com:443"),
        ("registry.example.com", 80, "http", "registry.example.com"),
        ("Registry.Example.com", 8443, "https", "registry.example.com:8443"),
        ("localhost", 5000, "http", "localhost:5000"),
        ("[::1]", 5000, "http", "[::1]:5000"),
        ("::1", None, "https", "[::1]"),
    ],
)
def test_server_url_is_the_key_docker_uses(
    host: str, port: int | None, scheme: str, expected: str
) -> None:
    assert server_url(Origin.at(host, port, scheme=scheme)) == expected


@pytest.mark.anyio
async def test_docker_hub_helper_is_asked_for_the_index_url(helpers: Helpers) -> None:
    helpers.answer(hub={"credentials": {DOCKER_HUB_KEY: {"Username": "hubuser", "Secret": SECRET}}})
    conf = config(credHelpers={DOCKER_HUB_KEY: "hub"})

    found = await resolve_credentials(conf, "registry-1.docker.io", 443)

    assert found == RegistryCredentials("hubuser", SECRET)
    assert [c["stdin"] for c in helpers.calls()] == [DOCKER_HUB_KEY]


@pytest.mark.anyio
async def test_docker_hub_auths_entry_matches_every_hub_host() -> None:
    conf = config({DOCKER_HUB_KEY: {"auth": b64(f"hubuser:{SECRET}")}})

    for host in ("registry-1.docker.io", "docker.io", "index.docker.io"):
        assert await resolve_credentials(conf, host, None) == RegistryCredentials("hubuser", SECRET)


# --- failures ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_missing_helper_is_a_clear_error(helpers: Helpers) -> None:
    with pytest.raises(AuthError, match=r"^docker-credential-absent not found on PATH") as info:
        await resolve(config(credsStore="absent"))

    assert REGISTRY in str(info.value)


@pytest.mark.anyio
async def test_helper_name_with_a_path_is_refused(helpers: Helpers) -> None:
    with pytest.raises(UsageError, match=re.escape("Invalid credential helper name '../fake'")):
        await resolve(config(credHelpers={REGISTRY: "../fake"}))

    assert helpers.calls() == []


@pytest.mark.anyio
async def test_failing_helper_error_carries_its_stderr(helpers: Helpers) -> None:
    helpers.answer(fake={"exit": 3, "stderr": "keychain is locked\n"})

    with pytest.raises(AuthError) as info:
        await resolve(config(credsStore="fake"))

    assert str(info.value) == (
        f"docker-credential-fake get failed for '{REGISTRY}' (exit status 3): keychain is locked"
    )


@pytest.mark.anyio
async def test_failing_helper_error_carries_its_stdout_message(helpers: Helpers) -> None:
    # Helpers built on docker-credential-helpers print their errors on stdout.
    helpers.answer(fake={"exit": 1, "stdout": "error getting credentials: dbus unavailable\n"})

    with pytest.raises(AuthError, match="dbus unavailable"):
        await resolve(config(credsStore="fake"))


# --- identity tokens -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_identity_token_from_helper(helpers: Helpers) -> None:
    helpers.answer(fake=stored("<token>", TOKEN))

    found = await resolve(config(credsStore="fake"))

    assert found == RegistryCredentials(None, TOKEN, is_identity_token=True)
    with pytest.raises(UsageError, match="no Basic form"):
        found.basic()


@pytest.mark.anyio
async def test_identity_token_from_auths_wins_over_auth_in_the_same_entry() -> None:
    # What `docker login` leaves for a token login: `auth` holds only "user:".
    conf = config({REGISTRY: {"auth": b64("alice:"), "identitytoken": TOKEN}})

    found = await resolve(conf)

    assert found == RegistryCredentials(None, TOKEN, is_identity_token=True)


def test_identity_token_request_is_the_oauth_refresh_grant() -> None:
    credentials = RegistryCredentials(None, TOKEN, is_identity_token=True)
    realm = "https://auth.example.com/token?a=1"

    url, body = identity_token_request(
        realm, "registry.example.com", "repository:lib/app:pull", credentials
    )

    assert url == realm
    assert urllib.parse.parse_qsl(body.decode("ascii"), strict_parsing=True) == [
        ("grant_type", "refresh_token"),
        ("service", "registry.example.com"),
        ("scope", "repository:lib/app:pull"),
        ("client_id", CLIENT_ID),
        ("refresh_token", TOKEN),
    ]


def test_identity_token_request_omits_what_the_challenge_lacks() -> None:
    credentials = RegistryCredentials(None, "a b&c=d", is_identity_token=True)

    _, body = identity_token_request("https://auth.example.com/token", None, None, credentials)

    assert urllib.parse.parse_qs(body.decode("ascii")) == {
        "grant_type": ["refresh_token"],
        "client_id": [CLIENT_ID],
        "refresh_token": ["a b&c=d"],
    }


def test_identity_token_request_refuses_a_password() -> None:
    with pytest.raises(UsageError):
        identity_token_request("https://a/token", "s", None, RegistryCredentials("u", SECRET))


def response(code: int, document: Any, status: str = "") -> Response:
    return Response(code, status or f"{code} X", body=json.dumps(document).encode())


def test_parse_oauth_response_reads_the_token_and_its_lifetime() -> None:
    # A rotated refresh token is not used: the one in the docker config is sent next time.
    reply = response(200, {"access_token": "acc", "expires_in": 900, "refresh_token": "new"})

    assert parse_oauth_response(reply, "https://a/token") == OAuthToken("acc", 900.0)


def test_parse_oauth_response_defaults() -> None:
    reply = response(200, {"access_token": "acc", "refresh_token": ""})

    assert parse_oauth_response(reply, "https://a/token") == OAuthToken("acc", 60.0)


def test_parse_oauth_response_error_names_the_oauth_error_only() -> None:
    reply = response(400, {"error": "invalid_grant", "error_description": TOKEN}, "400 Bad Request")

    with pytest.raises(AuthError) as info:
        parse_oauth_response(reply, "https://user:pw@auth.example.com/token")

    assert str(info.value) == (
        "Unexpected HTTP response '400 Bad Request' when trying to POST to "
        "'https://auth.example.com/token' (invalid_grant)"
    )


def test_parse_oauth_response_without_a_token() -> None:
    with pytest.raises(AuthError, match="Failed to find token"):
        parse_oauth_response(response(200, {"expires_in": 5}), "https://a/token")


# --- secrets stay out ----------------------------------------------------------------------------


def test_reprs_hide_secrets() -> None:
    values = [
        RegistryCredentials("alice", SECRET),
        RegistryCredentials(None, SECRET, is_identity_token=True),
        OAuthToken(SECRET, 60.0),
    ]

    for value in values:
        assert SECRET not in repr(value)
        assert SECRET not in str(value)
    assert "alice" in repr(values[0])


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        {"exit": 0, "stdout": f'{{"Username": "u", "Secret": "{SECRET}"'},  # truncated JSON
        {"exit": 0, "stdout": f'["u", "{SECRET}"]'},
        {"exit": 0, "stdout": f'{{"Username": 7, "Secret": "{SECRET}"}}'},
        {"exit": 1, "stdout": f'{{"Username": "u", "Secret": "{SECRET}"}}'},
    ],
)
async def test_helper_errors_never_quote_the_secret(helpers: Helpers, answer: Any) -> None:
    helpers.answer(fake=answer)

    with pytest.raises(AuthError) as info:
        await resolve(config(credsStore="fake"))

    chain: BaseException | None = info.value
    while chain is not None:
        assert SECRET not in str(chain)
        assert SECRET not in repr(chain)
        chain = chain.__cause__


@pytest.mark.anyio
async def test_bad_auth_error_never_quotes_it() -> None:
    with pytest.raises(FetchError) as info:
        await resolve(config({REGISTRY: {"auth": SECRET + "!"}}))

    assert SECRET not in str(info.value)


# --- the helper process never outlives the call --------------------------------------------------


async def started_pid(helpers: Helpers) -> int:
    with anyio.fail_after(10):
        while True:
            calls = helpers.calls()
            if calls:
                return int(calls[0]["pid"])
            await anyio.sleep(0.02)


@pytest.mark.anyio
async def test_cancellation_kills_the_helper(helpers: Helpers) -> None:
    helpers.answer(fake={"sleep": 60, **stored("u", SECRET)})

    with anyio.fail_after(20), anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(resolve, config(credsStore="fake"))
            pid = await started_pid(helpers)
            # A deadline of now cancels as cancel() does (which trio 0.22 cannot take from
            # anyio 4.16: it passes a reason).
            scope.deadline = anyio.current_time()

    assert scope.cancelled_caught
    assert gone(pid)


@pytest.mark.anyio
async def test_helper_that_hangs_times_out_and_is_killed(
    helpers: Helpers, monkeypatch: pytest.MonkeyPatch
) -> None:
    helpers.answer(fake={"sleep": 60, **stored("u", SECRET)})
    monkeypatch.setattr("mesos_uri._docker.credentials.HELPER_TIMEOUT", 0.5)

    with anyio.fail_after(20), pytest.raises(AuthError, match=r"gave no answer .* within 0\.5 s"):
        await resolve_credentials(config(credsStore="fake"), "127.0.0.1", 5000, scheme="http")

    assert gone(await started_pid(helpers))
