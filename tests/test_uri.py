"""The URI model: string form (the original's, with a '/' after a docker URI's registry), parser,
round trip."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_uri._uri import DOCKER_SCHEMES, URI, parse_uri, registry_base
from mesos_uri._urls import MAX_PORT, MIN_PORT
from mesos_uri.errors import UsageError

BUSYBOX = "library/busybox"
DIGEST = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"


# --- string form ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "text"),
    [
        # The original's examples, with the separator it leaves out of docker URIs.
        (
            URI("docker", BUSYBOX, "registry-1.docker.io", query="latest"),
            "docker://registry-1.docker.io/library/busybox?latest",
        ),
        (
            URI("docker-manifest", BUSYBOX, "registry-1.docker.io", 443, "latest", "https"),
            "docker-manifest://registry-1.docker.io:443/library/busybox?latest#https",
        ),
        (
            URI("docker-blob", BUSYBOX, "nvcr.io", query=DIGEST),
            f"docker-blob://nvcr.io/library/busybox?{DIGEST}",
        ),
        (URI("file", "/etc/hosts", host=""), "file:///etc/hosts"),
        (
            URI("http", "/TestHttpServer/test", "127.0.0.1", 5050),
            "http://127.0.0.1:5050/TestHttpServer/test",
        ),
        # The rest of the rule.
        (URI("https", "/", "example.com"), "https://example.com/"),
        (
            URI("http", "/p", "h", 8080, "a=1&b=2", "frag", "user", "secret"),
            "http://user:secret@h:8080/p?a=1&b=2#frag",
        ),
        (URI("http", "/", "h", user="user"), "http://user@h/"),
        (URI("http", "/", "h", user=""), "http://@h/"),
        (URI("http", "/", "h", query=""), "http://h/?"),
        (URI("http", "/", "h", fragment=""), "http://h/#"),
        (URI("hdfs", "/tmp/file"), "hdfs:/tmp/file"),
        (URI("hdfs", "/tmp/file", "namenode", 8020), "hdfs://namenode:8020/tmp/file"),
        (URI("s3", "bucket/key"), "s3:bucket/key"),
        (URI("ftp", "", "h"), "ftp://h"),
        # IPv6 hosts are stored bare and written in brackets.
        (URI("http", "/x", "::1", 8080), "http://[::1]:8080/x"),
        (
            URI("docker", "team/app", "::1", 5000, "v1", "http"),
            "docker://[::1]:5000/team/app?v1#http",
        ),
        # Repositories with further slashes, digests with ':' in the query.
        (
            URI("docker-blob", "nvidia/k8s/cuda-sample", "nvcr.io", query=DIGEST, fragment="https"),
            f"docker-blob://nvcr.io/nvidia/k8s/cuda-sample?{DIGEST}#https",
        ),
    ],
)
def test_string_form(uri: URI, text: str) -> None:
    assert str(uri) == text


def test_fields_default_to_unset() -> None:
    uri = URI("x")
    assert uri.path == ""
    assert (uri.host, uri.port, uri.query, uri.fragment, uri.user, uri.password) == (None,) * 6


def test_set_and_unset_fields_differ() -> None:
    assert URI("http", "/", "h", query="") != URI("http", "/", "h")
    assert URI("hdfs", "/p", host="") != URI("hdfs", "/p")
    assert str(URI("hdfs", "/p")) == "hdfs:/p"


def test_is_docker() -> None:
    assert URI("docker", BUSYBOX, "h", query="latest").is_docker
    assert not URI("http", "/", "h").is_docker


# --- the registry a docker URI names ------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "base"),
    [
        # No fragment: https; no port: none written.
        (
            URI("docker", BUSYBOX, "registry-1.docker.io", query="latest"),
            "https://registry-1.docker.io",
        ),
        (
            URI("docker-blob", "team/app", "127.0.0.1", 5000, DIGEST, "http"),
            "http://127.0.0.1:5000",
        ),
        (
            URI("docker-manifest", "team/app", "registry.example", 443, "v1", "https"),
            "https://registry.example:443",
        ),
        (URI("docker-manifest", "a/b", "::1", 5000, "v1", "http"), "http://[::1]:5000"),
    ],
)
def test_registry_base(uri: URI, base: str) -> None:
    assert registry_base(uri) == base


def test_registry_base_refuses_non_docker_uris() -> None:
    with pytest.raises(UsageError, match=r"^'http://h/' is not a docker URI$"):
        registry_base(URI("http", "/", "h"))


# --- parser: the CLI forms ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "docker://registry-1.docker.io/library/busybox?latest",
            URI("docker", BUSYBOX, "registry-1.docker.io", query="latest"),
        ),
        (
            "docker://127.0.0.1:5000/lab/multi?latest#http",
            URI("docker", "lab/multi", "127.0.0.1", 5000, "latest", "http"),
        ),
        (
            "docker-manifest://registry-1.docker.io:443/library/busybox?latest#https",
            URI("docker-manifest", BUSYBOX, "registry-1.docker.io", 443, "latest", "https"),
        ),
        (
            f"docker-blob://nvcr.io/nvidia/k8s/cuda-sample?{DIGEST}",
            URI("docker-blob", "nvidia/k8s/cuda-sample", "nvcr.io", query=DIGEST),
        ),
        (
            "docker://[::1]:5000/team/app?v1#http",
            URI("docker", "team/app", "::1", 5000, "v1", "http"),
        ),
        ("docker://[::1]/team/app?v1", URI("docker", "team/app", "::1", query="v1")),
        # A query runs to '#'; a second '?' belongs to it.
        ("docker://h/r?a?b", URI("docker", "r", "h", query="a?b")),
        ("http://example.com/a/b", URI("http", "/a/b", "example.com")),
        (
            "https://user:p:w@example.com:8443/p?q=1#top",
            URI("https", "/p", "example.com", 8443, "q=1", "top", "user", "p:w"),
        ),
        ("http://@h/", URI("http", "/", "h", user="")),
        ("http://h", URI("http", "", "h")),
        ("http://h?q", URI("http", "", "h", query="q")),
        ("http://[2001:db8::1]:80/x", URI("http", "/x", "2001:db8::1", 80)),
        ("ftp://ftp.example.com/pub/file.tgz", URI("ftp", "/pub/file.tgz", "ftp.example.com")),
        ("ftps://h:990/f", URI("ftps", "/f", "h", 990)),
        ("file:///etc/hosts", URI("file", "/etc/hosts", host="")),
        ("hdfs://namenode:8020/data/x", URI("hdfs", "/data/x", "namenode", 8020)),
        ("hdfs:/data/x", URI("hdfs", "/data/x")),
        ("http://h:0080/", URI("http", "/", "h", 80)),
        ("http://h:65535/", URI("http", "/", "h", 65535)),
        ("HTTP://h/", URI("HTTP", "/", "h")),
    ],
)
def test_parse_uri(text: str, expected: URI) -> None:
    assert parse_uri(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("busybox", "missing '://'"),
        ("", "missing '://'"),
        ("docker:library/busybox?latest", "missing '://'"),
        (
            "1http://h/",
            "scheme '1http' must be a letter followed by letters, digits, '+', '-' or '.'",
        ),
        ("://h/", "scheme '' must be a letter followed by letters, digits, '+', '-' or '.'"),
        ("http://h:abc/", "port 'abc' is not a number in 1..65535"),
        ("http://h:/", "port '' is not a number in 1..65535"),
        ("http://h:-1/", "port '-1' is not a number in 1..65535"),
        ("http://h:+80/", "port '+80' is not a number in 1..65535"),
        ("http://h:0x50/", "port '0x50' is not a number in 1..65535"),
        ("http://h:0/", "port '0' is not a number in 1..65535"),
        ("http://h:65536/", "port '65536' is not a number in 1..65535"),
        ("http://h:" + "9" * 5000 + "/", "port '" + "9" * 5000 + "' is not a number in 1..65535"),
        ("docker://h?latest", "docker URI needs a repository path"),
        ("docker://h/?latest", "docker URI needs a repository path"),
        ("docker://h/library/busybox", "docker URI needs '?<tag or digest>'"),
        ("docker://h/library/busybox?", "docker URI needs '?<tag or digest>'"),
        ("docker://h/library/busybox#http", "docker URI needs '?<tag or digest>'"),
        ("docker://h/r?latest#ftp", "docker URI fragment 'ftp' must be 'http' or 'https'"),
        ("docker://h/r?latest#", "docker URI fragment '' must be 'http' or 'https'"),
        ("docker-blob:///r?x", "docker URI needs a registry host"),
        ("docker://h//r?latest", "repository '/r' must not start with '/'"),
        (
            "http://::1/",
            "'::1' has more than one ':' (an IPv6 host is written in brackets, e.g. '[::1]:5000')",
        ),
        ("http://[::1/", "'[::1' has '[' without ']'"),
        ("http://[::1]x/", "'[::1]x' has unexpected 'x' after ']'"),
        ("http://[host]/", "'[host]' is not a bracketed IPv6 address"),
        ("http://[::g]/", "'[::g]' is not a bracketed IPv6 address"),
        ("http://[fe80::1%25eth0]/", "'[fe80::1%25eth0]' is not a bracketed IPv6 address"),
        ("http://a%b/", "host 'a%b' contains '%'"),
        ("http://u@h@x/", "user contains '@'"),
        ("http://h/a\nb", "path '/a\\nb' contains a control character"),
        ("hdfs://h/x\x00", "path '/x\\x00' contains a control character"),
    ],
)
def test_parse_uri_errors(text: str, reason: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_uri(text)
    assert str(caught.value) == f"Invalid URI '{text}': {reason}"


@pytest.mark.parametrize(
    "build",
    [
        lambda: parse_uri("http://user:se\tcret@host/x"),
        lambda: URI("http", "/", "h", user="u", password="se\x1bcret"),
        lambda: URI("http", "/", "h", user="u", password=123456),  # type: ignore[arg-type]
    ],
)
def test_a_refused_password_is_never_quoted(build: Callable[[], URI]) -> None:
    with pytest.raises(UsageError) as caught:
        build()
    assert "cret" not in str(caught.value)
    assert "123456" not in str(caught.value)
    assert "password ***" in str(caught.value)


# --- what cannot round-trip is refused at construction --------------------------------------------


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: URI("http", "x", "h"), "path 'x' must start with '/' when a host is set"),
        (lambda: URI("file", "relative/path", ""), "path 'relative/path' must start with '/'"),
        (lambda: URI("file", "/tmp/a#b", ""), "path '/tmp/a#b' contains '#'"),
        (lambda: URI("file", "/tmp/a?b", ""), "path '/tmp/a?b' contains '?'"),
        (lambda: URI("http", "/", "h", query="a#b"), "query 'a#b' contains '#'"),
        (lambda: URI("hdfs", "//x"), "without a host it cannot start with '//'"),
        (lambda: URI("x", port=80), "a port, user or password needs a host"),
        (lambda: URI("http", "/", "h", password="pw"), "a password needs a user"),
        (lambda: URI("http", "/", "h", user="a:b"), "user contains ':'"),
        (lambda: URI("http", "/", "h", user="me@example.com"), "user contains '@'"),
        (lambda: URI("http", "/", "h", user="u", password="p@ss"), "password contains '@'"),
        (lambda: URI("http", "/", "h/x"), "host 'h/x' contains '/'"),
        (lambda: URI("http", "/", "[::1]"), "host '[::1]' contains '['"),
        (lambda: URI("http", "/", "::g"), "host '::g' contains ':' but is not an IPv6 address"),
        (lambda: URI("http", "/", "h", 0), "port 0 is not a number in 1..65535"),
        (lambda: URI("http", "/", "h", 65536), "port 65536 is not a number in 1..65535"),
        (lambda: URI("", "x"), "scheme '' must be a letter"),
        (lambda: URI("a b", "x"), "scheme 'a b' must be a letter"),
        (lambda: URI("http", "/a\r\nHost: evil", "h"), "contains a control character"),
        (
            lambda: URI("docker", BUSYBOX, "", query="latest"),
            "Registry host (uri.host) is not specified",
        ),
        (
            lambda: URI("docker", BUSYBOX, query="latest"),
            "Registry host (uri.host) is not specified",
        ),
        (
            lambda: URI("docker", BUSYBOX, "h", query=""),
            "Image tag/digest (uri.query) is not specified",
        ),
        (
            lambda: URI("docker-blob", BUSYBOX, "h"),
            "Image tag/digest (uri.query) is not specified",
        ),
        (lambda: URI("docker", "", "h", query="latest"), "docker URI needs a repository path"),
        (
            lambda: URI("docker", "/library/busybox", "h", query="latest"),
            "repository '/library/busybox' must not start with '/'",
        ),
        (
            lambda: URI("docker", BUSYBOX, "h", query="latest", fragment="ftp"),
            "docker URI fragment 'ftp' must be 'http' or 'https'",
        ),
        (lambda: URI("docker", BUSYBOX, "h", query="a?b#c"), "query 'a?b#c' contains '#'"),
    ],
)
def test_unrepresentable_uris_are_refused(build: Callable[[], URI], reason: str) -> None:
    with pytest.raises(UsageError, match=r"^Invalid URI '") as caught:
        build()
    assert reason in str(caught.value)


def test_refusal_names_the_uri() -> None:
    with pytest.raises(UsageError) as caught:
        URI("http", "x", "h")
    assert str(caught.value) == (
        "Invalid URI 'http://hx': path 'x' must start with '/' when a host is set"
    )


def test_passwords_stay_out_of_messages() -> None:
    uri = URI("http", "/", "h", user="me", password="s3cret")
    assert str(uri) == "http://me:s3cret@h/"
    assert uri.redacted() == "http://me:***@h/"
    assert "s3cret" not in repr(uri)
    with pytest.raises(UsageError) as built:
        URI("http", "x", "h", user="me", password="s3cret")
    assert str(built.value) == (
        "Invalid URI 'http://me:***@hx': path 'x' must start with '/' when a host is set"
    )
    with pytest.raises(UsageError) as parsed:
        parse_uri("https://me:s3cret@h:x/")
    assert str(parsed.value) == (
        "Invalid URI 'https://me:***@h:x/': port 'x' is not a number in 1..65535"
    )


def test_wrong_field_types_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="path 5 is not a string"):
        URI("http", 5)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="port True is not a number"):
        URI("http", "/", "h", True)


# --- the round trip -------------------------------------------------------------------------------

_PRINTABLE = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))


def _text(exclude: str, *, min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    return st.text(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters=exclude),
        min_size=min_size,
        max_size=max_size,
    )


_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_LABEL = st.text(_ALNUM + "-", min_size=1, max_size=12)
_HOSTS = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.just("localhost"),
)
_PORTS = st.none() | st.integers(MIN_PORT, MAX_PORT)
_REPOSITORIES = st.lists(
    st.text(_ALNUM.lower() + "._-", min_size=1, max_size=12), min_size=1, max_size=4
).map("/".join)
_REFERENCES = st.text(_ALNUM + "_.-:", min_size=1, max_size=24) | st.text(
    "0123456789abcdef", min_size=64, max_size=64
).map(lambda hex_digits: f"sha256:{hex_digits}")
_USERINFO = st.none() | st.tuples(_text(":@/?#"), st.none() | _text("@/?#"))


@st.composite
def docker_uris(draw: st.DrawFn) -> URI:
    userinfo = draw(_USERINFO)
    user, password = userinfo if userinfo is not None else (None, None)
    return URI(
        scheme=draw(st.sampled_from(sorted(DOCKER_SCHEMES))),
        path=draw(_REPOSITORIES),
        host=draw(_HOSTS),
        port=draw(_PORTS),
        query=draw(_REFERENCES),
        fragment=draw(st.sampled_from([None, "http", "https"])),
        user=user,
        password=password,
    )


@st.composite
def other_uris(draw: st.DrawFn) -> URI:
    scheme = draw(
        st.sampled_from(["http", "https", "ftp", "ftps", "file", "hdfs", "s3", "x+y.z-1"])
    )
    host = draw(st.none() | st.just("") | _HOSTS)
    if host is None:
        path = draw(_text("?#").filter(lambda p: not p.startswith("//")))
        port = user = password = None
    else:
        path = draw(st.just("") | _text("?#").map(lambda p: f"/{p}"))
        port = draw(_PORTS)
        userinfo = draw(_USERINFO)
        user, password = userinfo if userinfo is not None else (None, None)
    return URI(
        scheme=scheme,
        path=path,
        host=host,
        port=port,
        query=draw(st.none() | _text("#")),
        fragment=draw(st.none() | _text("")),
        user=user,
        password=password,
    )


@given(docker_uris() | other_uris())
def test_parse_inverts_str(uri: URI) -> None:
    assert parse_uri(str(uri)) == uri


# Fields drawn with every delimiter in play: whatever construction accepts must round-trip.
_NASTY = st.text(st.sampled_from("ab1:/?#@[]%. \t\n-_") | _PRINTABLE, max_size=12)


@given(
    scheme=st.sampled_from(["http", "file", "hdfs", "docker", "docker-blob", "a", "1a", ""]),
    path=_NASTY,
    host=st.none() | _NASTY | _HOSTS,
    port=st.none() | st.integers(-1, 70000),
    query=st.none() | _NASTY | _REFERENCES,
    fragment=st.none() | _NASTY | st.sampled_from(["http", "https"]),
    user=st.none() | _NASTY,
    password=st.none() | _NASTY,
)
def test_every_constructible_uri_round_trips(
    scheme: str,
    path: str,
    host: str | None,
    port: int | None,
    query: str | None,
    fragment: str | None,
    user: str | None,
    password: str | None,
) -> None:
    try:
        uri = URI(scheme, path, host, port, query, fragment, user, password)
    except UsageError:
        return
    assert parse_uri(str(uri)) == uri


@given(st.text(st.sampled_from("docker-blob:/?#@[]1.hx") | _PRINTABLE, max_size=40))
def test_parse_accepts_or_refuses_cleanly(text: str) -> None:
    try:
        uri = parse_uri(text)
    except UsageError:
        return
    assert parse_uri(str(uri)) == uri
