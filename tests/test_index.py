"""Image indexes and Docker manifest lists: parsing, validation, and choosing an entry."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_uri._docker.descriptor import Descriptor
from mesos_uri._docker.digest import parse_digest
from mesos_uri._docker.index import Index, choose, parse_index
from mesos_uri._docker.manifest import (
    DOCKER_LIST,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    classify,
    is_index,
)
from mesos_uri._docker.platform import Platform, parse_platform
from mesos_uri.errors import DigestError, ManifestError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def sha(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def entry(
    label: str,
    platform: dict[str, Any] | None,
    *,
    media_type: str = OCI_MANIFEST,
    size: int = 1000,
    **extra: Any,
) -> dict[str, Any]:
    fields: dict[str, Any] = {"mediaType": media_type, "digest": sha(label), "size": size}
    if platform is not None:
        fields["platform"] = platform
    return fields | extra


def attestation(label: str, of: str) -> dict[str, Any]:
    """An entry as BuildKit writes provenance next to each image."""
    return entry(
        label,
        {"architecture": "unknown", "os": "unknown"},
        size=566,
        annotations={
            "vnd.docker.reference.digest": sha(of),
            "vnd.docker.reference.type": "attestation-manifest",
        },
    )


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=3).encode()


# What `docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 --push` produces.
BUILDX_INDEX: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": OCI_INDEX,
    "manifests": [
        entry("amd64", {"architecture": "amd64", "os": "linux"}, size=1063),
        entry("arm64", {"architecture": "arm64", "os": "linux", "variant": "v8"}, size=1063),
        entry("arm", {"architecture": "arm", "os": "linux", "variant": "v7"}, size=1063),
        attestation("att-amd64", "amd64"),
        attestation("att-arm64", "arm64"),
        attestation("att-arm", "arm"),
    ],
    "annotations": {"org.opencontainers.image.created": "2024-05-01T10:00:00Z"},
}

# The shape of library/busybox's manifest list on Docker Hub.
DOCKER_MANIFEST_LIST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": DOCKER_LIST,
    "manifests": [
        entry(name, platform, media_type=DOCKER_MANIFEST, size=527)
        for name, platform in [
            ("amd64", {"architecture": "amd64", "os": "linux"}),
            ("arm-v5", {"architecture": "arm", "os": "linux", "variant": "v5"}),
            ("arm-v6", {"architecture": "arm", "os": "linux", "variant": "v6"}),
            ("arm-v7", {"architecture": "arm", "os": "linux", "variant": "v7"}),
            ("arm64", {"architecture": "arm64", "os": "linux", "variant": "v8"}),
            ("386", {"architecture": "386", "os": "linux"}),
            ("ppc64le", {"architecture": "ppc64le", "os": "linux"}),
            ("s390x", {"architecture": "s390x", "os": "linux"}),
        ]
    ],
}

# A multi-OS list as Windows-based images publish them, one entry per Windows build.
WINDOWS_LIST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": DOCKER_LIST,
    "manifests": [
        entry("linux", {"architecture": "amd64", "os": "linux"}, media_type=DOCKER_MANIFEST),
        entry(
            "ltsc2019",
            {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5458"},
            media_type=DOCKER_MANIFEST,
        ),
        entry(
            "ltsc2022",
            {"architecture": "amd64", "os": "windows", "os.version": "10.0.20348.2227"},
            media_type=DOCKER_MANIFEST,
        ),
    ],
}


def chosen_label(document: dict[str, Any], wanted: str) -> str:
    index = parse_index(document["mediaType"], encode(document))
    digest = str(choose(index, parse_platform(wanted)).digest)
    labels = {sha(label): label for label in _LABELS}
    return labels[digest]


_LABELS = [
    *("amd64", "arm64", "arm", "arm-v5", "arm-v6", "arm-v7", "386", "ppc64le", "s390x"),
    *("linux", "ltsc2019", "ltsc2022", "nested", "other"),
]


def test_parse_index_reads_a_buildx_index() -> None:
    body = encode(BUILDX_INDEX)
    index = parse_index(OCI_INDEX, body)
    assert index.media_type == OCI_INDEX
    assert index.annotations == (("org.opencontainers.image.created", "2024-05-01T10:00:00Z"),)
    assert len(index.manifests) == 6
    assert index.manifests[1] == Descriptor(
        media_type=OCI_MANIFEST,
        digest=parse_digest(sha("arm64")),
        size=1063,
        platform=Platform("linux", "arm64", "v8"),
    )
    assert index.manifests[3].annotations == (
        ("vnd.docker.reference.digest", sha("amd64")),
        ("vnd.docker.reference.type", "attestation-manifest"),
    )


def test_parse_index_reads_a_docker_manifest_list() -> None:
    index = parse_index(DOCKER_LIST, encode(DOCKER_MANIFEST_LIST))
    assert index.media_type == DOCKER_LIST
    assert [str(d.platform) for d in index.manifests] == [
        "linux/amd64",
        "linux/arm/v5",
        "linux/arm/v6",
        "linux/arm/v7",
        "linux/arm64/v8",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
    ]
    assert {d.media_type for d in index.manifests} == {DOCKER_MANIFEST}


def test_parse_index_keeps_windows_os_version_and_features() -> None:
    document = {
        "schemaVersion": 2,
        "manifests": [
            entry(
                "ltsc2019",
                {
                    "architecture": "amd64",
                    "os": "windows",
                    "os.version": "10.0.17763.5458",
                    "os.features": ["win32k"],
                },
                urls=["https://mcr.microsoft.com/foreign"],
            )
        ],
    }
    (descriptor,) = parse_index(OCI_INDEX, encode(document)).manifests
    assert descriptor.platform == Platform(
        "windows", "amd64", os_version="10.0.17763.5458", os_features=("win32k",)
    )
    assert descriptor.urls == ("https://mcr.microsoft.com/foreign",)


def test_parse_index_compares_the_content_type_on_its_media_type_only() -> None:
    served = "Application/VND.OCI.Image.Index.v1+json; charset=utf-8"
    assert parse_index(served, encode(BUILDX_INDEX)).media_type == OCI_INDEX


def test_parse_index_treats_null_as_absent_for_optional_fields() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": None,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": sha("amd64"),
                "size": 1000,
                "platform": None,
                "urls": None,
                "annotations": None,
            }
        ],
        "annotations": None,
    }
    index = parse_index(OCI_INDEX, encode(document))
    assert index.manifests == (
        Descriptor(media_type=OCI_MANIFEST, digest=parse_digest(sha("amd64")), size=1000),
    )


def test_parse_index_accepts_an_empty_variant_as_none() -> None:
    document = {
        "schemaVersion": 2,
        "manifests": [entry("amd64", {"os": "linux", "architecture": "amd64", "variant": ""})],
    }
    (descriptor,) = parse_index(OCI_INDEX, encode(document)).manifests
    assert descriptor.platform == Platform("linux", "amd64")


def test_parse_index_accepts_exactly_max_manifest_bytes() -> None:
    body = encode({"schemaVersion": 2, "manifests": []})
    padded = body + b" " * (MAX_MANIFEST_BYTES - len(body))
    assert classify(OCI_INDEX, padded) == OCI_INDEX
    assert parse_index(OCI_INDEX, padded).manifests == ()
    with pytest.raises(ManifestError, match=r"^Manifest is larger than the 4 MiB limit"):
        classify(OCI_INDEX, padded + b" ")


def _with(path: str, value: Any) -> bytes:
    """BUILDX_INDEX with the field at ``path`` (``manifests/0/size``) set, or deleted by ``...``."""
    document = json.loads(json.dumps(BUILDX_INDEX))
    *parents, last = path.split("/")
    target = document
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    slot: int | str = int(last) if isinstance(target, list) else last
    if value is ...:
        del target[slot]
    else:
        target[slot] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"", "JSON parse failed: "),
        (b"{", "JSON parse failed: "),
        (b"\xff\xfe\x00", "JSON parse failed: "),
        (b"[" * 100_000, "JSON parse failed: "),
        (
            b'{"schemaVersion": 2, "manifests": [], "x": ' + b"9" * 5000 + b"}",
            "JSON parse failed: ",
        ),
        (b"[]", "JSON parse failed: Unexpected JSON type parsed"),
        (b'"index"', "JSON parse failed: Unexpected JSON type parsed"),
    ],
    ids=["empty", "truncated", "utf16-garbage", "deeply-nested", "huge-integer", "array", "string"],
)
def test_parse_index_rejects_what_is_not_a_json_object(body: bytes, what: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_index(OCI_INDEX, body)
    assert str(caught.value).startswith(f"Failed to parse the image index: {what}")


@pytest.mark.parametrize(
    ("path", "value", "what"),
    [
        ("schemaVersion", 1, "'schemaVersion' field must be 2"),
        ("schemaVersion", "2", "'schemaVersion' must be a non-negative integer"),
        ("schemaVersion", True, "'schemaVersion' must be a non-negative integer"),
        ("schemaVersion", ..., "Missing required fields: schemaVersion"),
        ("mediaType", DOCKER_LIST, f"'mediaType' field \"{DOCKER_LIST}\" does not match"),
        ("config", {}, "it has 'config' or 'layers': an image manifest, not an index"),
        ("layers", [], "it has 'config' or 'layers': an image manifest, not an index"),
        ("manifests", ..., "Missing required fields: manifests"),
        ("manifests", {}, "'manifests' must be an array of objects, not an object"),
        ("manifests/2", "sha256:00", "'manifests[2]' must be an object"),
        ("manifests/0/mediaType", ..., "Missing required fields: manifests[0].mediaType"),
        ("manifests/0/mediaType", 7, "'manifests[0].mediaType' must be a string, not a number"),
        (
            "manifests/0/mediaType",
            OCI_MANIFEST + "\r\nX-Injected: 1",
            "'manifests[0].mediaType' must be a media type",
        ),
        ("manifests/0/digest", ..., "Missing required fields: manifests[0].digest"),
        ("manifests/0/digest", "sha256:ABC", "'manifests[0].digest': Invalid digest"),
        ("manifests/1/digest", "../../etc/passwd", "'manifests[1].digest': Invalid digest"),
        ("manifests/0/size", ..., "Missing required fields: manifests[0].size"),
        (
            "manifests/0/size",
            -1,
            "'manifests[0].size' must be a non-negative integer, not -1",
        ),
        ("manifests/0/size", "12", "'manifests[0].size' must be a non-negative integer"),
        ("manifests/0/size", 1.5, "'manifests[0].size' must be a non-negative integer"),
        ("manifests/0/size", True, "'manifests[0].size' must be a non-negative integer"),
        (
            "manifests/0/size",
            [1],
            "'manifests[0].size' must be a non-negative integer, not an array",
        ),
        ("manifests/0/urls", "https://x", "'manifests[0].urls' must be an array of strings"),
        ("manifests/0/urls", [1], "'manifests[0].urls[0]' must be a string, not a number"),
        ("manifests/3/annotations", ["a"], "'manifests[3].annotations' must be an object"),
        (
            "manifests/3/annotations",
            {"a": 1},
            "'manifests[3].annotations.a' must be a string, not a number",
        ),
        ("annotations", {"a": None}, "'annotations.a' must be a string, not null"),
        ("manifests/0/platform", "linux/amd64", "'manifests[0].platform' must be an object"),
        ("manifests/0/platform/os", ..., "Missing required fields: manifests[0].platform.os"),
        (
            "manifests/0/platform/architecture",
            64,
            "'manifests[0].platform.architecture' must be a string",
        ),
        (
            "manifests/1/platform/variant",
            8,
            "'manifests[1].platform.variant' must be a string",
        ),
        (
            "manifests/0/platform/os.version",
            10,
            "'manifests[0].platform.os.version' must be a string",
        ),
        (
            "manifests/0/platform/os.features",
            "win32k",
            "'manifests[0].platform.os.features' must be an array of strings",
        ),
    ],
)
def test_parse_index_rejects_malformed_fields(path: str, value: Any, what: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_index(OCI_INDEX, _with(path, value))
    assert str(caught.value).startswith(f"Failed to parse the image index: {what}")


def test_parse_index_chains_the_digest_error() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_index(OCI_INDEX, _with("manifests/0/digest", "sha256:abc"))
    assert isinstance(caught.value.__cause__, DigestError)


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST, "application/json", ""])
def test_parse_index_refuses_a_body_served_as_something_else(media_type: str) -> None:
    with pytest.raises(ManifestError, match="is not an image index media type"):
        parse_index(media_type, encode(BUILDX_INDEX))


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        (OCI_INDEX, True),
        (DOCKER_LIST, True),
        ("application/vnd.oci.image.index.v1+json; charset=utf-8", True),
        (OCI_MANIFEST, False),
        (DOCKER_MANIFEST, False),
    ],
)
def test_is_index(media_type: str, expected: bool) -> None:
    assert is_index(media_type) is expected


@pytest.mark.parametrize(
    ("wanted", "label"),
    [
        ("linux/amd64", "amd64"),
        ("linux/x86_64", "amd64"),
        ("linux/arm64", "arm64"),
        ("linux/arm64/v8", "arm64"),
        ("linux/arm/v7", "arm"),
        ("linux/arm", "arm"),
        ("linux/arm/v8", "arm"),
    ],
)
def test_choose_from_a_buildx_index(wanted: str, label: str) -> None:
    assert chosen_label(BUILDX_INDEX, wanted) == label


@pytest.mark.parametrize(
    ("wanted", "label"),
    [
        ("linux/amd64", "amd64"),
        ("linux/amd64/v3", "amd64"),
        ("linux/386", "386"),
        ("linux/arm64", "arm64"),
        ("linux/arm/v7", "arm-v7"),
        ("linux/arm/v6", "arm-v6"),
        ("linux/arm/v5", "arm-v5"),
        ("linux/ppc64le", "ppc64le"),
        ("linux/s390x", "s390x"),
    ],
)
def test_choose_from_a_docker_manifest_list(wanted: str, label: str) -> None:
    assert chosen_label(DOCKER_MANIFEST_LIST, wanted) == label


def test_choose_ignores_windows_os_version_and_keeps_index_order() -> None:
    assert chosen_label(WINDOWS_LIST, "windows/amd64") == "ltsc2019"
    assert chosen_label(WINDOWS_LIST, "linux/amd64") == "linux"


def test_choose_prefers_the_exact_variant_wherever_it_stands() -> None:
    document = {
        "schemaVersion": 2,
        "manifests": [
            entry("arm-v5", {"architecture": "arm", "os": "linux", "variant": "v5"}),
            entry("arm-v6", {"architecture": "arm", "os": "linux", "variant": "v6"}),
            entry("arm-v7", {"architecture": "arm", "os": "linux", "variant": "v7"}),
        ],
    }
    assert chosen_label(document | {"mediaType": OCI_INDEX}, "linux/arm/v7") == "arm-v7"
    assert chosen_label(document | {"mediaType": OCI_INDEX}, "linux/arm/v6") == "arm-v6"


def test_choose_falls_back_as_containerd_does_when_the_exact_platform_is_missing() -> None:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            entry("amd64", {"architecture": "amd64", "os": "linux"}),
            entry("arm-v6", {"architecture": "arm", "os": "linux", "variant": "v6"}),
            entry("arm-v7", {"architecture": "arm", "os": "linux", "variant": "v7"}),
            entry("386", {"architecture": "386", "os": "linux"}),
        ],
    }
    # arm64 runs 32-bit arm, best variant first; arm/v7 runs v6; amd64 would run 386.
    assert chosen_label(document, "linux/arm64/v8") == "arm-v7"
    assert chosen_label(document, "linux/arm/v7") == "arm-v7"
    assert chosen_label(document, "linux/arm/v6") == "arm-v6"
    document["manifests"] = document["manifests"][1:]
    assert chosen_label(document, "linux/amd64") == "386"


def test_choose_never_picks_attestations_or_unknown_platforms() -> None:
    index = parse_index(OCI_INDEX, encode(BUILDX_INDEX))
    with pytest.raises(ManifestError) as caught:
        choose(index, Platform("unknown", "unknown"))
    assert str(caught.value) == (
        "No manifest for platform 'unknown/unknown' in the image index; "
        "it offers: linux/amd64, linux/arm64/v8, linux/arm/v7"
    )
    labelled = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            entry(
                "other",
                {"architecture": "amd64", "os": "linux"},
                annotations={"vnd.docker.reference.type": "attestation-manifest"},
            ),
            entry("amd64", {"architecture": "amd64", "os": "linux"}),
        ],
    }
    assert chosen_label(labelled, "linux/amd64") == "amd64"


def test_choose_with_no_match_lists_the_offered_platforms() -> None:
    document = {
        "schemaVersion": 2,
        "manifests": [
            entry("amd64", {"architecture": "amd64", "os": "linux"}),
            entry("s390x", {"architecture": "s390x", "os": "linux"}),
            entry("other", {"architecture": "amd64", "os": "linux"}),
            attestation("att-amd64", "amd64"),
            entry("ltsc2019", {"architecture": "amd64", "os": "windows", "os.version": "10.0.1"}),
            entry("ltsc2022", {"architecture": "amd64", "os": "windows", "os.version": "10.0.2"}),
            entry("nested-image", None),
        ],
    }
    index = parse_index(OCI_INDEX, encode(document))
    with pytest.raises(ManifestError) as caught:
        choose(index, parse_platform("linux/arm64/v8"))
    assert str(caught.value) == (
        "No manifest for platform 'linux/arm64/v8' in the image index; "
        "it offers: linux/amd64, linux/s390x, windows/amd64"
    )


def test_choose_from_an_empty_index() -> None:
    index = parse_index(OCI_INDEX, encode({"schemaVersion": 2, "manifests": []}))
    with pytest.raises(
        ManifestError, match=r"^No manifest for platform 'linux/amd64' .*no platforms$"
    ):
        choose(index, Platform("linux", "amd64"))


def test_choose_keeps_the_no_match_message_short_and_on_one_line() -> None:
    entries = [entry(str(n), {"architecture": f"arch{n}", "os": "linux"}) for n in range(30)]
    entries.append(entry("evil", {"architecture": "amd\n64", "os": "linux"}))
    index = parse_index(OCI_INDEX, encode({"schemaVersion": 2, "manifests": entries}))
    with pytest.raises(ManifestError) as caught:
        choose(index, Platform("linux", "riscv64"))
    message = str(caught.value)
    assert "\n" not in message
    assert message.endswith("linux/arch19 and 11 more")


def test_choose_may_pick_a_nested_index_that_names_the_platform() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            entry("amd64", {"architecture": "amd64", "os": "linux"}),
            entry("nested", {"architecture": "arm64", "os": "linux"}, media_type=OCI_INDEX),
        ],
    }
    index = parse_index(OCI_INDEX, encode(document))
    chosen = choose(index, parse_platform("linux/arm64"))
    assert chosen.digest == parse_digest(sha("nested"))
    assert is_index(chosen.media_type)


def test_choose_descends_into_a_platform_less_nested_index_only_as_a_last_resort() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            entry("other", None),
            entry("nested", None, media_type=DOCKER_LIST),
            entry("amd64", {"architecture": "amd64", "os": "linux"}),
        ],
    }
    assert chosen_label(document, "linux/amd64") == "amd64"
    assert chosen_label(document, "linux/arm64") == "nested"


# Hostile input: whatever arrives, the only error is ManifestError.

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.sampled_from([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, sha("x"), "linux", "arm64", "v8"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

_texts = st.text(max_size=8)

_platforms = st.fixed_dictionaries(
    {
        "os": st.sampled_from(["linux", "windows", "unknown", "Linux"]) | _texts,
        "architecture": st.sampled_from(["amd64", "arm64", "arm", "386", "unknown"]) | _texts,
    },
    optional={
        "variant": st.sampled_from(["v5", "v6", "v7", "v8", "v8.2", ""]) | _texts,
        "os.version": _texts,
        "os.features": st.lists(_texts, max_size=2),
    },
)

_entries = st.fixed_dictionaries(
    {
        "mediaType": st.sampled_from([OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST]),
        "digest": _texts.map(sha),
        "size": st.integers(min_value=0, max_value=2**63 - 1),  # an int64
    },
    optional={
        "platform": _platforms,
        "urls": st.lists(_texts, max_size=2),
        "annotations": st.dictionaries(
            st.sampled_from(["vnd.docker.reference.type", "org.example"]),
            st.sampled_from(["attestation-manifest"]) | _texts,
        ),
    },
)

_documents = st.fixed_dictionaries(
    {"schemaVersion": st.just(2), "manifests": st.lists(_entries, max_size=6)},
    optional={"mediaType": st.just(OCI_INDEX), "annotations": st.dictionaries(_texts, _texts)},
)


@st.composite
def _mutated_documents(draw: st.DrawFn) -> Any:
    """A valid index with one field, at any depth, replaced by an arbitrary JSON value."""
    document = draw(_documents)
    target: Any = document
    while True:
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        if not keys:
            return document
        key = draw(st.sampled_from(keys))
        child = target[key]
        if not isinstance(child, (dict, list)) or draw(st.booleans()):
            target[key] = draw(_json_values)
            return document
        target = child


_wanted = st.builds(
    Platform,
    st.sampled_from(["linux", "windows", "unknown"]) | st.text(max_size=6),
    st.sampled_from(["amd64", "arm64", "arm", "unknown"]) | st.text(max_size=6),
    st.none() | st.text(max_size=6),
)


def _parse_and_choose(body: bytes, wanted: Platform) -> None:
    try:
        index = parse_index(OCI_INDEX, body)
    except ManifestError:
        return
    assert isinstance(index, Index)
    try:
        chosen = choose(index, wanted)
    except ManifestError:
        return
    assert chosen in index.manifests


@given(st.binary(max_size=200), _wanted)
def test_arbitrary_bytes_raise_only_manifest_error(body: bytes, wanted: Platform) -> None:
    _parse_and_choose(body, wanted)


@given(_json_values, _wanted)
def test_arbitrary_json_raises_only_manifest_error(document: Any, wanted: Platform) -> None:
    _parse_and_choose(json.dumps(document).encode(), wanted)


@given(_documents, _wanted)
def test_valid_indexes_parse_and_choose_raises_only_manifest_error(
    document: Any, wanted: Platform
) -> None:
    index = parse_index(OCI_INDEX, json.dumps(document).encode())
    assert len(index.manifests) == len(document["manifests"])
    _parse_and_choose(json.dumps(document).encode(), wanted)


@given(_mutated_documents(), _wanted)
def test_mutated_indexes_raise_only_manifest_error(document: Any, wanted: Platform) -> None:
    _parse_and_choose(json.dumps(document).encode(), wanted)
