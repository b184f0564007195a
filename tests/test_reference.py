"""Image references: the original's docker_spec_tests (SPEC §10.2), normalisation, grammar."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_uri import uri as uris
from mesos_uri.docker.reference import (
    ImageReference,
    RegistryURL,
    get_registry_host,
    get_registry_port,
    get_registry_scheme,
    normalize,
    parse_auth_url,
    parse_image_reference,
    parse_registry_url,
    validate_reference,
)
from mesos_uri.errors import UsageError

DIGEST = "sha256:bc8813ea7b3603864987522f02a76101c17ad122e1c46d790efc0fca78ca7bfb"


# --- DockerSpecTest.ParseImageReference -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("library/busybox", ImageReference("library/busybox")),
        # No 'library/' here: that is the consumer's normalisation.
        ("busybox", ImageReference("busybox")),
        ("library/busybox:tag", ImageReference("library/busybox", tag="tag")),
        (f"library/busybox@{DIGEST}", ImageReference("library/busybox", digest=DIGEST)),
        ("registry.io/library/busybox", ImageReference("library/busybox", "registry.io")),
        (
            "registry.io/library/busybox:tag",
            ImageReference("library/busybox", "registry.io", "tag"),
        ),
        (
            "registry.io:80/library/busybox:tag",
            ImageReference("library/busybox", "registry.io:80", "tag"),
        ),
        (
            f"registry.io:80/library/busybox@{DIGEST}",
            ImageReference("library/busybox", "registry.io:80", digest=DIGEST),
        ),
    ],
)
def test_parse_image_reference(text: str, expected: ImageReference) -> None:
    assert parse_image_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The other cases of SPEC §2.3's rule: nothing is checked beyond the split.
        ("localhost/app", ImageReference("app", "localhost")),
        ("localhost:5000", ImageReference("localhost", tag="5000")),
        ("team/app", ImageReference("team/app")),
        ("busybox:", ImageReference("busybox", tag="")),
        ("busybox@", ImageReference("busybox", digest="")),
        (f"app:v1@{DIGEST}", ImageReference("app", tag="v1", digest=DIGEST)),
        ("host:5000/a/b", ImageReference("a/b", "host:5000")),
        ("a:b:c", ImageReference("a:b", tag="c")),
    ],
)
def test_parse_image_reference_edge_cases(text: str, expected: ImageReference) -> None:
    assert parse_image_reference(text) == expected


def test_parse_image_reference_multiple_at() -> None:
    with pytest.raises(UsageError, match=r"^Multiple '@' symbols found$"):
        parse_image_reference("a@b@c")


@pytest.mark.parametrize(
    ("reference", "text"),
    [
        (ImageReference("busybox"), "busybox"),
        (
            ImageReference("library/busybox", "registry.io:80", "tag"),
            "registry.io:80/library/busybox:tag",
        ),
        (ImageReference("app", tag="v1", digest=DIGEST), f"app@{DIGEST}"),
        (ImageReference("app", tag=""), "app:"),
        (ImageReference("app", digest=""), "app@"),
    ],
)
def test_reference_string_form(reference: ImageReference, text: str) -> None:
    assert str(reference) == text


# --- DockerSpecTest.GetRegistrySpec ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("registry", "port", "scheme", "host"),
    [
        ("", None, "https", ""),
        ("index.docker.io", None, "https", "index.docker.io"),
        ("localhost:80", 80, "http", "localhost"),
        ("registry-1.docker.io:443", 443, "https", "registry-1.docker.io"),
        ("127.0.0.1:443", 443, "https", "127.0.0.1"),
        ("127.0.0.1:1234", 1234, "http", "127.0.0.1"),
        ("localhost:1234", 1234, "http", "localhost"),
        # stout's numify: sign and 0x hex are accepted (SPEC §9 row 26).
        ("registry.io:8443", 8443, "https", "registry.io"),
        ("registry.io:+80", 80, "http", "registry.io"),
        ("registry.io:080", 80, "http", "registry.io"),
        ("registry.io:0x50", 80, "http", "registry.io"),
        ("registry.io:0X1BB", 443, "https", "registry.io"),
        ("localhost:-80", -80, "http", "localhost"),
    ],
)
def test_get_registry_spec(registry: str, port: int | None, scheme: str, host: str) -> None:
    assert get_registry_port(registry) == port
    assert get_registry_scheme(registry) == scheme
    assert get_registry_host(registry) == host


@pytest.mark.parametrize(
    ("registry", "rest", "host"),
    [
        (":", "", ""),
        ("invalid_host:x80", "x80", "invalid_host"),
        ("invalid_port:80:80", "80:80", "invalid_port"),
        ("h: 80", " 80", "h"),
        ("h:0x", "0x", "h"),
        ("h:2147483648", "2147483648", "h"),
        ("h:0x80000000", "0x80000000", "h"),
        ("h:" + "9" * 5000, "9" * 5000, "h"),
    ],
)
def test_get_registry_spec_errors(registry: str, rest: str, host: str) -> None:
    with pytest.raises(UsageError) as port_error:
        get_registry_port(registry)
    assert str(port_error.value) == f"Failed to numify '{rest}'"
    with pytest.raises(UsageError) as scheme_error:
        get_registry_scheme(registry)
    assert str(scheme_error.value) == f"Failed to get registry port: Failed to numify '{rest}'"
    assert get_registry_host(registry) == host


def test_int_range_edges() -> None:
    assert get_registry_port("h:2147483647") == 2147483647
    assert get_registry_port("h:-2147483648") == -2147483648
    assert get_registry_port("h:0x7fffffff") == 2147483647
    assert get_registry_port("h:0x00000000050") == 80


# --- DockerSpecTest.ParseAuthUrl ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://registry.example.com", "registry.example.com"),
        ("https://registry.example.com/v1/", "registry.example.com"),
        ("http://registry.example.com", "registry.example.com"),
        ("http://registry.example.com/v1/", "registry.example.com"),
        ("registry.example.com", "registry.example.com"),
        ("registry.example.com/v1/", "registry.example.com"),
        ("https://localhost:8000", "localhost:8000"),
        ("https://localhost:8000/v1/", "localhost:8000"),
        ("http://localhost:8000", "localhost:8000"),
        ("localhost:8000/v1/", "localhost:8000"),
        ("http://registry.com/v1/", "registry.com"),
        ("registry.com", "registry.com"),
        # One prefix only, case-sensitive.
        ("HTTPS://registry.com", "HTTPS:"),
        ("https://http://registry.com", "http:"),
    ],
)
def test_parse_auth_url(url: str, expected: str) -> None:
    assert parse_auth_url(url) == expected


# --- normalisation (SPEC §1.3) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "uri"),
    [
        ("busybox", "docker-manifest://registry-1.docker.io:443/library/busybox?latest#https"),
        (
            "library/busybox:1.36",
            "docker-manifest://registry-1.docker.io:443/library/busybox?1.36#https",
        ),
        ("team/app", "docker-manifest://registry-1.docker.io:443/team/app?latest#https"),
        (
            f"busybox:1@{DIGEST}",
            f"docker-manifest://registry-1.docker.io:443/library/busybox?{DIGEST}#https",
        ),
        (
            "docker.io/busybox",
            "docker-manifest://registry-1.docker.io/library/busybox?latest#https",
        ),
        ("index.docker.io/x/y:t", "docker-manifest://registry-1.docker.io/x/y?t#https"),
        ("localhost:5000/team/app:v1", "docker-manifest://localhost:5000/team/app?v1#http"),
        ("127.0.0.1:5000/app", "docker-manifest://127.0.0.1:5000/app?latest#http"),
        ("registry.io:80/app", "docker-manifest://registry.io:80/app?latest#http"),
        ("ghcr.io/org/app:tag", "docker-manifest://ghcr.io/org/app?tag#https"),
        # The library/ rule looks at the domain's text, not at Docker Hub.
        (
            "my.docker.io.example/app",
            "docker-manifest://my.docker.io.example/library/app?latest#https",
        ),
        (
            "nvcr.io/nvidia/k8s/cuda-sample:nbody",
            "docker-manifest://nvcr.io/nvidia/k8s/cuda-sample?nbody#https",
        ),
        ("[::1]:5000/app:v1", "docker-manifest://[::1]:5000/app?v1#http"),
        ("[2001:db8::1]/app", "docker-manifest://[2001:db8::1]/app?latest#https"),
    ],
)
def test_normalize(text: str, uri: str) -> None:
    normalized = normalize(parse_image_reference(text))
    assert str(normalized) == uri
    assert uris.parse_uri(uri) == normalized


def test_normalize_example_fields() -> None:
    assert normalize(ImageReference("busybox")) == uris.docker_manifest(
        "library/busybox", "latest", "registry-1.docker.io", "https", 443
    )


@pytest.mark.parametrize(
    ("default", "uri"),
    [
        ("http://127.0.0.1:5000", "docker-manifest://127.0.0.1:5000/app?latest#http"),
        ("HTTP://127.0.0.1:5000/ignored/path", "docker-manifest://127.0.0.1:5000/app?latest#http"),
        ("https://registry.example", "docker-manifest://registry.example:443/app?latest#https"),
        ("http://registry.example", "docker-manifest://registry.example:80/app?latest#http"),
        ("http://[::1]:5000", "docker-manifest://[::1]:5000/app?latest#http"),
    ],
)
def test_normalize_with_a_default_registry(default: str, uri: str) -> None:
    assert str(normalize(ImageReference("app"), default)) == uri


def test_normalize_reports_registry_port_errors() -> None:
    with pytest.raises(UsageError) as caught:
        normalize(parse_image_reference("registry.io:x80/app"))
    assert str(caught.value) == "Failed to get registry port: Failed to numify 'x80'"


def test_normalize_refuses_what_no_uri_can_hold() -> None:
    with pytest.raises(UsageError, match=r"Image tag/digest \(uri.query\) is not specified"):
        normalize(parse_image_reference("busybox:"))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://registry-1.docker.io", RegistryURL("https", "registry-1.docker.io", 443)),
        ("http://localhost:5000/v2/", RegistryURL("http", "localhost", 5000)),
        ("Https://r", RegistryURL("https", "r", 443)),
    ],
)
def test_parse_registry_url(url: str, expected: RegistryURL) -> None:
    assert parse_registry_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("registry-1.docker.io", "Could not find scheme in url"),
        ("https:///v2", "Host not found in url"),
        ("https://:5000", "Host not found in url"),
        ("https://h:1:2", "Found multiple ports in url"),
        ("https://h:x", "Failed to parse port: 'x' is not a port number"),
        ("https://h:70000", "Failed to parse port: '70000' is not a port number"),
        ("ftp://h", "scheme 'ftp' is not 'http' or 'https'"),
    ],
)
def test_parse_registry_url_errors(url: str, reason: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_registry_url(url)
    assert str(caught.value) == f"Invalid registry URL '{url}': {reason}"


# --- the distribution reference grammar -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "busybox",
        "library/busybox:1.36.1",
        f"busybox@{DIGEST}",
        f"registry.io:5000/team/app:v1@{DIGEST}",
        "localhost/app",
        "127.0.0.1:5000/a/b/c",
        "[::1]:5000/app",
        "Registry.Example.COM/app",
        "a__b/c-d/e.f/g_h/i---j",
        "app:" + "T" * 128,
        "app:_tag",
        "a" * 255,
    ],
)
def test_validate_reference_accepts(text: str) -> None:
    assert validate_reference(text) == parse_image_reference(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "repository name must not be empty"),
        ("a@b@c", "Multiple '@' symbols found"),
        ("Busybox", "repository name 'Busybox' must be lowercase"),
        ("team/App", "repository name 'team/App' must be lowercase"),
        ("-app", "repository path component '-app' must be"),
        ("app-", "repository path component 'app-' must be"),
        ("a___b", "repository path component 'a___b' must be"),
        ("a..b", "repository path component 'a..b' must be"),
        ("a//b", "repository path component '' must be"),
        ("app/", "repository path component '' must be"),
        ("a" * 256, "repository name must not be more than 255 characters"),
        ("registry.io/" + "a" * 244, "repository name must not be more than 255 characters"),
        ("busybox:", "tag '' must be 1 to 128"),
        ("app:.v1", "tag '.v1' must be 1 to 128"),
        ("app:-v1", "tag '-v1' must be 1 to 128"),
        ("app:" + "t" * 129, "must be 1 to 128"),
        ("busybox@", "Invalid digest '': empty"),
        ("busybox@sha256:abc", "Invalid digest 'sha256:abc'"),
        ("busybox@sha256:../../etc/passwd", "Invalid digest 'sha256:../../etc/passwd'"),
        ("bad_host.io/app", "registry host 'bad_host.io' must be"),
        ("-host.io/app", "registry host '-host.io' must be"),
        ("host.io:/app", "registry port '' is not a number in 1..65535"),
        ("host.io:-80/app", "registry port '-80' is not a number in 1..65535"),
        ("host.io:0x50/app", "registry port '0x50' is not a number in 1..65535"),
        ("localhost:0/app", "registry port '0' is not a number in 1..65535"),
        ("[::g]:5000/app", "registry '[::g]:5000' is not a bracketed IPv6 address"),
        ("[::1/app", "registry '[::1' has '[' without ']'"),
        ("[::1]x:5/app", "unexpected 'x:5' after ']' in registry '[::1]x:5'"),
    ],
)
def test_validate_reference_refuses(text: str, reason: str) -> None:
    with pytest.raises(UsageError) as caught:
        validate_reference(text)
    message = str(caught.value)
    assert message.startswith(f"Invalid image reference '{text}': ")
    assert reason in message


_ALNUM = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_SEPARATOR = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def _components(draw: st.DrawFn) -> str:
    """A path component: alphanumeric runs joined by the grammar's separators."""
    component = draw(_ALNUM)
    for run in draw(st.lists(_ALNUM, max_size=3)):
        component += draw(_SEPARATOR) + run
    return component


_PORT = st.none() | st.integers(1, 65535).map(str)
_DOMAINS = st.builds(
    lambda host, port: host if port is None else f"{host}:{port}",
    st.just("localhost") | st.lists(_ALNUM, min_size=2, max_size=4).map(".".join),
    _PORT,
)


@st.composite
def references(draw: st.DrawFn) -> ImageReference:
    registry = draw(st.none() | _DOMAINS)
    components = draw(st.lists(_components(), min_size=1, max_size=3))
    if registry is None and len(components) > 1:
        # A first component with '.' or 'localhost' reads as a registry (Docker's heuristic).
        components[0] = components[0].replace(".", "-").replace("localhost", "local-host")
    repository = "/".join(components)
    tag = draw(st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True))
    digest = draw(st.none() | st.from_regex(r"sha256:[a-f0-9]{64}", fullmatch=True))
    if digest is not None:
        tag = None  # str() writes the digest only
    return ImageReference(repository, registry, tag, digest)


@given(references())
def test_valid_references_round_trip(reference: ImageReference) -> None:
    assert validate_reference(str(reference)) == reference
    uri = normalize(reference)
    assert uris.parse_uri(str(uri)) == uri


@given(st.text(st.sampled_from("aB1-_.:/@[]x ") | st.characters(), max_size=40))
def test_reference_functions_raise_only_usage_errors(text: str) -> None:
    for function in (validate_reference, parse_image_reference, get_registry_port):
        with contextlib.suppress(UsageError):
            function(text)
    with contextlib.suppress(UsageError):
        normalize(parse_image_reference(text))
