"""Content descriptors: what a manifest or index says about a blob or a child manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from mesos_uri._docker.digest import Digest, parse_digest
from mesos_uri._json import Fields

if TYPE_CHECKING:  # platforms are read only when an index is met
    from mesos_uri._docker.platform import Platform

__all__ = ["Descriptor", "read_descriptor"]


@attrs.frozen
class Descriptor:
    """A typed pointer to content by digest (OCI image spec, descriptor.md); a download stops
    once it exceeds ``size``; ``urls`` are the foreign locations of a non-distributable layer."""

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()


def read_descriptor(fields: Fields, *, platform: Platform | None = None) -> Descriptor:
    """The descriptor a manifest or index entry holds. Every field is read before the digest is
    checked: a field of the wrong type is a ``JSONError``, and only a well-typed but malformed
    digest a ``DigestError``, which manifests report at a different stage."""
    media_type = fields.string("mediaType")
    size = fields.count("size")
    text = fields.string("digest")
    urls = fields.strings("urls")
    annotations = fields.string_map("annotations")
    return Descriptor(media_type, parse_digest(text), size, urls, platform, annotations)
