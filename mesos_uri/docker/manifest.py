"""Image manifests: which kind a response is, parsing it from the bytes received, its blobs.

Three kinds of image manifest are parsed: Docker schema 1 (see :mod:`mesos_uri.docker.schema1`),
Docker schema 2 (the original's ``v2_2::parse``, SPEC.md §6.4) and the OCI image manifest, which
has the shape of schema 2 (issue #5). Indexes and manifest lists are classified here but parsed
in :mod:`mesos_uri.docker.index`.
"""

from __future__ import annotations

from typing import Final

import attrs

from mesos_uri.docker.descriptor import Descriptor
from mesos_uri.docker.digest import Digest, parse_digest
from mesos_uri.docker.jsonproto import (
    Kind,
    Message,
    ProtoError,
    Record,
    convert,
    message,
    optional,
    parse_object,
    repeated,
    required,
    shorten,
)
from mesos_uri.docker.schema1 import (
    Schema1Manifest,
    V1Image,
    parse_schema1,
    parse_v1_image,
    schema1_payload,
)
from mesos_uri.errors import DigestError, ManifestError

__all__ = [
    "ACCEPT",
    "DOCKER_LIST",
    "MAX_MANIFEST_BYTES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "SCHEMA1",
    "SCHEMA1_LAYER",
    "SCHEMA1_SIGNED",
    "SCHEMA2",
    "UNKNOWN_SIZE",
    "ImageManifest",
    "Schema1Manifest",
    "V1Image",
    "blob_descriptors",
    "check_size",
    "classify",
    "media_type_of",
    "parse_image_manifest",
    "parse_v1_image",
    "schema1_payload",
]

SCHEMA1: Final = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA2: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"

# What docker/distribution's schema 1 References() calls a layer: schema 1 names no type.
SCHEMA1_LAYER: Final = "application/vnd.docker.container.image.rootfs.diff+x-gzip"

# Descriptor.size of a schema 1 layer: schema 1 does not declare sizes.
UNKNOWN_SIZE: Final = -1

# Preference order of issue #5: indexes first so that the registry never converts or picks a
# platform for us (REGISTRY-NOTES.md), then single manifests, schema 1 last.
ACCEPT: Final = ",".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, SCHEMA2, SCHEMA1, SCHEMA1_SIGNED))

# What containerd and skopeo allow; real manifests are a few KiB.
MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024

_KNOWN: Final = frozenset({SCHEMA1, SCHEMA1_SIGNED, SCHEMA2, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX})


@attrs.frozen
class ImageManifest:
    """A Docker schema 2 or OCI image manifest, with the exact bytes it was parsed from.

    ``media_type`` is the manifest's ``mediaType``, or the type it was parsed as when the field
    is absent (OCI makes it optional). ``annotations``, ``artifact_type`` and ``subject`` are
    OCI's; they are kept, and nothing here acts on them.
    """

    media_type: str
    schema_version: int
    config: Descriptor
    layers: tuple[Descriptor, ...]
    raw: bytes = attrs.field(repr=False)
    annotations: tuple[tuple[str, str], ...] = ()
    artifact_type: str | None = None
    subject: Descriptor | None = None


_DESCRIPTOR: Final = message(
    required("mediaType"),
    required("size", Kind.NUMBER),
    required("digest"),
    repeated("urls"),
    optional("annotations", Kind.MAP),
)

_SCHEMA2: Final = message(
    required("schemaVersion", Kind.NUMBER),
    required("mediaType"),
    required("config", Kind.MESSAGE, _DESCRIPTOR),
    repeated("layers", Kind.MESSAGE, _DESCRIPTOR),
)

_OCI_MANIFEST: Final = message(
    required("schemaVersion", Kind.NUMBER),
    "mediaType",
    required("config", Kind.MESSAGE, _DESCRIPTOR),
    repeated("layers", Kind.MESSAGE, _DESCRIPTOR),
    optional("annotations", Kind.MAP),
    "artifactType",
    optional("subject", Kind.MESSAGE, _DESCRIPTOR),
)


def media_type_of(content_type: str) -> str:
    """The media type of a Content-Type value: parameters dropped, lower-cased (RFC 9110 §8.3.1)."""
    return content_type.split(";", 1)[0].strip().lower()


def check_size(body: bytes) -> None:
    """Refuse a manifest larger than :data:`MAX_MANIFEST_BYTES`."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"Manifest is larger than the {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB limit "
            f"({len(body)} bytes)"
        )


def classify(content_type: str | None, body: bytes) -> str:
    """The media type of a manifest response, one of the constants of this module.

    The original compared the Content-Type exactly and took ``application/json`` for schema 1
    (SPEC.md §6.2). Here only the media type counts, in any case; a body served without a
    Content-Type or as ``application/json`` is classified by its own ``schemaVersion`` and
    ``mediaType`` fields.
    """
    check_size(body)
    if content_type is not None:
        media_type = media_type_of(content_type)
        if media_type in _KNOWN:
            return media_type
        if media_type not in ("", "application/json"):
            raise ManifestError(f"Unsupported manifest MIME type: {shorten(content_type)}")
    return _sniff(content_type, body)


def _sniff(content_type: str | None, body: bytes) -> str:
    shown = "(none)" if content_type is None else shorten(content_type)
    try:
        document = parse_object(body)
    except ProtoError as exc:
        raise ManifestError(
            f"Unsupported manifest MIME type: {shown} (the body is not a JSON object: {exc})"
        ) from exc
    version = document.get("schemaVersion")
    declared = document.get("mediaType")
    if _is_int(version, 1):
        return SCHEMA1_SIGNED if document.get("signatures") else SCHEMA1
    if isinstance(declared, str):
        media_type = media_type_of(declared)
        if media_type in _KNOWN:
            return media_type
        raise ManifestError(f"Unsupported manifest MIME type: {shorten(declared)}")
    if _is_int(version, 2):
        # OCI makes mediaType optional; what the document holds tells an index from a manifest.
        if "manifests" in document:
            return OCI_INDEX
        if "layers" in document:
            return OCI_MANIFEST
    raise ManifestError(
        f"Unsupported manifest MIME type: {shown} (neither 'schemaVersion' nor 'mediaType' of "
        "the body names a manifest type)"
    )


def _is_int(value: object, expected: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == expected


def parse_image_manifest(media_type: str, body: bytes) -> Schema1Manifest | ImageManifest:
    """Parse and validate an image manifest of ``media_type`` (as :func:`classify` returns).

    Error texts carry the original's prefixes ("Failed to parse the V2 Schema 2 image manifest:
    ..."), the OCI manifest its own.
    """
    check_size(body)
    kind = media_type_of(media_type)
    if kind in (SCHEMA1, SCHEMA1_SIGNED):
        try:
            return parse_schema1(body)
        except ManifestError as exc:
            raise ManifestError(f"Failed to parse the V2 Schema 1 image manifest: {exc}") from exc
    if kind == SCHEMA2:
        try:
            return _parse_schema2(body, _SCHEMA2, SCHEMA2, "Docker v2 s2 image manifest")
        except ManifestError as exc:
            raise ManifestError(f"Failed to parse the V2 Schema 2 image manifest: {exc}") from exc
    if kind == OCI_MANIFEST:
        try:
            return _parse_schema2(body, _OCI_MANIFEST, OCI_MANIFEST, "OCI image manifest")
        except ManifestError as exc:
            raise ManifestError(f"Failed to parse the OCI image manifest: {exc}") from exc
    if kind in (OCI_INDEX, DOCKER_LIST):
        raise ManifestError(f"'{kind}' is an index of manifests, not an image manifest")
    raise ManifestError(f"Unsupported manifest MIME type: {shorten(media_type)}")


def _parse_schema2(body: bytes, spec: Message, media_type: str, what: str) -> ImageManifest:
    """Schema 2 and OCI: the rules and texts of SPEC.md §6.4, in its order."""
    try:
        document = parse_object(body)
    except ProtoError as exc:
        raise ManifestError(f"JSON parse failed: {exc}") from exc
    try:
        record = convert(document, spec)
    except ProtoError as exc:
        raise ManifestError(f"Protobuf parse failed: {exc}") from exc

    invalid = f"{what} validation failed: "
    layers = record.children("layers")
    if not layers:
        raise ManifestError(invalid + "'layers' field size must be at least one")
    config = _descriptor(record.child("config"), invalid)
    descriptors = tuple(_descriptor(layer, invalid) for layer in layers)
    subject = record.optional_child("subject")
    if record.number("schemaVersion") != 2:
        raise ManifestError(invalid + "'schemaVersion' field must be 2")
    declared = record.optional_text("mediaType")
    # Schema 2 requires the field (a required field above); OCI only checks it when present.
    if declared is not None and declared != media_type:
        raise ManifestError(invalid + f"'mediaType' field must be '{media_type}'")

    return ImageManifest(
        media_type=media_type,
        schema_version=2,
        config=config,
        layers=descriptors,
        raw=body,
        annotations=record.pairs("annotations"),
        artifact_type=record.optional_text("artifactType"),
        subject=None if subject is None else _descriptor(subject, invalid),
    )


def _descriptor(record: Record, invalid: str) -> Descriptor:
    text = record.text("digest")
    try:
        digest = parse_digest(text)
    except DigestError as exc:
        # The original only required a ':'; the digest names a file, so the grammar is checked.
        raise ManifestError(invalid + f"Incorrect 'digest' format: {shorten(text)}: {exc}") from exc
    return Descriptor(
        media_type=record.text("mediaType"),
        digest=digest,
        size=record.number("size"),
        urls=record.texts("urls"),
        annotations=record.pairs("annotations"),
    )


def blob_descriptors(manifest: Schema1Manifest | ImageManifest) -> list[Descriptor]:
    """The blobs to fetch for ``manifest``: config first, then layers in order, each digest once.

    Schema 1 declares neither sizes nor types: its layers get :data:`UNKNOWN_SIZE` and
    :data:`SCHEMA1_LAYER`.
    """
    if isinstance(manifest, Schema1Manifest):
        candidates = [
            Descriptor(SCHEMA1_LAYER, layer.blob_sum, UNKNOWN_SIZE) for layer in manifest.fs_layers
        ]
    else:
        candidates = [manifest.config, *manifest.layers]
    seen: set[Digest] = set()
    unique = []
    for descriptor in candidates:
        if descriptor.digest not in seen:
            seen.add(descriptor.digest)
            unique.append(descriptor)
    return unique
