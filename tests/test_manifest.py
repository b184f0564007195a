"""Image manifests: classification, schema 1 / schema 2 / OCI parsing, blobs, schema 1 payload.

The first tests port the original's docker_spec_tests with equivalent fixtures.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_uri._docker.descriptor import Descriptor
from mesos_uri._docker.digest import parse_digest
from mesos_uri._docker.manifest import (
    ACCEPT,
    DOCKER_LIST,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1,
    SCHEMA1_LAYER,
    SCHEMA1_SIGNED,
    SCHEMA2,
    UNKNOWN_SIZE,
    ImageManifest,
    blob_descriptors,
    classify,
    parse_image_manifest,
)
from mesos_uri._docker.schema1 import Schema1Manifest, schema1_payload
from mesos_uri.errors import FetchError, ManifestError

FIXTURES = Path(__file__).parent / "fixtures"

S1_FAILED = "Failed to parse the V2 Schema 1 image manifest: "
S1_INVALID = S1_FAILED + "Docker v2 image manifest validation failed: "
S2_FAILED = "Failed to parse the V2 Schema 2 image manifest: "
S2_INVALID = S2_FAILED + "Docker v2 s2 image manifest validation failed: "
OCI_FAILED = "Failed to parse the OCI image manifest: "

# sha256 of the schema 1 fixture with its signatures cut out (computed when it was made).
SCHEMA1_FIXTURE_DIGEST = "sha256:4c4e01e40708f46b8496e4b02bd42189371d66c2b066b113a44d2f24f4ededb7"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sha(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def schema2_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(fixture("schema2.json"))
    return document


def parse_schema2(document: Any) -> ImageManifest:
    manifest = parse_image_manifest(SCHEMA2, encode(document))
    assert isinstance(manifest, ImageManifest)
    return manifest


def parse_schema1(raw: bytes) -> Schema1Manifest:
    manifest = parse_image_manifest(SCHEMA1_SIGNED, raw)
    assert isinstance(manifest, Schema1Manifest)
    return manifest


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


SIGNATURE: dict[str, Any] = {
    "header": {
        "jwk": {
            "crv": "P-256",
            "kid": "QM3Z:7XNB:TV5W:J4KX:CPWQ:D4YB:2SUU:AMHE:TFMN:AK6O:GVFX:YG5Q",
            "kty": "EC",
            "x": "LXEWQrcmsEQBYnyp-6wy9chTD7GQPMTbAiWHF5IaSIE",
            "y": "ofzkNjhU_4iM_0uOeHXWAMJoI5BBKoz3mzfQsRFIsPo",
        },
        "alg": "ES256",
    },
    "signature": (
        "Y7yXTpEmH3JNhAmpVwHvGDYiMl0MHXlmVtM7UJEqa1oCG3pXecaCKL-kfdzdiE1GR4CApLURA4fbj_56Eo4cig"
    ),
    "protected": (
        "eyJmb3JtYXRMZW5ndGgiOjE5MjIsImZvcm1hdFRhaWwiOiJDbjAiLCJ0aW1lIjoiMjAxNi0wNi0yNFQwODoxMTo1"
        "MloifQ"
    ),
}


def sign(payload: bytes, *, length: int | None = None, tail: bytes | None = None) -> bytes:
    """``payload`` in libtrust's pretty JWS form: signatures spliced in before its closing tail."""
    if tail is None:
        tail = b"\n}"
        assert payload.endswith(tail)
    if length is None:
        length = len(payload) - len(tail)
    header = {"formatLength": length, "formatTail": b64url(tail), "time": "2024-01-01T00:00:00Z"}
    signature = {**SIGNATURE, "protected": b64url(json.dumps(header).encode())}
    return (
        payload[: len(payload) - 2]
        + b',\n   "signatures": '
        + json.dumps([signature], indent=3).encode()
        + b"\n}"
    )


# --- the original's docker_spec_tests, ported ----------------------------------------------------


def test_parse_v2_image_manifest() -> None:
    raw = fixture("schema1_signed.json")
    manifest = parse_schema1(raw)

    assert manifest.name == "library/busybox"
    assert manifest.tag == "latest"
    assert manifest.architecture == "amd64"
    assert [str(blob_sum) for blob_sum in manifest.blob_sums] == [
        sha("empty layer"),
        sha("busybox rootfs"),
        sha("empty layer"),  # the same blob twice is allowed
        sha("base rootfs"),
    ]


def test_parse_invalid_v2_image_manifest() -> None:
    document = {"name": "library/busybox", "tag": "latest", "architecture": "amd64"}
    with pytest.raises(ManifestError) as info:
        parse_image_manifest(SCHEMA1, encode(document))
    assert str(info.value) == S1_FAILED + "Missing required fields: schemaVersion"


def test_validate_v2_image_manifest_fs_layers_non_empty() -> None:
    document = {
        "name": "library/busybox",
        "tag": "latest",
        "architecture": "amd64",
        "schemaVersion": 1,
        "signatures": [SIGNATURE],
    }
    with pytest.raises(ManifestError) as info:
        parse_image_manifest(SCHEMA1_SIGNED, encode(document))
    assert str(info.value) == S1_INVALID + "'fsLayers' field size must be at least one"


def test_validate_v2_image_manifest_signatures_non_empty() -> None:
    # The original's test name says signatures; what fails is the missing history.
    document = {
        "name": "library/busybox",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": sha("base rootfs")}],
        "schemaVersion": 1,
    }
    with pytest.raises(ManifestError) as info:
        parse_image_manifest(SCHEMA1, encode(document))
    assert str(info.value) == S1_INVALID + "'history' field size must be at least one"


def test_parse_v2_2_image_manifest() -> None:
    raw = fixture("schema2.json")
    manifest = parse_image_manifest(SCHEMA2, raw)

    assert isinstance(manifest, ImageManifest)
    assert manifest.media_type == SCHEMA2
    assert manifest.config == Descriptor(
        "application/vnd.docker.container.image.v1+json", parse_digest(sha("config")), 7023
    )
    gzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert manifest.layers == (
        Descriptor(gzip, parse_digest(sha("layer 0")), 2_219_949),
        Descriptor(gzip, parse_digest(sha("layer 1")), 32),
        Descriptor(gzip, parse_digest(sha("layer 2")), 73_109),
    )
    assert manifest.annotations == ()
    assert manifest.artifact_type is None
    assert manifest.subject is None


def test_parse_invalid_v2_2_image_manifest() -> None:
    document = schema2_document()
    del document["schemaVersion"], document["layers"]
    with pytest.raises(ManifestError) as info:
        parse_schema2(document)
    assert str(info.value) == S2_FAILED + "Missing required fields: schemaVersion"


def test_validate_v2_2_image_manifest_layers_non_empty() -> None:
    document = schema2_document()
    del document["layers"]
    with pytest.raises(ManifestError) as info:
        parse_schema2(document)
    assert str(info.value) == S2_INVALID + "'layers' field size must be at least one"


# --- schema 1 beyond the original's tests ------------------------------------------------------


def schema1_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(fixture("schema1_signed.json"))
    return document


def schema1_error(document: Any) -> str:
    with pytest.raises(ManifestError) as info:
        parse_image_manifest(SCHEMA1, encode(document))
    return str(info.value)


def test_schema1_fs_layers_and_history_must_pair_up() -> None:
    document = schema1_document()
    document["history"].pop()
    assert schema1_error(document) == (
        S1_INVALID + "The size of 'fsLayers' should be equal to the size of 'history'"
    )


def test_schema1_blob_sum_must_be_a_digest() -> None:
    document = schema1_document()
    document["fsLayers"][3]["blobSum"] = "sha256:../../etc/passwd"
    message = schema1_error(document)
    assert message.startswith(S1_INVALID + "Incorrect 'blobSum' format: sha256:../../etc/passwd: ")
    assert "Invalid digest 'sha256:../../etc/passwd'" in message


def test_schema1_history_entry_with_a_v1_key_is_accepted() -> None:
    # The original aborted the process here; the key is ignored.
    document = schema1_document()
    document["history"][0]["v1"] = {"id": "not what v1Compatibility says"}
    manifest = parse_image_manifest(SCHEMA1, encode(document))
    assert isinstance(manifest, Schema1Manifest)
    assert len(manifest.blob_sums) == 4


def test_schema1_v1_compatibility_that_is_not_json_is_an_error() -> None:
    document = schema1_document()
    document["history"][2]["v1Compatibility"] = "{not json"
    assert schema1_error(document).startswith(S1_FAILED + "Parsing v1Compatibility JSON failed: ")


def test_schema1_v1_compatibility_fields_are_not_read() -> None:
    # The original read them into a v1 image that nothing uses; a fetch needs only the layers.
    document = schema1_document()
    document["history"][2]["v1Compatibility"] = json.dumps({"id": 7})
    manifest = parse_image_manifest(SCHEMA1, encode(document))
    assert isinstance(manifest, Schema1Manifest)


def test_schema1_v1_compatibility_that_is_not_an_object_is_an_error() -> None:
    document = schema1_document()
    document["history"][1]["v1Compatibility"] = "[1, 2]"
    assert schema1_error(document) == (
        S1_FAILED + "Parsing v1Compatibility JSON failed: Unexpected JSON type parsed"
    )


def test_schema1_signatures_are_checked_where_their_payload_is_cut() -> None:
    # Only the protected header is used (for the digest); the JWS fields around it are not read.
    document = schema1_document()
    del document["signatures"][0]["header"]["alg"]
    assert isinstance(parse_image_manifest(SCHEMA1_SIGNED, encode(document)), Schema1Manifest)
    del document["signatures"][0]["protected"]
    with pytest.raises(ManifestError) as info:
        schema1_payload(encode(document))
    assert str(info.value) == (
        "Failed to extract the schema 1 payload: Missing required fields: signatures[0].protected"
    )


# --- schema 2: the original's conversion rules and validation ------------------------------------


def schema2_error(document: Any) -> str:
    with pytest.raises(ManifestError) as info:
        parse_schema2(document)
    return str(info.value)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (["mediaType"], "mediaType"),
        (["config", "digest"], "config.digest"),
        (["layers", 1, "size"], "layers[1].size"),
    ],
)
def test_a_missing_required_field_is_named_by_its_path(path: list[Any], field: str) -> None:
    document = schema2_document()
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    assert schema2_error(document) == S2_FAILED + f"Missing required fields: {field}"


@pytest.mark.parametrize(
    ("value", "kind"),
    [([{"size": 1}], "an array"), ("config", "a string"), (True, "a boolean"), (1.5, "a number")],
)
def test_a_field_of_the_wrong_json_type_is_named(value: object, kind: str) -> None:
    document = schema2_document()
    document["config"] = value
    assert schema2_error(document) == S2_FAILED + f"'config' must be an object, not {kind}"


def test_a_single_layer_object_is_not_a_list_of_layers() -> None:
    # The original's protobuf conversion took it for a one-element list; JSON says otherwise.
    document = schema2_document()
    document["layers"] = document["layers"][0]
    assert schema2_error(document) == (
        S2_FAILED + "'layers' must be an array of objects, not an object"
    )


def test_null_fields_are_unset() -> None:
    document = schema2_document()
    document["layers"][0]["urls"] = None
    document["config"]["annotations"] = None
    manifest = parse_schema2(document)
    assert manifest.layers[0].urls == ()
    assert manifest.config.annotations == ()
    document["mediaType"] = None
    assert schema2_error(document) == S2_FAILED + "Missing required fields: mediaType"


@pytest.mark.parametrize("size", ["7023", "seven"])
def test_a_size_given_as_a_string_is_an_error(size: str) -> None:
    # The original's protobuf conversion read "7023" as a number; a size is a JSON integer.
    document = schema2_document()
    document["config"]["size"] = size
    assert schema2_error(document) == (
        S2_FAILED + "'config.size' must be a non-negative integer, not a string"
    )


def test_sizes_are_not_wrapped_into_32_bits() -> None:
    document = schema2_document()
    document["layers"][0]["size"] = 5 * 2**30
    assert parse_schema2(document).layers[0].size == 5 * 2**30


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (-1, "-1"),
        (7023.5, "7023.5"),
        (2**63, "9223372036854775808 (more than 2^63-1)"),
        (7023.0, "7023.0"),
    ],
)
def test_a_size_that_counts_no_bytes_is_an_error(size: object, shown: str) -> None:
    # A fraction, even .0, is not a count of bytes (Go's decoders refuse it for an int64 too).
    document = schema2_document()
    document["layers"][2]["size"] = size
    assert schema2_error(document) == (
        S2_FAILED + f"'layers[2].size' must be a non-negative integer, not {shown}"
    )


@pytest.mark.parametrize(
    ("where", "digest"),
    [
        ("config", "sha256:../../etc/passwd"),
        ("layer", "sha256:3EF3BD6C80BD7C673ACC76FDE924749BE5CB8C7553FD17C2C3979F37A754F75B"),
        ("layer", "nocolon"),
        ("config", ""),
    ],
)
def test_digests_must_follow_the_oci_grammar(where: str, digest: str) -> None:
    document = schema2_document()
    if where == "config":
        document["config"]["digest"] = digest
    else:
        document["layers"][1]["digest"] = digest
    message = schema2_error(document)
    assert message.startswith(S2_INVALID + f"Incorrect 'digest' format: {digest}: Invalid digest")


def test_a_huge_digest_is_not_quoted_whole() -> None:
    document = schema2_document()
    document["layers"][1]["digest"] = "sha256:" + "a" * 100_000
    assert len(schema2_error(document)) < 500


def test_schema_version_must_be_2() -> None:
    document = schema2_document()
    document["schemaVersion"] = 3
    assert schema2_error(document) == S2_INVALID + "'schemaVersion' field must be 2"


def test_media_type_must_be_docker_schema_2() -> None:
    document = schema2_document()
    document["mediaType"] = OCI_MANIFEST
    assert schema2_error(document) == (S2_INVALID + f"'mediaType' field must be '{SCHEMA2}'")


def test_validation_runs_in_the_original_order() -> None:
    document = schema2_document()
    document["schemaVersion"] = 1
    document["mediaType"] = "x"
    document["layers"][2]["digest"] = "bad"
    assert schema2_error(document).startswith(S2_INVALID + "Incorrect 'digest' format: bad")


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b'"manifest"', b"\xff\xfe{}", b'{"size": NaN}', b"{} {}"],
)
def test_bodies_that_are_not_a_json_object_are_errors(body: bytes) -> None:
    with pytest.raises(ManifestError) as info:
        parse_image_manifest(SCHEMA2, body)
    assert str(info.value).startswith(S2_FAILED + "JSON parse failed: ")


# --- OCI image manifests -------------------------------------------------------------------------


def oci_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(fixture("oci_manifest.json"))
    return document


def test_oci_manifest_keeps_urls_annotations_artifact_type_and_subject() -> None:
    raw = fixture("oci_manifest.json")
    manifest = parse_image_manifest(OCI_MANIFEST, raw)

    assert isinstance(manifest, ImageManifest)
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.config == Descriptor(
        "application/vnd.oci.image.config.v1+json", parse_digest(sha("oci config")), 581
    )
    assert [str(d.digest) for d in manifest.layers] == [
        sha("oci layer 0"),
        sha("oci foreign layer"),
    ]
    assert manifest.layers[0].annotations == (("org.opencontainers.image.title", "rootfs.tar.gz"),)
    assert manifest.layers[1].urls == (
        "https://foreign.example.com/layers/base.tar.gz",
        "https://mirror.example.org/base.tar.gz",
    )
    assert manifest.annotations == (
        ("org.opencontainers.image.created", "2024-05-01T10:00:00Z"),
        ("org.opencontainers.image.source", "https://git.example.com/busybox"),
    )
    assert manifest.artifact_type == "application/vnd.example.sbom.v1+json"
    assert manifest.subject == Descriptor(OCI_MANIFEST, parse_digest(sha("oci subject")), 1024)


def test_oci_manifest_media_type_may_be_absent() -> None:
    document = oci_document()
    del document["mediaType"]
    manifest = parse_image_manifest(OCI_MANIFEST, encode(document))
    assert isinstance(manifest, ImageManifest)
    assert manifest.media_type == OCI_MANIFEST


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"mediaType": SCHEMA2}, f"'mediaType' field must be '{OCI_MANIFEST}'"),
        ({"schemaVersion": 1}, "'schemaVersion' field must be 2"),
        ({"layers": []}, "'layers' field size must be at least one"),
        (
            {"subject": {"mediaType": OCI_MANIFEST, "digest": "md5:", "size": 1}},
            "Incorrect 'digest' format: md5:: Invalid digest 'md5:'",
        ),
    ],
)
def test_oci_manifest_is_validated_like_schema_2(change: dict[str, Any], problem: str) -> None:
    document = {**oci_document(), **change}
    with pytest.raises(ManifestError) as info:
        parse_image_manifest(OCI_MANIFEST, encode(document))
    assert str(info.value).startswith(
        OCI_FAILED + "OCI image manifest validation failed: " + problem
    )


def test_oci_manifest_annotation_values_must_be_strings() -> None:
    document = oci_document()
    document["annotations"]["org.example.count"] = 3
    with pytest.raises(ManifestError) as info:
        parse_image_manifest(OCI_MANIFEST, encode(document))
    assert str(info.value) == (
        OCI_FAILED + "'annotations.org.example.count' must be a string, not a number"
    )


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_an_index_is_not_parsed_as_an_image_manifest(media_type: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_image_manifest(media_type, b'{"schemaVersion": 2, "manifests": []}')
    assert str(info.value) == f"'{media_type}' is an index of manifests, not an image manifest"


def test_an_unknown_media_type_is_not_parsed() -> None:
    with pytest.raises(ManifestError) as info:
        parse_image_manifest("text/html", fixture("schema2.json"))
    assert str(info.value) == "Unsupported manifest MIME type: text/html"


# --- classification ------------------------------------------------------------------------------


def test_accept_lists_indexes_then_manifests_then_schema_1() -> None:
    assert ACCEPT == (
        "application/vnd.oci.image.index.v1+json,"
        "application/vnd.docker.distribution.manifest.list.v2+json,"
        "application/vnd.oci.image.manifest.v1+json,"
        "application/vnd.docker.distribution.manifest.v2+json,"
        "application/vnd.docker.distribution.manifest.v1+json,"
        "application/vnd.docker.distribution.manifest.v1+prettyjws"
    )


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (SCHEMA2, SCHEMA2),
        (SCHEMA2 + "; charset=utf-8", SCHEMA2),
        ("Application/VND.Docker.Distribution.Manifest.V2+JSON", SCHEMA2),
        (f"  {OCI_MANIFEST} ;charset=UTF-8", OCI_MANIFEST),
        (OCI_INDEX, OCI_INDEX),
        (DOCKER_LIST, DOCKER_LIST),
        (SCHEMA1, SCHEMA1),
        (SCHEMA1_SIGNED + "; charset=utf-8", SCHEMA1_SIGNED),
    ],
)
def test_content_types_compare_on_the_media_type_only(content_type: str, expected: str) -> None:
    # The body does not decide when the Content-Type names a manifest type.
    assert classify(content_type, b"{}") == expected


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "application/json; charset=utf-8", ""]
)
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"schemaVersion": 1, "name": "x", "signatures": [{}]}, SCHEMA1_SIGNED),
        ({"schemaVersion": 1, "name": "x"}, SCHEMA1),
        ({"schemaVersion": 2, "mediaType": SCHEMA2, "layers": []}, SCHEMA2),
        ({"schemaVersion": 2, "mediaType": DOCKER_LIST.upper()}, DOCKER_LIST),
        ({"schemaVersion": 2, "manifests": []}, OCI_INDEX),
        ({"schemaVersion": 2, "config": {}, "layers": []}, OCI_MANIFEST),
    ],
)
def test_without_a_manifest_content_type_the_body_decides(
    content_type: str | None, body: Any, expected: str
) -> None:
    assert classify(content_type, encode(body)) == expected


def test_the_schema_1_fixture_is_classified_as_signed_schema_1() -> None:
    assert classify(None, fixture("schema1_signed.json")) == SCHEMA1_SIGNED


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("text/html", b"{}", "Unsupported manifest MIME type: text/html"),
        (
            "application/vnd.docker.distribution.manifest.v1",
            b"{}",
            "Unsupported manifest MIME type: application/vnd.docker.distribution.manifest.v1",
        ),
        (
            None,
            encode({"schemaVersion": 2, "mediaType": "application/vnd.example+json"}),
            "Unsupported manifest MIME type: application/vnd.example+json",
        ),
        (
            "application/json",
            encode({"schemaVersion": True, "layers": []}),
            "Unsupported manifest MIME type: application/json (neither 'schemaVersion' nor "
            "'mediaType' of the body names a manifest type)",
        ),
        (
            None,
            b"<html>",
            "Unsupported manifest MIME type: (none) (the body is not a JSON object: ",
        ),
    ],
)
def test_unknown_manifest_types_are_errors(
    content_type: str | None, body: bytes, message: str
) -> None:
    with pytest.raises(ManifestError) as info:
        classify(content_type, body)
    assert str(info.value).startswith(message)


def test_manifests_over_4_mib_are_refused() -> None:
    # classify is the gate every manifest response passes before any parser sees it.
    body = b" " * MAX_MANIFEST_BYTES + b"{}"
    expected = f"Manifest is larger than the 4 MiB limit ({MAX_MANIFEST_BYTES + 2} bytes)"
    for content_type in (SCHEMA2, SCHEMA1, OCI_INDEX, "application/json", None):
        with pytest.raises(ManifestError) as info:
            classify(content_type, body)
        assert str(info.value) == expected
    assert classify(SCHEMA2, b" " * (MAX_MANIFEST_BYTES - 2) + b"{}") == SCHEMA2


def test_importing_manifest_loads_neither_schema_1_nor_indexes() -> None:
    # The common path (a schema 2 or OCI manifest) pays for neither.
    code = (
        "import sys, mesos_uri._docker.manifest as m; "
        "print(sorted(n for n in sys.modules if n.startswith('mesos_uri._docker.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    for module in ("schema1", "index", "platform"):
        assert f"mesos_uri._docker.{module}'" not in loaded


# --- blobs to fetch ------------------------------------------------------------------------------


def test_blob_descriptors_are_config_then_layers_without_duplicates() -> None:
    document = schema2_document()
    document["layers"].append(copy.deepcopy(document["layers"][0]))
    document["layers"].append({**document["config"]})
    manifest = parse_schema2(document)
    assert [str(d.digest) for d in blob_descriptors(manifest)] == [
        sha("config"),
        sha("layer 0"),
        sha("layer 1"),
        sha("layer 2"),
    ]
    assert blob_descriptors(manifest)[0] == manifest.config


def test_schema_1_blobs_have_unknown_sizes() -> None:
    manifest = parse_schema1(fixture("schema1_signed.json"))
    assert blob_descriptors(manifest) == [
        Descriptor(SCHEMA1_LAYER, parse_digest(sha("empty layer")), UNKNOWN_SIZE),
        Descriptor(SCHEMA1_LAYER, parse_digest(sha("busybox rootfs")), UNKNOWN_SIZE),
        Descriptor(SCHEMA1_LAYER, parse_digest(sha("base rootfs")), UNKNOWN_SIZE),
    ]


# --- schema 1 payload: what its digest is taken over (the registry's rule) -----------------------


def test_schema1_payload_cuts_the_signatures_out() -> None:
    payload = json.dumps(
        {"schemaVersion": 1, "name": "lab/app", "tag": "v1", "fsLayers": []}, indent=3
    ).encode()
    signed = sign(payload)
    assert b"signatures" in signed
    assert schema1_payload(signed) == payload
    assert (
        hashlib.sha256(schema1_payload(signed)).hexdigest() == hashlib.sha256(payload).hexdigest()
    )


def test_schema1_payload_of_the_fixture_has_its_known_digest() -> None:
    payload = schema1_payload(fixture("schema1_signed.json"))
    assert "sha256:" + hashlib.sha256(payload).hexdigest() == SCHEMA1_FIXTURE_DIGEST


def test_schema1_payload_of_an_unsigned_manifest_is_the_manifest() -> None:
    raw = encode({"schemaVersion": 1, "name": "lab/app"})
    assert schema1_payload(raw) == raw


def test_schema1_payload_must_agree_with_the_signed_document() -> None:
    # A formatTail that closes the payload early hides what follows from the digest.
    payload = json.dumps({"schemaVersion": 1, "name": "lab/app"}, indent=3).encode()
    cut = payload.index(b',\n   "name"')
    signed = sign(payload, length=cut, tail=b"\n}")
    with pytest.raises(ManifestError) as info:
        schema1_payload(signed)
    assert str(info.value) == (
        "Failed to extract the schema 1 payload: the payload differs from the signed document"
    )


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (
            {"formatLength": 10**9, "formatTail": "Cn0"},
            "'signatures[0].protected.formatLength' is longer than the document",
        ),
        (
            {"formatLength": -1, "formatTail": "Cn0"},
            "'signatures[0].protected.formatLength' must be a non-negative integer, not -1",
        ),
        (
            {"formatLength": True, "formatTail": "Cn0"},
            "'signatures[0].protected.formatLength' must be a non-negative integer, not a boolean",
        ),
        ({"formatLength": 5}, "Missing required fields: signatures[0].protected.formatTail"),
        (
            {"formatLength": 5, "formatTail": "Cn0="},
            "'signatures[0].protected.formatTail' is not base64url",
        ),
        (
            {"formatLength": 5, "formatTail": "Cn0Cn"},
            "'signatures[0].protected.formatTail' is not base64url",
        ),
    ],
)
def test_schema1_payload_needs_a_usable_protected_header(
    header: dict[str, Any], problem: str
) -> None:
    document = {"schemaVersion": 1, "signatures": [{"protected": b64url(encode(header))}]}
    with pytest.raises(ManifestError) as info:
        schema1_payload(encode(document))
    assert str(info.value) == "Failed to extract the schema 1 payload: " + problem


def test_schema1_payload_signatures_must_name_the_same_payload() -> None:
    payload = json.dumps({"schemaVersion": 1, "name": "lab/app"}, indent=3).encode()
    document = json.loads(sign(payload))
    other = {"formatLength": 3, "formatTail": "Cn0"}
    document["signatures"].append({"protected": b64url(encode(other))})
    with pytest.raises(ManifestError) as info:
        schema1_payload(encode(document))
    assert str(info.value).endswith("the signatures name different payloads")


# --- robustness: nothing but the package's errors, whatever arrives ----------------------------

MEDIA_TYPES = [SCHEMA1, SCHEMA1_SIGNED, SCHEMA2, OCI_MANIFEST, OCI_INDEX, "text/plain"]
FIELD_NAMES = [
    "schemaVersion",
    "mediaType",
    "config",
    "layers",
    "size",
    "digest",
    "urls",
    "annotations",
    "subject",
    "artifactType",
    "name",
    "tag",
    "architecture",
    "fsLayers",
    "blobSum",
    "history",
    "v1Compatibility",
    "signatures",
    "header",
    "jwk",
    "alg",
    "protected",
    "manifests",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=25,
)


def parse_all_ways(content_type: str | None, body: bytes) -> None:
    for call in (lambda: classify(content_type, body), lambda: schema1_payload(body)):
        with contextlib.suppress(FetchError):
            call()
    for media_type in MEDIA_TYPES:
        try:
            manifest = parse_image_manifest(media_type, body)
        except FetchError:
            continue
        blob_descriptors(manifest)


@settings(max_examples=300)
@given(st.one_of(st.none(), st.sampled_from(MEDIA_TYPES), st.text(max_size=30)), st.binary())
def test_arbitrary_bytes_raise_only_manifest_errors(content_type: str | None, body: bytes) -> None:
    parse_all_ways(content_type, body)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_raises_only_manifest_errors(document: object) -> None:
    parse_all_ways(None, encode(document))


@settings(max_examples=300)
@given(
    st.sampled_from(["schema2.json", "oci_manifest.json", "schema1_signed.json"]),
    st.data(),
)
def test_manifests_with_one_value_replaced_raise_only_manifest_errors(
    name: str, data: st.DataObject
) -> None:
    document = json.loads(fixture(name))
    node = document
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and data.draw(st.booleans()):
            node = child
            continue
        node[key] = data.draw(json_values)
        break
    parse_all_ways(None, encode(document))


def test_deeply_nested_json_is_an_error_not_a_crash() -> None:
    body = b'{"layers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ManifestError):
        parse_image_manifest(SCHEMA2, body)
    with pytest.raises(ManifestError):
        classify(None, body)
