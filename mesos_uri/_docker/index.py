"""Image indexes and Docker manifest lists: parsing one, and choosing its entry for a platform.

The original could read neither (OCI image spec, image-index.md). Parsing is strict where a later
step relies on a field: digests name files, media types say which entry is an index, sizes bound
downloads. Unknown fields are ignored, and ``null`` is an absent optional field, as Go's decoder
(containerd, distribution) has it.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from mesos_uri._docker.descriptor import Descriptor, read_descriptor
from mesos_uri._docker.manifest import INDEX_MEDIA_TYPES, is_index, media_type_of
from mesos_uri._docker.platform import Platform, best_match
from mesos_uri._json import Fields, JSONError, parse_object
from mesos_uri.errors import DigestError, ManifestError, excerpt

__all__ = ["Index", "choose", "parse_index"]

# BuildKit stores provenance and SBOMs as index entries with this annotation and the platform
# unknown/unknown; they are not images and must never be chosen.
_REFERENCE_TYPE: Final = "vnd.docker.reference.type"
_ATTESTATION: Final = "attestation-manifest"

# RFC 6838 type "/" subtype: an entry's media type must at least have the form of one.
_RESTRICTED_NAME: Final = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE: Final = re.compile(f"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}")

# The no-match error lists at most this many offered platforms, to stay one readable line.
_MAX_LISTED: Final = 20


@attrs.frozen
class Index:
    """A parsed image index or manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: tuple[tuple[str, str], ...] = ()


def _error(what: str) -> ManifestError:
    return ManifestError(f"Failed to parse the image index: {what}")


def parse_index(media_type: str, body: bytes) -> Index:
    """Parse and validate ``body``, served as ``media_type`` (an index) and sized by classify."""
    served = media_type_of(media_type)
    if served not in INDEX_MEDIA_TYPES:
        raise _error(f"'{excerpt(media_type, 80)}' is not an image index media type")
    try:
        document = parse_object(body)
    except JSONError as exc:
        raise _error(f"JSON parse failed: {exc}") from exc
    try:
        if document.count("schemaVersion") != 2:
            raise _error("'schemaVersion' field must be 2")
        declared = document.optional_string("mediaType")
        if declared is not None and declared != served:
            # containerd refuses an index whose mediaType contradicts how it was served.
            raise _error(f"'mediaType' field \"{excerpt(declared, 80)}\" does not match '{served}'")
        if "config" in document or "layers" in document:
            raise _error("it has 'config' or 'layers': an image manifest, not an index")
        entries = document.children("manifests", required=True)
        return Index(
            media_type=served,
            manifests=tuple(_entry(entry) for entry in entries),
            annotations=document.string_map("annotations"),
        )
    except JSONError as exc:
        raise _error(str(exc)) from exc


def _entry(fields: Fields) -> Descriptor:
    media_type = fields.string("mediaType")
    if not _MEDIA_TYPE.fullmatch(media_type):
        raise _error(
            f"'{fields.path}.mediaType' must be a media type, not '{excerpt(media_type, 80)}'"
        )
    platform = fields.optional_child("platform")
    try:
        return read_descriptor(fields, platform=None if platform is None else _platform(platform))
    except DigestError as exc:
        raise _error(f"'{fields.path}.digest': {exc}") from exc


def _platform(fields: Fields) -> Platform:
    return Platform(
        os=fields.string("os"),
        architecture=fields.string("architecture"),
        variant=fields.optional_string("variant") or None,
        os_version=fields.optional_string("os.version"),
        os_features=fields.strings("os.features"),
    )


def _choosable_platform(descriptor: Descriptor) -> Platform | None:
    """The platform ``descriptor`` may be chosen for, or None when it is not a runnable image."""
    platform = descriptor.platform
    if platform is None or dict(descriptor.annotations).get(_REFERENCE_TYPE) == _ATTESTATION:
        return None
    unknown = platform.os.lower() == "unknown" and platform.architecture.lower() == "unknown"
    return None if unknown else platform


def choose(index: Index, wanted: Platform) -> Descriptor:
    """The entry of ``index`` to fetch for ``wanted``, as containerd would pick it; else the first
    index without a platform, whose platforms are known once it is fetched (as containerd)."""
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
        if entry.platform is None and is_index(entry.media_type):
            return entry
    offered = list(dict.fromkeys(_printable(str(platform)) for _, platform in candidates))
    more = f" and {len(offered) - _MAX_LISTED} more" if len(offered) > _MAX_LISTED else ""
    listing = f": {', '.join(offered[:_MAX_LISTED])}{more}" if offered else " no platforms"
    raise ManifestError(
        f"No manifest for platform '{wanted}' in the image index; it offers{listing}"
    )


def _printable(text: str) -> str:
    # Platform strings come from the server; keep the error on one line whatever they hold.
    return text if text.isprintable() else ascii(text)[1:-1]
