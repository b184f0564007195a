"""host[:port], origins and redirects: the one reader of a registry's address."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_uri._urls import (
    MAX_REDIRECTS,
    Origin,
    follow_redirect,
    join_hostport,
    same_origin,
    split_hostport,
)
from mesos_uri.errors import RedirectError, TooManyRedirectsError

# --- host[:port] ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("registry.example", ("registry.example", None)),
        ("Registry.Example:5000", ("Registry.Example", 5000)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("h:65535", ("h", 65535)),
        ("h:0080", ("h", 80)),
        # The value is bounded, not the text: leading zeros are fine.
        ("h:" + "0" * 1000 + "80", ("h", 80)),
        ("[::1]", ("::1", None)),
        ("[::1]:5000", ("::1", 5000)),
        ("[2001:DB8::1]:443", ("2001:DB8::1", 443)),
        ("[::ffff:127.0.0.1]", ("::ffff:127.0.0.1", None)),
        # An empty host is the caller's to refuse: file:/// has one.
        ("", ("", None)),
        (":5000", ("", 5000)),
    ],
)
def test_split_hostport(text: str, expected: tuple[str, int | None]) -> None:
    assert split_hostport(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("h:", "port '' is not a number in 1..65535"),
        ("h:0", "port '0' is not a number in 1..65535"),
        ("h:65536", "port '65536' is not a number in 1..65535"),
        ("h:-1", "port '-1' is not a number in 1..65535"),
        ("h:+80", "port '+80' is not a number in 1..65535"),
        ("h:0x50", "port '0x50' is not a number in 1..65535"),
        ("h: 80", "port ' 80' is not a number in 1..65535"),
        ("h:٨٠", "port '٨٠' is not a number in 1..65535"),
        ("h:" + "9" * 5000, "port '" + "9" * 5000 + "' is not a number in 1..65535"),
        (
            "::1",
            "'::1' has more than one ':' (an IPv6 host is written in brackets, e.g. '[::1]:5000')",
        ),
        ("h:80:80", "'h:80:80' has more than one ':'"),
        ("[::1", "'[::1' has '[' without ']'"),
        ("[::1]x", "'[::1]x' has unexpected 'x' after ']'"),
        ("[::1]:", "port '' is not a number in 1..65535"),
        ("[host]", "'[host]' is not a bracketed IPv6 address"),
        ("[127.0.0.1]:80", "'[127.0.0.1]:80' is not a bracketed IPv6 address"),
        ("[fe80::1%eth0]", "'[fe80::1%eth0]' is not a bracketed IPv6 address"),
        ("[]", "'[]' is not a bracketed IPv6 address"),
        ("a]b", "host 'a]b' contains ']'"),
        ("user@h", "host 'user@h' contains '@'"),
        ("h/x", "host 'h/x' contains '/'"),
        ("a b", "host 'a b' contains ' '"),
        ("a\nb", "host 'a\\nb' contains a control character"),
    ],
)
def test_split_hostport_refusals(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(reason)}"):
        split_hostport(text)


_HOSTS = st.one_of(
    st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9.-]{0,20}[a-zA-Z0-9])?", fullmatch=True),
    st.ip_addresses().map(str),
)


@given(host=_HOSTS, port=st.none() | st.integers(1, 65535))
def test_join_inverts_split(host: str, port: int | None) -> None:
    assert split_hostport(join_hostport(host, port)) == (host, port)


# --- origins -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://registry-1.docker.io", Origin("https", "registry-1.docker.io", 443)),
        ("https://registry-1.docker.io:443/v2/", Origin("https", "registry-1.docker.io", 443)),
        ("HTTP://Registry.Example/v2/x?y#z", Origin("http", "registry.example", 80)),
        ("http://127.0.0.1:5000", Origin("http", "127.0.0.1", 5000)),
        ("https://[::1]:5000/v2/", Origin("https", "::1", 5000)),
        ("https://[2001:DB8::1]", Origin("https", "2001:db8::1", 443)),
        (" https://h ", Origin("https", "h", 443)),
        ("https://h?x", Origin("https", "h", 443)),
    ],
)
def test_origin_of(url: str, expected: Origin) -> None:
    assert Origin.of(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("registry.example", "missing '://'"),
        ("ftp://h/x", "scheme 'ftp' is not 'http' or 'https'"),
        ("file:///etc/passwd", "scheme 'file' is not 'http' or 'https'"),
        ("https:///v2/", "missing host"),
        ("https://:5000", "missing host"),
        ("https://h:99999", "port '99999' is not a number in 1..65535"),
        ("https://[x/", "'[x' has '[' without ']'"),
        ("https://user:s3cret@h/", "a user or password in the URL is not supported"),
    ],
)
def test_origin_of_refusals(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(reason)}$"):
        Origin.of(url)


def test_origin_parse_reads_a_registry_name_over_a_scheme() -> None:
    assert Origin.parse("r", scheme="https") == Origin("https", "r", 443)
    assert Origin.parse("r", scheme="HTTP") == Origin("http", "r", 80)
    assert Origin.parse("R:443", scheme="https") == Origin.parse("r", scheme="https")
    assert Origin.parse("[::1]:5000", scheme="http") == Origin("http", "::1", 5000)
    with pytest.raises(ValueError, match=r"^scheme 'ftp' is not 'http' or 'https'$"):
        Origin.parse("r", scheme="ftp")


def test_origin_at_takes_a_docker_uris_fields() -> None:
    assert Origin.at("Registry-1.Docker.IO", None, scheme="https") == Origin(
        "https", "registry-1.docker.io", 443
    )
    assert Origin.at("::1", 5000, scheme="http") == Origin("http", "::1", 5000)
    assert Origin.at("[::1]", 5000, scheme="http") == Origin("http", "::1", 5000)
    with pytest.raises(ValueError, match=r"^scheme 'ftp' is not 'http' or 'https'$"):
        Origin.at("h", None, scheme="ftp")


@pytest.mark.parametrize(
    ("origin", "hostport", "text"),
    [
        (Origin("https", "r", 443), "r", "https://r"),
        (Origin("http", "r", 80), "r", "http://r"),
        (Origin("https", "r", 80), "r:80", "https://r:80"),
        (Origin("http", "r", 443), "r:443", "http://r:443"),
        (Origin("http", "::1", 5000), "[::1]:5000", "http://[::1]:5000"),
        (Origin("https", "::1", 443), "[::1]", "https://[::1]"),
    ],
)
def test_hostport_leaves_out_the_default_port(origin: Origin, hostport: str, text: str) -> None:
    assert origin.hostport == hostport
    assert str(origin) == text
    assert Origin.of(text) == origin


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("::2", False),
        ("localhost.example", False),
        ("registry.example", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert Origin("http", host, 5000).is_loopback is loopback


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://r/v2/", "https://r:443/v2/x/blobs/y", True),
        ("https://R/v2/", "https://r", True),
        ("http://r:80/", "http://r", True),
        ("https://[::1]:5000/a", "https://[0:0::1]:5000/b", False),
        ("https://r", "http://r", False),
        ("https://r", "https://r:5000", False),
        ("https://r", "https://s", False),
        ("https://r", "https://user@r", False),
        ("https://r", "https://[x/", False),
        ("https://r", "r", False),
    ],
)
def test_same_origin(a: str, b: str, same: bool) -> None:
    assert same_origin(a, b) is same
    assert same_origin(b, a) is same


# --- redirects -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "target"),
    [
        ("/v2/x/blobs/y", "https://r/v2/x/blobs/y"),
        ("https://storage.example/blob?sig=1", "https://storage.example/blob?sig=1"),
        ("http://r/v2/", "http://r/v2/"),
    ],
)
def test_follow_redirect(location: str, target: str) -> None:
    if target.startswith("http://"):
        with pytest.raises(RedirectError, match="from https to plain http"):
            follow_redirect("https://r/v2/", location, hops=0)
        assert follow_redirect("https://r/v2/", location, hops=0, allow_downgrade=True) == target
    else:
        assert follow_redirect("https://r/v2/", location, hops=0) == target


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("file:///etc/passwd", "to a 'file:' URL"),
        ("gopher://h/", "to a 'gopher:' URL"),
        ("https://[x/", "to a malformed URL"),
        ("https://[::g]/", "to a malformed URL"),
    ],
)
def test_follow_redirect_refusals(location: str, reason: str) -> None:
    with pytest.raises(RedirectError) as caught:
        follow_redirect("https://u:s3cret@r/v2/", location, hops=0)
    assert caught.value.reason == reason
    assert str(caught.value) == f"Refusing to follow a redirect from 'https://r/v2/' {reason}"


def test_follow_redirect_stops_a_loop() -> None:
    assert follow_redirect("https://r/a", "/b", hops=MAX_REDIRECTS - 1) == "https://r/b"
    with pytest.raises(TooManyRedirectsError):
        follow_redirect("https://r/a", "/b", hops=MAX_REDIRECTS)
