"""Image indexes and Docker manifest lists: parsing one, and choosing its entry for a platform.

An index names one image manifest per platform (OCI image spec, image-index.md; Docker's manifest
list is the same shape). The original could not read either (SPEC.md §9 row 2); issue #5 has the
fetch choose the entry for the wanted platform and write that manifest as ``DIR/manifest``.

Parsing is strict where a later step relies on a field: digests name files, media types are sent
back in an ``Accept`` header, sizes bound downloads. Unknown fields are ignored, and JSON ``null``
counts as absent for optional fields, as Go's decoder (containerd, distribution) treats them.
"""

from __future__ import annotations

import json
import re
from typing import Final

import attrs

from mesos_uri.docker.descriptor import Descriptor
from mesos_uri.docker.digest import parse_digest
from mesos_uri.docker.platform import Platform, best_match
from mesos_uri.errors import DigestError, ManifestError

__all__ = [
    "DOCKER_LIST",
    "INDEX_MEDIA_TYPES",
    "MAX_INDEX_BYTES",
    "MAX_INDEX_DEPTH",
    "OCI_INDEX",
    "Index",
    "choose",
    "is_index",
    "parse_index",
]

OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_MEDIA_TYPES: Final = frozenset({OCI_INDEX, DOCKER_LIST})

MAX_INDEX_BYTES: Final = 4 * 1024 * 1024  # like containerd
# How many indexes deep the fetch follows an index entry that is itself an index; real
# registries nest at most once, the bound stops an index that (indirectly) names itself.
MAX_INDEX_DEPTH: Final = 4

# BuildKit stores provenance and SBOMs as index entries with this annotation and the platform
# unknown/unknown; they are not images and must never be chosen.
_REFERENCE_TYPE: Final = "vnd.docker.reference.type"
_ATTESTATION: Final = "attestation-manifest"

# RFC 6838 §4.2 type "/" subtype; anything else cannot go back into an Accept header safely.
_MEDIA_TYPE: Final = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)

# The no-match error lists at most this many offered platforms, to stay one readable line.
_MAX_LISTED: Final = 20


@attrs.frozen
class Index:
    """A parsed image index or manifest list; ``raw`` is the exact bytes it was parsed from."""

    media_type: str
    schema_version: int
    manifests: tuple[Descriptor, ...]
    raw: bytes = attrs.field(repr=False)
    annotations: tuple[tuple[str, str], ...] = ()


def is_index(media_type: str) -> bool:
    """Whether a Content-Type or descriptor media type names an index (parameters ignored)."""
    return _media_type_only(media_type) in INDEX_MEDIA_TYPES


def _media_type_only(value: str) -> str:
    # Issue #5: content types compare on the media type alone, case-insensitively.
    return value.split(";", 1)[0].strip().lower()


def _error(what: str) -> ManifestError:
    return ManifestError(f"Failed to parse the image index: {what}")


def parse_index(media_type: str, body: bytes) -> Index:
    """Parse and validate ``body``, served as ``media_type`` (one of ``INDEX_MEDIA_TYPES``)."""
    served = _media_type_only(media_type)
    if served not in INDEX_MEDIA_TYPES:
        raise _error(f"'{media_type}' is not an image index media type")
    if len(body) > MAX_INDEX_BYTES:
        raise _error(f"{len(body)} bytes is more than the {MAX_INDEX_BYTES} allowed")
    try:
        document: object = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and over-long integers; RecursionError deep nesting.
        raise _error(f"JSON parse failed: {exc}") from exc
    if not isinstance(document, dict):
        raise _error("expected a JSON object")

    version = document.get("schemaVersion")
    if type(version) is not int or version != 2:
        raise _error("'schemaVersion' field must be 2")
    declared = document.get("mediaType")
    if declared is not None and declared != served:
        # containerd refuses an index whose mediaType contradicts how it was served.
        raise _error(f"'mediaType' field {_show(declared)} does not match '{served}'")
    if "config" in document or "layers" in document:
        raise _error("it has 'config' or 'layers': an image manifest, not an index")

    entries = document.get("manifests")
    if not isinstance(entries, list):
        raise _error("'manifests' field must be an array")
    manifests = tuple(_descriptor(entry, f"manifests[{i}]") for i, entry in enumerate(entries))
    return Index(
        media_type=served,
        schema_version=version,
        manifests=manifests,
        raw=body,
        annotations=_annotations(document.get("annotations"), "annotations"),
    )


def _descriptor(value: object, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _error(f"'{where}' must be an object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not _MEDIA_TYPE.fullmatch(media_type):
        raise _error(f"'{where}.mediaType' must be a media type, not {_show(media_type)}")
    text = value.get("digest")
    if not isinstance(text, str):
        raise _error(f"'{where}.digest' must be a string")
    try:
        digest = parse_digest(text)
    except DigestError as exc:
        raise _error(f"'{where}.digest': {exc}") from exc
    size = value.get("size")
    if type(size) is not int or size < 0:
        raise _error(f"'{where}.size' must be a non-negative integer, not {_show(size)}")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=_strings(value.get("urls"), f"{where}.urls"),
        platform=_platform(value.get("platform"), f"{where}.platform"),
        annotations=_annotations(value.get("annotations"), f"{where}.annotations"),
    )


def _platform(value: object, where: str) -> Platform | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _error(f"'{where}' must be an object")
    os_name = value.get("os")
    architecture = value.get("architecture")
    if not isinstance(os_name, str):
        raise _error(f"'{where}.os' must be a string")
    if not isinstance(architecture, str):
        raise _error(f"'{where}.architecture' must be a string")
    return Platform(
        os=os_name,
        architecture=architecture,
        variant=_optional_string(value.get("variant"), f"{where}.variant") or None,
        os_version=_optional_string(value.get("os.version"), f"{where}.os.version"),
        os_features=_strings(value.get("os.features"), f"{where}.os.features"),
    )


def _optional_string(value: object, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _error(f"'{where}' must be a string")


def _strings(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _error(f"'{where}' must be an array of strings")
    return tuple(value)


def _annotations(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise _error(f"'{where}' must be an object of strings")
    return tuple(value.items())


def _show(value: object) -> str:
    """A short, one-line rendering of a JSON value for an error message."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _choosable_platform(descriptor: Descriptor) -> Platform | None:
    """The platform ``descriptor`` may be chosen for, or None when it is not a runnable image."""
    platform = descriptor.platform
    if platform is None:
        return None
    if dict(descriptor.annotations).get(_REFERENCE_TYPE) == _ATTESTATION:
        return None
    if platform.os.lower() == "unknown" and platform.architecture.lower() == "unknown":
        return None
    return platform


def choose(index: Index, wanted: Platform) -> Descriptor:
    """The entry of ``index`` to fetch for ``wanted``, as containerd would pick it.

    The entry may itself be an index (see ``is_index``): the caller then fetches it and chooses
    again, at most ``MAX_INDEX_DEPTH`` deep. Entries without a platform are skipped, with one
    exception: when no entry matches, the first platform-less entry that is an index is chosen,
    since the platforms it holds are only known once it is fetched (containerd descends into
    such entries too).
    """
    candidates = [
        (entry, platform)
        for entry in index.manifests
        if (platform := _choosable_platform(entry)) is not None
    ]
    best = best_match(wanted, (platform for _, platform in candidates))
    for entry, platform in candidates:
        # best_match keeps the earliest of equal platforms, so the first equal entry is the one.
        if platform == best:
            return entry
    for entry in index.manifests:
        if entry.platform is None and entry.media_type in INDEX_MEDIA_TYPES:
            return entry
    offered = list(dict.fromkeys(_printable(str(platform)) for _, platform in candidates))
    if not offered:
        listing = " no platforms"
    elif len(offered) > _MAX_LISTED:
        listing = f": {', '.join(offered[:_MAX_LISTED])} and {len(offered) - _MAX_LISTED} more"
    else:
        listing = f": {', '.join(offered)}"
    raise ManifestError(
        f"No manifest for platform '{wanted}' in the image index; it offers{listing}"
    )


def _printable(text: str) -> str:
    # Platform strings come from the server; keep the error on one line whatever they hold.
    return text if text.isprintable() else ascii(text)[1:-1]
