"""Image references: the original's docker spec tests, normalisation, grammar.

The original's registry helpers (port, scheme and host of a registry, and the reduction of a
docker config key) are tested where their rules now live: the registry's port and transport
through :func:`normalize` and :func:`validate_reference`, the config keys in test_docker_config.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_uri._docker.reference import (
    ImageReference,
    normalize,
    parse_image_reference,
    validate_reference,
)
from mesos_uri._uri import URI, parse_uri
from mesos_uri.errors import UsageError
from mesos_uri.fetcher import Flags

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
        # The other cases of the original's rule: nothing is checked beyond the split.
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


# --- DockerSpecTest.GetRegistrySpec: a registry's port and transport -----------------------------


@pytest.mark.parametrize(
    ("registry", "uri"),
    [
        # The original's cases: https, but plain http on port 80 and for a local registry on any
        # port but 443.
        ("index.docker.io", "docker-manifest://registry-1.docker.io/library/app?latest#https"),
        ("localhost:80", "docker-manifest://localhost:80/app?latest#http"),
        (
            "registry-1.docker.io:443",
            "docker-manifest://registry-1.docker.io:443/library/app?latest#https",
        ),
        ("127.0.0.1:443", "docker-manifest://127.0.0.1:443/app?latest#https"),
        ("127.0.0.1:1234", "docker-manifest://127.0.0.1:1234/app?latest#http"),
        ("localhost:1234", "docker-manifest://localhost:1234/app?latest#http"),
        # Beyond them: every loopback address is local, and a leading zero is still decimal.
        ("[::1]:1234", "docker-manifest://[::1]:1234/app?latest#http"),
        ("[::1]:443", "docker-manifest://[::1]:443/app?latest#https"),
        ("127.0.0.2:5000", "docker-manifest://127.0.0.2:5000/app?latest#http"),
        ("LOCALHOST:5000", "docker-manifest://LOCALHOST:5000/app?latest#http"),
        ("registry.io:8443", "docker-manifest://registry.io:8443/app?latest#https"),
        ("registry.io:080", "docker-manifest://registry.io:80/app?latest#http"),
        ("10.0.0.5:5000", "docker-manifest://10.0.0.5:5000/app?latest#https"),
    ],
)
def test_registry_port_and_transport(registry: str, uri: str) -> None:
    reference = ImageReference("app", registry)
    assert str(normalize(reference)) == uri
    assert validate_reference(str(reference)) == reference


@pytest.mark.parametrize(
    ("registry", "reason"),
    [
        # The original's refusals, and what its integer parser took but no port is: a sign,
        # hex, a number outside 1..65535, however long.
        (":", "registry port '' is not a number in 1..65535"),
        ("invalid_host:x80", "registry port 'x80' is not a number in 1..65535"),
        ("invalid_port:80:80", "registry 'invalid_port:80:80' has more than one ':'"),
        ("h: 80", "registry port ' 80' is not a number in 1..65535"),
        ("h:+80", "registry port '+80' is not a number in 1..65535"),
        ("h:-80", "registry port '-80' is not a number in 1..65535"),
        ("h:0x50", "registry port '0x50' is not a number in 1..65535"),
        ("h:0", "registry port '0' is not a number in 1..65535"),
        ("h:65536", "registry port '65536' is not a number in 1..65535"),
        ("h:2147483648", "registry port '2147483648' is not a number in 1..65535"),
        ("h:" + "9" * 200, "registry port '" + "9" * 200 + "' is not a number in 1..65535"),
        ("[::1]x:5", "registry '[::1]x:5' has unexpected 'x:5' after ']'"),
    ],
)
def test_registry_port_errors(registry: str, reason: str) -> None:
    reference = ImageReference("app", registry)
    for call in (lambda: normalize(reference), lambda: validate_reference(str(reference))):
        with pytest.raises(UsageError) as caught:
            call()
        assert str(caught.value).startswith(f"Invalid image reference '{reference}': {reason}")


# --- normalisation as the agent does it -----------------------------------------------------------


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
    assert parse_uri(uri) == normalized


def test_normalize_example_fields() -> None:
    assert normalize(ImageReference("busybox")) == URI(
        "docker-manifest", "library/busybox", "registry-1.docker.io", 443, "latest", "https"
    )


@pytest.mark.parametrize(
    ("default", "uri"),
    [
        # The agent's --docker_registry: scheme lower-cased, the port a default one if none is
        # named, the path ignored.
        ("http://127.0.0.1:5000", "docker-manifest://127.0.0.1:5000/app?latest#http"),
        ("HTTP://127.0.0.1:5000/ignored/path", "docker-manifest://127.0.0.1:5000/app?latest#http"),
        ("https://registry.example", "docker-manifest://registry.example:443/app?latest#https"),
        ("http://registry.example", "docker-manifest://registry.example:80/app?latest#http"),
        ("http://localhost:5000/v2/", "docker-manifest://localhost:5000/app?latest#http"),
        ("Https://R", "docker-manifest://r:443/app?latest#https"),
        ("http://[::1]:5000", "docker-manifest://[::1]:5000/app?latest#http"),
    ],
)
def test_normalize_with_a_default_registry(default: str, uri: str) -> None:
    assert str(normalize(ImageReference("app"), default)) == uri


def test_normalize_refuses_a_registry_port_as_the_grammar_does() -> None:
    with pytest.raises(UsageError) as caught:
        normalize(parse_image_reference("registry.io:x80/app"))
    assert str(caught.value) == (
        "Invalid image reference 'registry.io:x80/app': "
        "registry port 'x80' is not a number in 1..65535"
    )


def test_normalize_refuses_what_no_uri_can_hold() -> None:
    with pytest.raises(UsageError, match=r"Image tag/digest \(uri.query\) is not specified"):
        normalize(parse_image_reference("busybox:"))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("registry-1.docker.io", "missing '://'"),
        ("https:///v2", "missing host"),
        ("https://:5000", "missing host"),
        ("https://h:1:2", "'h:1:2' has more than one ':'"),
        ("https://h:x", "port 'x' is not a number in 1..65535"),
        ("https://h:70000", "port '70000' is not a number in 1..65535"),
        ("ftp://h", "scheme 'ftp' is not 'http' or 'https'"),
        ("https://u:s3cret@h", "a user or password in the URL is not supported"),
    ],
)
def test_normalize_refuses_a_bad_default_registry(url: str, reason: str) -> None:
    with pytest.raises(UsageError) as caught:
        normalize(ImageReference("app"), url)
    shown = url.replace("u:s3cret@", "")
    assert str(caught.value).startswith(f"Invalid registry URL '{shown}': {reason}")


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
        ("[::1]x:5/app", "registry '[::1]x:5' has unexpected 'x:5' after ']'"),
        ("[fe80::1%eth0]/app", "registry '[fe80::1%eth0]' is not a bracketed IPv6 address"),
        ("a%b.io/app", "registry host 'a%b.io' contains '%'"),
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
    assert parse_uri(str(uri)) == uri


@given(st.text(st.sampled_from("aB1-_.:/@[]x ") | st.characters(), max_size=40))
def test_reference_functions_raise_only_usage_errors(text: str) -> None:
    for function in (validate_reference, parse_image_reference):
        with contextlib.suppress(UsageError):
            function(text)
    with contextlib.suppress(UsageError):
        normalize(parse_image_reference(text))
    with contextlib.suppress(UsageError):
        normalize(ImageReference("app"), f"https://{text}")


@pytest.mark.parametrize(
    ("text", "named", "transport"),
    [
        ("localhost:5000/app", ["localhost:5000"], "https"),
        ("LocalHost:5000/app", ["localhost:5000"], "https"),
        ("[::1]:5000/app", ["[::1]:5000"], "https"),
        ("localhost:5000/app", ["localhost:5001"], "http"),
        ("localhost:5000/app", ["localhost"], "http"),
        ("localhost:5000/app", [], "http"),
    ],
)
def test_a_registry_named_for_https_is_reached_over_https_on_any_port(
    text: str, named: list[str], transport: str
) -> None:
    uri = normalize(parse_image_reference(text), https_registries=named)
    assert uri.fragment == transport


@pytest.mark.parametrize("name", ["https://localhost:5000", "localhost:5000/v2", "a b"])
def test_a_malformed_https_registry_is_a_usage_error(name: str) -> None:
    with pytest.raises(UsageError, match=r"^Invalid --https_registry '"):
        Flags(https_registries=frozenset({name}))
