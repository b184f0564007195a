"""Mirrors, CA bundles, certs.d and insecure registries: which registry each setting names."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesos_uri._curl import TLS
from mesos_uri._docker.endpoints import Endpoints, Mirror, parse_host_value, parse_mirror
from mesos_uri._urls import Origin
from mesos_uri.errors import UsageError

# --- the flags -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/etc/ssl/ca.pem", (None, "/etc/ssl/ca.pem")),
        ("registry:5000=/ca.pem", ("registry:5000", "/ca.pem")),
        ("Registry.Example=/ca.pem", ("registry.example", "/ca.pem")),
        ("[::1]:5000=/ca.pem", ("[::1]:5000", "/ca.pem")),
        ("r=/a=b.pem", ("r", "/a=b.pem")),
    ],
)
def test_parse_host_value(text: str, expected: tuple[str | None, str]) -> None:
    assert parse_host_value(text, flag="cacert") == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("=/ca.pem", "expected [HOST[:PORT]=]VALUE"),
        ("registry=", "expected [HOST[:PORT]=]VALUE"),
        ("/etc/a=b.pem", "expected [HOST[:PORT]=]VALUE"),
        ("::1=/ca.pem", "'::1' has more than one ':'"),
        ("registry:x=/ca.pem", "port 'x' is not a number in 1..65535"),
        ("user@registry=/ca.pem", "host 'user@registry' contains '@'"),
    ],
)
def test_parse_host_value_refusals(text: str, reason: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_host_value(text, flag="cacert")
    assert str(caught.value).startswith(f"Invalid --cacert '{text}': {reason}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://mirror.example", Mirror(None, "https://mirror.example")),
        ("https://mirror.example/", Mirror(None, "https://mirror.example")),
        ("r:5000=http://Cache:5000", Mirror("r:5000", "http://cache:5000")),
        ("r=http://cache:80", Mirror("r", "http://cache")),
        ("r=http://[::1]:5000", Mirror("r", "http://[::1]:5000")),
    ],
)
def test_parse_mirror(text: str, expected: Mirror) -> None:
    assert parse_mirror(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ftp://mirror.example", "scheme 'ftp' is not 'http' or 'https'"),
        ("mirror.example", "missing '://'"),
        ("https://mirror.example/v2/", "a mirror URL has no path"),
        ("https://mirror.example?x", "a mirror URL has no path"),
        ("https://mirror.example:0", "port '0' is not a number in 1..65535"),
    ],
)
def test_parse_mirror_refusals(text: str, reason: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_mirror(text)
    assert str(caught.value) == f"Invalid --registry_mirror '{text}': {reason}"


def test_a_refused_mirror_url_keeps_its_password_out_of_the_message() -> None:
    with pytest.raises(UsageError) as caught:
        parse_mirror("r=https://user:s3cret@mirror.example")
    assert "s3cret" not in str(caught.value)
    assert str(caught.value) == (
        "Invalid --registry_mirror 'r=https://mirror.example': "
        "a user or password in the URL is not supported"
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("::1", "'::1' has more than one ':'"),
        ("10.0.0.0/8", "host '10.0.0.0/8' contains '/'"),
        ("https://registry", "a registry is named HOST[:PORT], without a scheme"),
    ],
)
def test_insecure_registries_are_checked_when_given(name: str, reason: str) -> None:
    with pytest.raises(UsageError) as caught:
        Endpoints(insecure=frozenset({name}))
    assert str(caught.value).startswith(f"Invalid --insecure_registry '{name}': {reason}")


# --- which registry a setting names --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "insecure"),
    [
        ("https://r:5000/v2/", True),
        ("http://r:5000/v2/", True),
        ("https://R:5000", True),
        ("https://r", False),
        ("https://r:5001", False),
        # No port: the scheme's default one, as Docker reads a registry's name.
        ("https://plain/v2/", True),
        ("https://plain:443/v2/", True),
        ("http://plain/v2/", True),
        ("https://plain:5000/v2/", False),
        ("https://[::1]:5000/v2/", True),
        ("https://[::1]/v2/", False),
        ("https://explicit/v2/", True),
        ("https://u:p@plain/v2/", False),
        ("https://[x/v2/", False),
    ],
)
def test_is_insecure(url: str, insecure: bool) -> None:
    endpoints = Endpoints(insecure=frozenset({"r:5000", "plain", "[::1]:5000", "explicit:443"}))
    assert endpoints.is_insecure(url) is insecure


MIRRORS = Endpoints(
    mirrors=(
        Mirror(None, "http://hub-cache"),
        Mirror("r:5000", "http://r-cache"),
        Mirror("index.docker.io", "http://hub-by-name"),
        Mirror("plain", "http://plain-cache"),
    )
)


@pytest.mark.parametrize(
    ("host", "port", "mirrors"),
    [
        ("registry-1.docker.io", 443, ["http://hub-cache", "http://hub-by-name"]),
        ("registry-1.docker.io", None, ["http://hub-cache", "http://hub-by-name"]),
        ("docker.io", None, ["http://hub-cache", "http://hub-by-name"]),
        ("docker.io", 5000, []),
        ("r", 5000, ["http://r-cache"]),
        ("R", 5000, ["http://r-cache"]),
        ("r", None, []),
        ("plain", None, ["http://plain-cache"]),
        ("plain", 443, ["http://plain-cache"]),
        ("plain", 5000, []),
        ("elsewhere", None, []),
    ],
)
def test_mirrors_for(host: str, port: int | None, mirrors: list[str]) -> None:
    assert [str(origin) for origin in MIRRORS.mirrors_for(host, port)] == mirrors


def test_mirrors_for_reads_no_port_over_the_registry_transport() -> None:
    endpoints = Endpoints(mirrors=(Mirror("plain:80", "http://cache"),))
    assert endpoints.mirrors_for("plain", None, scheme="http") == [Origin.of("http://cache")]
    assert endpoints.mirrors_for("plain", None) == []


def test_tls_for_takes_the_ca_of_the_registry_then_certs_d_then_the_global_one(
    tmp_path: Path,
) -> None:
    for directory in ("r:5000", "::1:5000", "plain"):
        (tmp_path / directory).mkdir()
    (tmp_path / "r:5000" / "ca.crt").write_text("")
    (tmp_path / "::1:5000" / "client.cert").write_text("")
    (tmp_path / "plain" / "ca.crt").write_text("")
    endpoints = Endpoints(
        cacerts=(("named:443", "/named.pem"), (None, "/global.pem")),
        insecure=frozenset({"r:5000"}),
        certs_dir=str(tmp_path),
    )
    assert endpoints.tls_for("https://named/v2/") == TLS(cacert="/named.pem")
    assert endpoints.tls_for("https://r:5000/v2/") == TLS(
        cacert=str(tmp_path / "r:5000" / "ca.crt"), insecure=True
    )
    assert endpoints.tls_for("https://PLAIN:443/v2/") == TLS(
        cacert=str(tmp_path / "plain" / "ca.crt")
    )
    assert endpoints.tls_for("https://[::1]:5000/v2/") == TLS(
        cacert="/global.pem",
        cert=str(tmp_path / "::1:5000" / "client.cert"),
        key=str(tmp_path / "::1:5000" / "client.key"),
    )
    assert endpoints.tls_for("https://elsewhere/v2/") == TLS(cacert="/global.pem")
    assert endpoints.tls_for("http://r:5000/v2/") is None
    assert Endpoints(certs_dir=None).tls_for("https://r/v2/") is None
