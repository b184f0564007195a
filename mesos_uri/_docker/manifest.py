"""Image manifests: which kind a response is, parsing it from the bytes received, its blobs.

Docker schema 2 (the original's ``v2_2::parse``) and the OCI image manifest, of the same shape,
are parsed here; schema 1 and indexes in modules imported only when one is met.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from mesos_uri._docker import (
    ACCEPT,
    DOCKER_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1,
    SCHEMA1_SIGNED,
    SCHEMA2,
)
from mesos_uri._docker.descriptor import Descriptor, read_descriptor
from mesos_uri._docker.digest import Digest
from mesos_uri._json import Fields, JSONError, parse_object
from mesos_uri.errors import DigestError, ManifestError, excerpt

if TYPE_CHECKING:
    from mesos_uri._docker.schema1 import Schema1Manifest

__all__ = [
    "ACCEPT",
    "DOCKER_LIST",
    "INDEX_MEDIA_TYPES",
    "MAX_MANIFEST_BYTES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "SCHEMA1",
    "SCHEMA1_SIGNED",
    "SCHEMA2",
    "ImageManifest",
    "Schema1Manifest",
    "blob_descriptors",
    "classify",
    "is_index",
    "media_type_of",
    "parse_image_manifest",
]

INDEX_MEDIA_TYPES: Final = frozenset({OCI_INDEX, DOCKER_LIST})

# Schema 1 names no layer type or size: its layers get docker/distribution's type and no size.
SCHEMA1_LAYER: Final = "application/vnd.docker.container.image.rootfs.diff+x-gzip"
UNKNOWN_SIZE: Final = -1

# What containerd and skopeo allow for a manifest or an index; real ones are a few KiB.
MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024

_KNOWN: Final = frozenset({SCHEMA1, SCHEMA1_SIGNED, SCHEMA2, OCI_MANIFEST, *INDEX_MEDIA_TYPES})

# What the original's parse and validation errors call each kind of image manifest.
_PARSED_AS: Final = {
    SCHEMA1: "V2 Schema 1",
    SCHEMA1_SIGNED: "V2 Schema 1",
    SCHEMA2: "V2 Schema 2",
    OCI_MANIFEST: "OCI",
}
_VALIDATED_AS: Final = {SCHEMA2: "Docker v2 s2", OCI_MANIFEST: "OCI"}


@attrs.frozen
class ImageManifest:
    """A Docker schema 2 or OCI image manifest; ``media_type`` is the type it was parsed as (OCI's
    ``mediaType`` is optional). Nothing acts on OCI's ``annotations``, ``artifact_type`` and
    ``subject``."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: tuple[tuple[str, str], ...] = ()
    artifact_type: str | None = None
    subject: Descriptor | None = None


def media_type_of(content_type: str) -> str:
    """A Content-Type's media type as HTTP compares them: parameters dropped, lower-cased."""
    return content_type.split(";", 1)[0].strip().lower()


def is_index(media_type: str) -> bool:
    """Whether a Content-Type or descriptor media type names an index (parameters ignored)."""
    return media_type_of(media_type) in INDEX_MEDIA_TYPES


def _unsupported(media_type: str, why: str = "") -> ManifestError:
    return ManifestError(f"Unsupported manifest MIME type: {excerpt(media_type, 80)}{why}")


def classify(content_type: str | None, body: bytes) -> str:
    """The media type of a manifest response, one of the constants of this module. The original
    compared the Content-Type exactly and took ``application/json`` for schema 1; here a body
    served without a media type or as ``application/json`` is classified by its own fields.
    Every manifest response is classified first, so the size limit is enforced here only."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"Manifest is larger than the {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB limit "
            f"({len(body)} bytes)"
        )
    if content_type is not None:
        media_type = media_type_of(content_type)
        if media_type in _KNOWN:
            return media_type
        if media_type not in ("", "application/json"):
            raise _unsupported(content_type)
    shown = "(none)" if content_type is None else content_type
    try:
        document = parse_object(body)
    except JSONError as exc:
        raise _unsupported(shown, f" (the body is not a JSON object: {exc})") from exc
    version = document.get("schemaVersion")
    declared = document.get("mediaType")
    if type(version) is int and version == 1:
        return SCHEMA1_SIGNED if document.get("signatures") else SCHEMA1
    if isinstance(declared, str):
        if media_type_of(declared) in _KNOWN:
            return media_type_of(declared)
        raise _unsupported(declared)
    # OCI makes mediaType optional; what the document holds tells an index from a manifest.
    if type(version) is int and version == 2 and "manifests" in document:
        return OCI_INDEX
    if type(version) is int and version == 2 and "layers" in document:
        return OCI_MANIFEST
    why = " (neither 'schemaVersion' nor 'mediaType' of the body names a manifest type)"
    raise _unsupported(shown, why)


def parse_image_manifest(media_type: str, body: bytes) -> Schema1Manifest | ImageManifest:
    """Parse and validate an image manifest of ``media_type`` (as :func:`classify` returns);
    errors carry the original's prefixes and name a wrong or missing field by its path."""
    kind = media_type_of(media_type)
    if kind in INDEX_MEDIA_TYPES:
        raise ManifestError(f"'{kind}' is an index of manifests, not an image manifest")
    if kind not in _PARSED_AS:
        raise _unsupported(media_type)
    try:
        try:
            document = parse_object(body)
        except JSONError as exc:
            raise ManifestError(f"JSON parse failed: {exc}") from exc
        if kind in (SCHEMA1, SCHEMA1_SIGNED):
            from mesos_uri._docker.schema1 import parse_schema1

            return parse_schema1(document)
        return _parse_schema2(document, kind)
    except (JSONError, ManifestError) as exc:
        raise ManifestError(
            f"Failed to parse the {_PARSED_AS[kind]} image manifest: {exc}"
        ) from exc


def _parse_schema2(document: Fields, media_type: str) -> ImageManifest:
    """Schema 2 and OCI: the original's rules for schema 2, checked in its order."""
    is_oci = media_type == OCI_MANIFEST
    version = document.count("schemaVersion")
    # Schema 2 requires the field; OCI makes it optional, and checks it when present.
    declared = document.optional_string("mediaType") if is_oci else document.string("mediaType")
    config = document.child("config")
    layers = document.children("layers")
    invalid = f"{_VALIDATED_AS[media_type]} image manifest validation failed: "
    if not layers:
        raise ManifestError(invalid + "'layers' field size must be at least one")
    descriptors = tuple(_descriptor(fields, invalid) for fields in (config, *layers))
    subject = document.optional_child("subject") if is_oci else None
    if version != 2:
        raise ManifestError(invalid + "'schemaVersion' field must be 2")
    if declared is not None and declared != media_type:
        raise ManifestError(invalid + f"'mediaType' field must be '{media_type}'")
    return ImageManifest(
        media_type=media_type,
        config=descriptors[0],
        layers=descriptors[1:],
        annotations=document.string_map("annotations") if is_oci else (),
        artifact_type=document.optional_string("artifactType") if is_oci else None,
        subject=None if subject is None else _descriptor(subject, invalid),
    )


def _descriptor(fields: Fields, invalid: str) -> Descriptor:
    try:
        return read_descriptor(fields)
    except DigestError as exc:
        # The original only required a ':'; the digest names a file, so the grammar is checked.
        text = excerpt(fields.string("digest"), 80)
        raise ManifestError(invalid + f"Incorrect 'digest' format: {text}: {exc}") from exc


def blob_descriptors(manifest: Schema1Manifest | ImageManifest) -> list[Descriptor]:
    """The blobs to fetch for ``manifest``: config first, then layers in order, each digest once."""
    if isinstance(manifest, ImageManifest):
        candidates = [manifest.config, *manifest.layers]
    else:
        candidates = [Descriptor(SCHEMA1_LAYER, blob, UNKNOWN_SIZE) for blob in manifest.blob_sums]
    unique: dict[Digest, Descriptor] = {}
    for descriptor in candidates:
        unique.setdefault(descriptor.digest, descriptor)
    return list(unique.values())
