"""Content descriptors: what a manifest or index says about a blob or a child manifest."""

from __future__ import annotations

import attrs

from mesos_uri.docker.digest import Digest
from mesos_uri.docker.platform import Platform

__all__ = ["Descriptor"]


@attrs.frozen
class Descriptor:
    """A typed pointer to content by digest (OCI image spec, descriptor.md).

    ``size`` is what the manifest declares; a download is stopped once it exceeds it. ``urls`` are
    the foreign locations of a non-distributable layer.
    """

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()
