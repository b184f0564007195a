"""Docker config: both file formats, the entry a registry gets, and secrets kept out."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_uri._docker.config import DOCKER_HUB_KEY, AuthEntry, DockerConfig, parse_auth_config
from mesos_uri._docker.credentials import auths_credentials
from mesos_uri._urls import Origin
from mesos_uri.errors import FetchError, UsageError

FIXTURES = Path(__file__).parent / "fixtures"

SECRET = "s3cr3t-Pa55word"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config(auths: dict[str, Any], **top: Any) -> DockerConfig:
    return parse_auth_config(json.dumps({"auths": auths, **top}))


def basic_credentials(
    parsed: DockerConfig, host: str, port: int | None, *, scheme: str = "https"
) -> str | None:
    """The Basic credentials the ``auths`` entries give the registry, as the session sends them."""
    found = auths_credentials(parsed, Origin.at(host, port, scheme=scheme))
    return None if found is None else found.basic()


def usage_error(text: str) -> str:
    with pytest.raises(UsageError) as info:
        parse_auth_config(text)
    return str(info.value)


# --- the original's docker_spec_tests, ported ----------------------------------------------------


def test_parse_docker_config() -> None:
    parsed = parse_auth_config((FIXTURES / "config.json").read_text())

    entries = dict(parsed.auths)
    assert list(entries) == ["https://index.docker.io/v1/", "localhost:5000"]
    hub = entries["https://index.docker.io/v1/"]
    assert hub.auth == b64("hubuser:hub-secret-1")
    assert hub.email == "builder@example.com"
    local = entries["localhost:5000"]
    assert local.auth == b64("local:local-secret-2")
    assert local.email == "builder@example.com"
    # Top-level HttpHeaders is ignored; nothing else came out of the file.
    assert parsed.creds_store is None
    assert parsed.cred_helpers == ()


def test_parse_dockercfg() -> None:
    parsed = parse_auth_config((FIXTURES / "dockercfg.json").read_text())

    assert parsed.auths == (
        ("quay.io", AuthEntry(auth=b64("quayuser:quay-secret"), email="builder@example.com")),
        (DOCKER_HUB_KEY, AuthEntry(auth=b64("hubuser:hub-secret"), email="builder@example.com")),
        (
            "https://192.168.0.1:5050",
            AuthEntry(auth=b64("ipuser:ip-secret"), email="builder@example.com"),
        ),
    )


# --- what this port keeps beyond the original ----------------------------------------------------


def test_entries_keep_username_password_and_identitytoken() -> None:
    parsed = config(
        {
            "registry.example.com": {"username": "ci", "password": SECRET},
            "ghcr.io": {"identitytoken": "refresh-token-123", "email": None},
        }
    )
    assert dict(parsed.auths) == {
        "registry.example.com": AuthEntry(username="ci", password=SECRET),
        "ghcr.io": AuthEntry(identitytoken="refresh-token-123"),
    }


def test_new_format_keeps_creds_store_and_cred_helpers_in_file_order() -> None:
    parsed = parse_auth_config(
        '{"auths": {"z.example": {}, "a.example": {}}, "credsStore": "desktop",'
        ' "credHelpers": {"gcr.io": "gcloud", "123.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"}}'
    )
    assert [key for key, _ in parsed.auths] == ["z.example", "a.example"]
    assert parsed.creds_store == "desktop"
    assert parsed.cred_helpers == (
        ("gcr.io", "gcloud"),
        ("123.dkr.ecr.us-east-1.amazonaws.com", "ecr-login"),
    )


def test_repr_hides_secrets() -> None:
    entry = AuthEntry(auth=b64("u:" + SECRET), username="u", password=SECRET, identitytoken=SECRET)
    text = repr(DockerConfig(auths=(("r.example", entry),)))
    assert SECRET not in text
    assert b64("u:" + SECRET) not in text
    assert "username='u'" in text


# --- errors: the original's texts, without quoting the config ------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "JSON parse failed: Unexpected JSON type parsed"),
        (
            '{"auths": []}',
            "Failed to find 'auths' in docker config file: Found JSON value of wrong type",
        ),
        # The old format, where every top-level key must name a registry's entry.
        ('{"auths": null}', "'auths' must be an object, not null"),
        (
            '{"auths": {"r.example": {"auth": 5}}}',
            "'auths.r.example.auth' must be a string, not a number",
        ),
        ('{"auths": {}, "credsStore": ["a"]}', "'credsStore' must be a string, not an array"),
        (
            '{"auths": {}, "credHelpers": {"gcr.io": 1}}',
            "'credHelpers.gcr.io' must be a string, not a number",
        ),
        (
            '{"auths": {"r.example": {"auth": "dTpw"}} "x"}',
            "JSON parse failed: Expecting ',' delimiter: line 1 column 43 (char 42)",
        ),
    ],
)
def test_malformed_configs_are_usage_errors(text: str, message: str) -> None:
    assert usage_error(text) == message


def test_an_error_names_the_registry_key_and_field() -> None:
    text = '{"auths": {"zz.example": {}, "aa.example": {"email": []}}}'
    assert usage_error(text) == "'auths.aa.example.email' must be a string, not an array"


@pytest.mark.parametrize(
    "text",
    [
        '{"auths": {"r.example": {"auth": "%s"}}',  # unterminated
        '{"auths": {"r.example": {"auth": "%s"}}} trailing',
        '{"auths": {"r.example": "%s"}}',
        '{"r.example": {"auth": "%s", "password": 1}}',
        '{"auths": {"r.example": {"auth": ["%s"]}}}',
        '{"auths": {"r.example": {"auth": "%s"}}, "credHelpers": "%s"}',
        '{"auths": ["%s"]}',
        '"%s"',
        '{"auths": {}} {"r.example": {"auth": "%s"}}',
        '{"auths": {"r.example": {"password": 1, "auth": "%s"}}}',
    ],
)
def test_errors_never_quote_the_config(text: str) -> None:
    message = usage_error(text.replace("%s", SECRET))
    assert SECRET not in message


def test_errors_never_quote_a_bad_auth() -> None:
    bad = [f"{SECRET}!", b64(SECRET)]  # not base64; base64 without ':'
    for auth in bad:
        parsed = config({"r.example": {"auth": auth}})
        with pytest.raises(UsageError) as info:
            basic_credentials(parsed, "r.example", None)
        assert SECRET not in str(info.value)
        assert auth not in str(info.value)
        assert "'r.example'" in str(info.value)


def test_the_first_key_that_names_the_registry_wins() -> None:
    parsed = config(
        {
            "b.example": {"auth": b64("b:1")},
            "https://quay.io": {"auth": b64("q:1")},
            "quay.io": {"auth": b64("q:2")},
        }
    )
    # Two keys naming quay.io: the first in the file wins, every time.
    assert basic_credentials(parsed, "quay.io", None) == b64("q:1")


# --- basic credentials, with Docker's key normalisation ------------------------------------------


HUB = b64("hubuser:hubpass")


@pytest.mark.parametrize(
    "key",
    [
        DOCKER_HUB_KEY,
        "index.docker.io",
        "docker.io",
        "registry-1.docker.io",
        "https://registry-1.docker.io",
    ],
)
@pytest.mark.parametrize("host", ["registry-1.docker.io", "docker.io", "index.docker.io"])
def test_docker_hub_keys_match_docker_hub_hosts(key: str, host: str) -> None:
    parsed = config({key: {"auth": HUB}})
    assert basic_credentials(parsed, host, 443) == HUB
    assert basic_credentials(parsed, host, None) == HUB


@pytest.mark.parametrize(
    "host",
    ["evil-docker.io.example", "docker.io.evil.example", "mydocker.io", "notdocker.io", "quay.io"],
)
def test_hosts_that_only_contain_docker_io_get_no_docker_hub_credentials(host: str) -> None:
    parsed = config({DOCKER_HUB_KEY: {"auth": HUB}, "docker.io": {"auth": HUB}})
    assert basic_credentials(parsed, host, 443) is None
    assert basic_credentials(parsed, host, None) is None


def test_keys_that_only_contain_docker_io_do_not_match_docker_hub() -> None:
    parsed = config({"https://evil-docker.io.example/v1/": {"auth": b64("evil:x")}})
    assert basic_credentials(parsed, "registry-1.docker.io", 443) is None


@pytest.mark.parametrize(
    ("key", "host", "port", "scheme", "matches"),
    [
        ("registry.example.com", "registry.example.com", None, "https", True),
        ("https://registry.example.com/v1/", "registry.example.com", None, "https", True),
        ("http://registry.example.com/v2/", "registry.example.com", None, "https", True),
        ("registry.example.com/v1/", "registry.example.com", None, "https", True),
        ("REGISTRY.Example.com", "registry.example.COM", None, "https", True),
        ("registry.example.com", "registry.example.com", 443, "https", True),
        ("registry.example.com:443", "registry.example.com", None, "https", True),
        ("registry.example.com:443", "registry.example.com", 443, "https", True),
        ("registry.example.com", "registry.example.com", 5000, "https", False),
        ("registry.example.com:5000", "registry.example.com", None, "https", False),
        ("registry.example.com", "registry.example.com", 443, "http", False),
        ("localhost:5000", "localhost", 5000, "http", True),
        ("https://localhost:5000/v1/", "localhost", 5000, "http", True),
        ("localhost:5000", "localhost", 5001, "http", False),
        ("localhost", "localhost", 80, "http", True),
        ("https://192.168.0.1:5050", "192.168.0.1", 5050, "https", True),
        ("[::1]:5000", "::1", 5000, "http", True),
        ("[::1]:5000", "[::1]", 5000, "http", True),
        ("registry.example.com", "other.example.com", None, "https", False),
        ("example.com", "registry.example.com", None, "https", False),
        ("registry.example.com:abc", "registry.example.com", None, "https", False),
        # The original's parseAuthUrl cases: one http(s):// prefix and any path dropped, the
        # port kept; the prefix in any case.
        ("http://registry.example.com", "registry.example.com", None, "https", True),
        ("https://localhost:8000", "localhost", 8000, "https", True),
        ("https://localhost:8000/v1/", "localhost", 8000, "https", True),
        ("http://localhost:8000", "localhost", 8000, "https", True),
        ("localhost:8000/v1/", "localhost", 8000, "https", True),
        ("localhost:8000", "localhost", None, "https", False),
        ("HTTPS://registry.com", "registry.com", None, "https", True),
        ("https://http://registry.com", "registry.com", None, "https", False),
        ("ftp://registry.com", "registry.com", None, "https", False),
        # What names no registry: a user, an unbracketed IPv6 address, a port out of range.
        ("https://user@registry.com", "registry.com", None, "https", False),
        ("::1", "::1", None, "https", False),
        ("registry.com:0", "registry.com", None, "https", False),
        ("registry.com:65536", "registry.com", None, "https", False),
    ],
)
def test_a_key_matches_when_it_names_the_registry(
    key: str, host: str, port: int | None, scheme: str, matches: bool
) -> None:
    auth = b64("user:pass")
    parsed = config({key: {"auth": auth}})
    expected = auth if matches else None
    assert basic_credentials(parsed, host, port, scheme=scheme) == expected


def test_auth_wins_over_username_and_password() -> None:
    parsed = config({"r.example": {"auth": b64("a:1"), "username": "b", "password": "2"}})
    assert basic_credentials(parsed, "r.example", None) == b64("a:1")


def test_username_and_password_are_encoded_when_there_is_no_auth() -> None:
    parsed = config({"r.example": {"username": "ci-bot", "password": "p:w é"}})
    assert basic_credentials(parsed, "r.example", None) == b64("ci-bot:p:w é")


def test_matching_entries_without_credentials_are_skipped() -> None:
    parsed = config(
        {
            "r.example": {"auth": ""},
            "https://r.example/v1/": {"username": "only-user"},
            "r.example:443": {"auth": b64("third:yes")},
        }
    )
    assert basic_credentials(parsed, "r.example", 443) == b64("third:yes")


def test_no_matching_entry_means_anonymous() -> None:
    assert basic_credentials(DockerConfig(), "r.example", None) is None
    parsed = config({"other.example": {"auth": b64("u:p")}})
    assert basic_credentials(parsed, "r.example", None) is None


# --- robustness ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["auths", "auth", "username", "password", "credsStore", "credHelpers"])
            | st.text(max_size=12),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)


def use(text: str) -> None:
    try:
        parsed = parse_auth_config(text)
    except FetchError:
        return
    for key, _ in parsed.auths:
        for port in (None, 443, 5000):
            with contextlib.suppress(UsageError):
                basic_credentials(parsed, key, port)


@settings(max_examples=300)
@given(st.text())
def test_arbitrary_text_raises_only_usage_errors(text: str) -> None:
    use(text)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_raises_only_usage_errors(document: object) -> None:
    use(json.dumps(document))
