"""Every parser of untrusted input raises nothing but :class:`FetchError`, whatever it is fed.

The modules' own test files already throw arbitrary bytes and text, and lightly
mutated valid documents, at the decoder, the WWW-Authenticate parser, the URI, reference,
config, manifest and index parsers. This file adds what they leave out, in one place:

* *structured* hostile input, built from the pieces each grammar is made of (status lines and
  framing headers, challenge tokens and quoted strings, URI parts, reference components) so that
  generated inputs get deep into the parsers instead of failing on their first byte;
* hostile JSON *text* (not ``json.dumps`` of a value): nesting deeper than Python's json module
  follows, ``NaN``, ``1e999``, 5000-digit integers, lone surrogates (``"\\ud800"``), byte-order
  marks, trailing garbage; fed to every JSON reader, including the small ones (token and OAuth
  responses, credential helper output, registry error bodies);
* the steps after a successful parse that a fetch takes next (credentials encoded for a header,
  a realm turned into a URL, a URI turned into registry URLs), since that is where a value that
  parsed but should not have turns into a crash;
* the digest parser, which had no such test.

Each target below is a function of one generated input that calls the parsers, swallowing
``FetchError``, and asserts what must hold when they succeed. ``scripts/fuzz.py`` (``make
fuzz``) drives the same targets for longer.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from typing import Any, Final, ParamSpec, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesos_uri import _http as http
from mesos_uri import _uri as uris
from mesos_uri import _urls as urls
from mesos_uri import _www_authenticate as www_authenticate
from mesos_uri._docker import (
    auth,
    credentials,
    digest,
    index,
    manifest,
    reference,
    schema1,
    session,
)
from mesos_uri._docker import config as docker_config
from mesos_uri._docker.platform import Platform
from mesos_uri.errors import FetchError

T = TypeVar("T")
P = ParamSpec("P")


def accepted(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """``call(...)``, or None when it refused its input the one allowed way: a FetchError.
    Anything else it raises propagates and fails the target."""
    try:
        return call(*args, **kwargs)
    except FetchError:
        return None


@attrs.frozen
class Target:
    """One parser family: how to generate its hostile input, and what to do with it."""

    name: str
    inputs: st.SearchStrategy[Any]
    check: Callable[[Any], None]


# -- hostile JSON text --------------------------------------------------------------------------

# Deeper than the json module's recursion limit (about 1000 levels), in both container kinds.
DEEP_ARRAY: Final = "[" * 3000 + "]" * 3000
DEEP_OBJECT: Final = '{"a":' * 3000 + "1" + "}" * 3000
_SHA256: Final = '"sha256:' + "0" * 64 + '"'

_SCALARS: Final = st.sampled_from(
    [
        "null",
        "true",
        "false",
        "0",
        "-0",
        "1",
        "2",
        "2.0",
        "-1",
        "1.5",
        "1e999",
        "-1e999",
        "NaN",
        "Infinity",
        "-Infinity",
        "1" * 5000,
        '"' + "9" * 5000 + '"',
        '"\\ud800"',
        '"\\udfff\\ud800"',
        '"\\u0000"',
        '"x"',
        '""',
        '"\\"\\\\/\\b\\f\\n\\r\\t"',
        _SHA256,
        '"sha512:' + "0" * 128 + '"',
        '"sha256:../x"',
        '"../../etc/passwd"',
        '"SHA256:' + "A" * 64 + '"',
        f'"{manifest.OCI_MANIFEST}"',
        f'"{manifest.OCI_INDEX}"',
        f'"{manifest.DOCKER_LIST}"',
        f'"{manifest.SCHEMA2}"',
        f'"{manifest.SCHEMA1_SIGNED}"',
        '"linux"',
        '"amd64"',
        '"arm64"',
        '"v8"',
        '"https://127.0.0.1/x"',
        '"dXNlcjpwYXNz"',  # base64 "user:pass"
        '"PHRva2VuPjr/"',  # base64 of b"<token>:\xff": an identity token that is not UTF-8
        '"not base64!"',
        '"<token>"',
        DEEP_ARRAY,
        DEEP_OBJECT,
    ]
)
# Field names of every JSON document the package reads.
_KEYS: Final = st.sampled_from(
    [
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "manifests",
        "digest",
        "size",
        "urls",
        "platform",
        "os",
        "architecture",
        "variant",
        "os.features",
        "annotations",
        "subject",
        "artifactType",
        "fsLayers",
        "blobSum",
        "history",
        "v1Compatibility",
        "signatures",
        "protected",
        "name",
        "tag",
        "auths",
        "r.example",
        "https://index.docker.io/v1/",
        "auth",
        "username",
        "password",
        "identitytoken",
        "credsStore",
        "credHelpers",
        "token",
        "access_token",
        "expires_in",
        "refresh_token",
        "errors",
        "code",
        "message",
        "Username",
        "Secret",
        "error",
        "\\ud800",
        "",
    ]
).map(lambda key: f'"{key}"')


def _json_values(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return _SCALARS
    inner = _json_values(depth - 1)
    arrays = st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]")
    objects = st.lists(st.tuples(_KEYS, inner), max_size=5).map(
        lambda pairs: "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"
    )
    return st.one_of(_SCALARS, arrays, objects)


# A document, with what a hostile server or file may put around it.
json_texts: Final = st.builds(
    lambda lead, document, trail: lead + document + trail,
    st.sampled_from(["", " ", "\ufeff", "\n"]),
    _json_values(4),
    st.sampled_from(["", " ", "}", "]", " x", "\x00", ',"a":1}']),
)
# As a server sends them: UTF-8 (lone surrogates kept as their bytes), sometimes UTF-16.
json_bodies: Final = st.one_of(
    json_texts.map(lambda text: text.encode("utf-8", "surrogatepass")),
    json_texts.map(lambda text: text.encode("utf-16", "surrogatepass")),
    st.binary(max_size=200),
)


# -- HTTP responses, as curl prints them --------------------------------------------------------

_EOLS: Final = st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\r\n"])
_STATUS_LINES: Final = st.sampled_from(
    [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.0 404",
        b"HTTP/2 200",
        b"HTTP/1.1 999 X",
        b"HTTP/1.1 000 Y",
        b"HTTP/1.1 100 Continue",
        b"HTTP/1.1 204",
        b"HTTP/1.1 304 Not Modified",
        b"HTTP/1.1 307 Temporary Redirect",
        b"HTTP/1.1 200 Connection established",
        b"HTTP/9.9 200",
        b"HTTP/1.1 2000 x",
        b"HTTP/1.1  200",
        b"http/1.1 200",
        b"HTTP/1.1 200 \xff\x00",
        b"ICY 200 OK",
    ]
)
_FIELD_NAMES: Final = st.sampled_from(
    [
        b"Content-Length",
        b"content-length",
        b"Transfer-Encoding",
        b"Content-Encoding",
        b"Location",
        b"WWW-Authenticate",
        b"Retry-After",
        b"X",
        b"",
        b" Content-Length",
        b"Content-Length ",
        b"\xff",
    ]
)
_FIELD_VALUES: Final = st.sampled_from(
    [
        b"0",
        b"5",
        b"-1",
        b"+5",
        b"5, 5",
        b"5,6",
        b"",
        b"9" * 30,
        b"chunked",
        b"gzip",
        b"x-gzip",
        b"chunked, gzip",
        b"gzip, gzip",
        b"identity",
        b"\x00",
        b"\xff\xfe",
        b"0x10",
        "٣".encode(),
        b'Bearer realm="http://127.0.0.1/t",service="s"',
        b"/elsewhere",
    ]
)
_FIELD_LINES: Final = st.one_of(
    st.tuples(_FIELD_NAMES, st.sampled_from([b":", b": ", b" : ", b""]), _FIELD_VALUES).map(
        b"".join
    ),
    st.sampled_from([b" folded", b"\tfolded", b"no colon"]),
)
_CHUNK_SIZES: Final = st.sampled_from(
    [b"0", b"5", b"ffffffffffffffffffff", b"-1", b"5;ext=1", b"5 ", b"", b"g", b"0" * 20 + b"5"]
)
_BODIES: Final = st.one_of(
    st.binary(max_size=20),
    st.builds(
        lambda chunks, eol: (
            b"".join(size + eol + data + eol for size, data in chunks) + b"0" + eol + eol
        ),
        st.lists(st.tuples(_CHUNK_SIZES, st.binary(max_size=8)), max_size=3),
        _EOLS,
    ),
    st.sampled_from(
        [
            gzip.compress(b"hello"),
            gzip.compress(b"\x00" * 100_000),
            gzip.compress(b"a")[:-3],
            gzip.compress(b"a") + b"junk",
        ]
    ),
)
_RESPONSES: Final = st.builds(
    lambda status, eol, fields, body: status + eol + b"".join(f + eol for f in fields) + eol + body,
    _STATUS_LINES,
    _EOLS,
    st.lists(_FIELD_LINES, max_size=5),
    _BODIES,
)
http_streams: Final = st.one_of(
    st.builds(
        lambda lead, responses: lead + b"".join(responses),
        st.sampled_from([b"", b"\r\n", b"\n\n"]),
        st.lists(_RESPONSES, min_size=1, max_size=3),
    ),
    st.binary(max_size=300),
)


def check_http(data: bytes) -> None:
    decoded = accepted(http.decode_responses, data)
    if decoded is not None:
        assert decoded
        for response in decoded:
            assert 0 <= response.code <= 999
            response.headers.get("Content-Length")


# -- WWW-Authenticate ---------------------------------------------------------------------------

_CHALLENGE_PIECES: Final = st.sampled_from(
    [
        "Bearer",
        "Basic",
        "Digest",
        "Negotiate",
        "bearer",
        " ",
        "\t",
        ",",
        "=",
        '"',
        "\\",
        "realm",
        "service",
        "scope",
        "REALM",
        '"http://127.0.0.1:5000/token"',
        '"https://auth.example/token?x=1"',
        '"ftp://x/y"',
        '"http://[::1/t"',
        '""',
        '"a,b=c"',
        '"\\"q\\""',
        '"unterminated',
        "abc==",
        "token68+/=",
        "repository:lab/app:pull",
        "é",
        "\x00",
        "\x7f",
    ]
)
challenges: Final = st.one_of(
    st.lists(_CHALLENGE_PIECES, max_size=25).map("".join),
    st.text(max_size=80),
)


def check_challenge(value: str) -> None:
    parsed = accepted(www_authenticate.parse_www_authenticate, value)
    if parsed is not None:
        assert parsed
        selected = www_authenticate.select_challenge(value)
        assert selected in parsed
    response = http.Response(401, "401 Unauthorized", http.Headers((("WWW-Authenticate", value),)))
    challenge = accepted(auth.bearer_challenge, response, "http://127.0.0.1/v2/")
    if challenge is None:
        return
    assert challenge.scheme.lower() == "bearer"
    realm = challenge.param("realm") or ""
    accepted(auth.check_realm, realm, registry_scheme="https", url="u")
    try:
        auth.check_realm(realm, registry_scheme="http", url="u")
    except FetchError:
        return  # a fetch asks for a token only at a realm check_realm let through
    scope = challenge.param("scope")
    url = auth.token_url(realm, challenge.param("service"), [scope] if scope else [])
    assert url.startswith(realm)


# -- JSON documents from the network and from helpers -------------------------------------------


TOKEN_URL: Final = "http://127.0.0.1/token"


def check_token_response(body: bytes) -> None:
    for code in (200, 401):
        response = http.Response(code, f"{code:03d}", http.Headers(()), body)
        token = accepted(auth.parse_token_response, response, TOKEN_URL)
        if token is not None:
            value, expires_in = token
            assert isinstance(value, str)
            assert value
            assert 0 < expires_in < float("inf")
        accepted(credentials.parse_oauth_response, response, TOKEN_URL)
        detail = session.registry_error_detail(response.body)
        assert detail == "" or detail.startswith(" (")


def check_helper_output(body: bytes) -> None:
    found = accepted(credentials.parse_helper_output, "docker-credential-x", body)
    if found is None:
        return
    # What a fetch does next with them: a Basic header, or the refresh-token form.
    if found.is_identity_token:
        credentials.identity_token_request("https://127.0.0.1/token", "s", "x", found)
    else:
        base64.b64decode(found.basic(), validate=True)


# -- docker config ------------------------------------------------------------------------------

_CONFIG_TEXT: Final = st.sampled_from(
    ["", "r.example", "u", "p", ":", "\ud800", "\udcff", "é", "a:b", "<token>", "\x00", "/x"]
)
_REGISTRY_KEYS: Final = st.sampled_from(
    [
        "r.example",
        "https://r.example/v1/",
        "r.example:5000",
        "R.EXAMPLE:443",
        "https://index.docker.io/v1/",
        "docker.io",
        "[::1]:5000",
        "http://[::1",
        "",
        "\ud800",
    ]
)
_AUTH_VALUES: Final = st.one_of(
    st.none(),
    _CONFIG_TEXT,
    st.binary(max_size=12).map(lambda raw: base64.b64encode(raw).decode()),
    st.tuples(_CONFIG_TEXT, _CONFIG_TEXT).map(
        lambda pair: base64.b64encode(
            f"{pair[0]}:{pair[1]}".encode("utf-8", "surrogatepass")
        ).decode()
    ),
)
_AUTH_ENTRIES: Final = st.fixed_dictionaries(
    {},
    optional={
        "auth": _AUTH_VALUES,
        "username": _CONFIG_TEXT,
        "password": _CONFIG_TEXT,
        "identitytoken": _CONFIG_TEXT,
        "email": _CONFIG_TEXT,
    },
)
_CONFIG_DOCUMENTS: Final = st.one_of(
    st.fixed_dictionaries(
        {"auths": st.dictionaries(_REGISTRY_KEYS, _AUTH_ENTRIES, max_size=3)},
        optional={
            "credsStore": _CONFIG_TEXT,
            "credHelpers": st.dictionaries(_REGISTRY_KEYS, _CONFIG_TEXT, max_size=2),
        },
    ),
    st.dictionaries(_REGISTRY_KEYS, _AUTH_ENTRIES, max_size=3),  # the old .dockercfg
)
config_texts: Final = st.one_of(
    _CONFIG_DOCUMENTS.map(json.dumps),
    json_texts,
    st.text(max_size=60),
)
_REGISTRIES: Final = [("r.example", None), ("r.example", 5000), ("registry-1.docker.io", 443)]


def check_config(text: str) -> None:
    parsed = accepted(docker_config.parse_auth_config, text)
    if parsed is None:
        return
    for host, port in _REGISTRIES:
        registry = urls.Origin.at(host, port, scheme="https")
        accepted(credentials.credential_helper, parsed, credentials.server_url(registry))
        found = accepted(credentials.auths_credentials, parsed, registry)
        if found is None:
            continue
        # What a fetch does next with them: a Basic header, or the refresh-token form.
        if found.is_identity_token:
            credentials.identity_token_request("https://127.0.0.1/token", "s", "x", found)
        else:
            base64.b64decode(found.basic(), validate=True)


# -- manifests and indexes ----------------------------------------------------------------------

_CONTENT_TYPES: Final = st.one_of(
    st.none(),
    st.sampled_from(
        [
            manifest.OCI_MANIFEST,
            manifest.SCHEMA2,
            manifest.SCHEMA1,
            manifest.SCHEMA1_SIGNED,
            manifest.OCI_INDEX,
            manifest.DOCKER_LIST,
            "application/json",
            "application/json; charset=utf-8",
            f"{manifest.OCI_MANIFEST.upper()} ; q=1",
            "",
            ";",
            "text/html",
            "\x00",
        ]
    ),
    st.text(max_size=30),
)
_WANTED: Final = (
    Platform("linux", "amd64"),
    Platform("linux", "arm64", "v8"),
    Platform("linux", "arm", "v7"),
    Platform("windows", "amd64"),
)


def check_manifest(given: tuple[str | None, bytes]) -> None:
    content_type, body = given
    accepted(manifest.classify, content_type, body)
    accepted(schema1.schema1_payload, body)
    for media_type in (
        manifest.OCI_MANIFEST,
        manifest.SCHEMA2,
        manifest.SCHEMA1,
        manifest.SCHEMA1_SIGNED,
    ):
        parsed = accepted(manifest.parse_image_manifest, media_type, body)
        if parsed is not None:
            for descriptor in manifest.blob_descriptors(parsed):
                # Digests become file names: never a path.
                assert "/" not in str(descriptor.digest)
    for media_type in (manifest.OCI_INDEX, manifest.DOCKER_LIST):
        parsed_index = accepted(index.parse_index, media_type, body)
        if parsed_index is None:
            continue
        for wanted in _WANTED:
            chosen = accepted(index.choose, parsed_index, wanted)
            assert chosen is None or chosen in parsed_index.manifests


manifest_inputs: Final = st.tuples(_CONTENT_TYPES, json_bodies)


# -- URIs ---------------------------------------------------------------------------------------

_URI_PARTS: Final = (
    st.sampled_from(
        [
            "docker",
            "docker-manifest",
            "docker-blob",
            "http",
            "https",
            "file",
            "hdfs",
            "ftp",
            "",
            "DOCKER",
            "1x",
            "docker-",
            "a+b",
        ]
    ),
    st.sampled_from(["://", ":/", ":", ":///"]),
    st.sampled_from(["", "u@", "u:p@", ":@", "@", "u%00@", "\ud800@", "a@b@"]),
    st.sampled_from(
        [
            "127.0.0.1",
            "[::1]",
            "[::1",
            "::1",
            "[]",
            "[fe80::1%eth0]",
            "localhost",
            "",
            "é.ex",
            "ex ample",
            "a..b",
            "-a",
            "a" * 300,
            "١٢٧.0.0.1",
            "[v1.x]",
            "%41",
            "\x00",
        ]
    ),
    st.sampled_from(
        [
            "",
            ":",
            ":5000",
            ":0",
            ":65535",
            ":65536",
            ":-1",
            ":" + "9" * 20,
            ":٥٠٠٠",
            ":+80",
            ": 80",
            ":0x10",
            "::5000",
        ]
    ),
    st.sampled_from(
        ["/lab/app", "/", "", "/a//b", "/../x", "/A", "/a" * 200, "/%2e%2e", "/é", "/a b"]
    ),
    st.sampled_from(
        [
            "",
            "?latest",
            "?",
            "?sha256:" + "a" * 64,
            "?sha256:../x",
            "?a?b",
            "?" + "t" * 200,
            "?\ud800",
            "?@",
        ]
    ),
    st.sampled_from(["", "#http", "#https", "#", "#ftp", "#http#https"]),
)
uri_texts: Final = st.one_of(st.tuples(*_URI_PARTS).map("".join), st.text(max_size=60))


def check_uri(text: str) -> None:
    parsed = accepted(uris.parse_uri, text)
    if parsed is None:
        return
    assert uris.parse_uri(str(parsed)) == parsed
    if parsed.is_docker:
        # The registry of every docker URI is an origin the session can compare.
        origin = urls.Origin.of(uris.registry_base(parsed))
        assert origin == urls.Origin.at(parsed.host or "", parsed.port, scheme=origin.scheme)


# -- image references ---------------------------------------------------------------------------

_REFERENCE_PIECES: Final = st.sampled_from(
    [
        "busybox",
        "library",
        "a",
        "A",
        "-",
        "_",
        "__",
        ".",
        "..",
        "/",
        ":",
        "@",
        "5000",
        "٥",
        "é",
        "localhost",
        "docker.io",
        "[::1]",
        "sha256:" + "a" * 64,
        "sha256:",
        "x" * 130,
        " ",
    ]
)
references: Final = st.one_of(st.lists(_REFERENCE_PIECES, max_size=12).map("".join), st.text())


def check_reference(text: str) -> None:
    parsed = accepted(reference.parse_image_reference, text)
    if parsed is not None:
        accepted(reference.normalize, parsed)
    valid = accepted(reference.validate_reference, text)
    if valid is not None:
        uri = reference.normalize(valid)
        assert uris.parse_uri(str(uri)) == uri
    # The text as a --docker_registry URL.
    accepted(reference.normalize, reference.ImageReference("app"), f"https://{text}")


# -- digests ------------------------------------------------------------------------------------

_DIGEST_PIECES: Final = st.sampled_from(
    [
        "sha256",
        "sha512",
        "sha384",
        "blake3",
        "SHA256",
        "a+b",
        "a..b",
        ":",
        "::",
        "/",
        "..",
        "=",
        "0" * 64,
        "a" * 64,
        "A" * 64,
        "0" * 128,
        "0" * 63,
        "g",
        "-",
        "_",
        "é",
        "\x00",
        "x" * 300,
    ]
)
digests: Final = st.one_of(st.lists(_DIGEST_PIECES, max_size=6).map("".join), st.text())


def check_digest(text: str) -> None:
    parsed = accepted(digest.parse_digest, text)
    if parsed is None:
        return
    # A digest names a file in the target directory: it must be one plain name.
    assert str(parsed) == text
    assert "/" not in text
    assert text not in (".", "..")
    assert "\x00" not in text
    assert len(text) <= digest.MAX_DIGEST_LENGTH
    hasher = accepted(parsed.hasher)
    if hasher is not None:
        hasher.update(b"")
        accepted(parsed.verify, hasher, what="nothing")


TARGETS: Final = (
    Target("http-decoder", http_streams, check_http),
    Target("www-authenticate", challenges, check_challenge),
    Target("token-response", json_bodies, check_token_response),
    Target("helper-output", json_bodies, check_helper_output),
    Target("docker-config", config_texts, check_config),
    Target("manifest-and-index", manifest_inputs, check_manifest),
    Target("uri", uri_texts, check_uri),
    Target("reference", references, check_reference),
    Target("digest", digests, check_digest),
)

_SETTINGS: Final = settings(
    max_examples=150,
    deadline=None,  # a RecursionError unwinding 1000 frames is slow, and allowed to be
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("target", TARGETS, ids=[target.name for target in TARGETS])
@_SETTINGS
@given(data=st.data())
def test_hostile_input_raises_only_fetch_errors(target: Target, data: st.DataObject) -> None:
    target.check(data.draw(target.inputs, label=target.name))


# -- the cases the generators found, pinned -----------------------------------------------------


def check_manifest_body(body: bytes) -> None:
    check_manifest((None, body))


@pytest.mark.parametrize("body", [DEEP_ARRAY.encode(), DEEP_OBJECT.encode()], ids=["[", "{"])
@pytest.mark.parametrize(
    "target",
    [check_token_response, check_helper_output, check_manifest_body],
    ids=["token-and-error-bodies", "helper-output", "manifest-and-index"],
)
def test_json_nested_deeper_than_the_json_module_follows(
    target: Callable[[bytes], None], body: bytes
) -> None:
    # A registry's 404 body, a token endpoint's answer or a helper's stdout nested 3000 deep
    # made json raise RecursionError, which escaped the fetch (and printed a traceback).
    target(body)


@pytest.mark.parametrize(
    "document",
    [
        {"auths": {"r.example": {"username": "\ud800", "password": "p"}}},
        {"auths": {"r.example": {"username": "u", "password": "\udcff"}}},
        {"auths": {"r.example": {"identitytoken": "\ud800"}}},
        {"auths": {"r.example": {"auth": base64.b64encode(b"<token>:\xff").decode()}}},
        {"r.example": {"username": "\ud800", "password": "p"}},
    ],
    ids=["username", "password", "identitytoken", "non-utf8-identity-token", "dockercfg"],
)
def test_credentials_that_are_not_valid_unicode(document: dict[str, Any]) -> None:
    # json.dumps writes a lone surrogate as the escape "\ud800", which json.loads reads back as
    # one; encoding it for a header or a form then raised UnicodeEncodeError mid-fetch.
    check_config(json.dumps(document))


@pytest.mark.parametrize(
    "stdout",
    [b'{"Username": "u", "Secret": "\\ud800"}', b'{"Username": "<token>", "Secret": "\\udcff"}'],
    ids=["secret", "identity-token"],
)
def test_helper_output_that_is_not_valid_unicode(stdout: bytes) -> None:
    check_helper_output(stdout)


@pytest.mark.parametrize(
    "realm",
    ["https://[x/token", "https://[::g]/token", "http://[::1/t"],
    ids=["[", "[::g]", "[::1"],
)
def test_a_realm_urllib_cannot_split(realm: str) -> None:
    # check_realm read the realm's scheme with urlsplit, which raised ValueError on an unclosed
    # or invalid bracket; the registry chooses the realm.
    check_challenge(f'Bearer realm="{realm}",service="s",scope="x"')
    with pytest.raises(FetchError, match="Unsupported token realm"):
        auth.check_realm(realm, registry_scheme="https", url="u")
