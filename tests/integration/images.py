"""Multi-platform images for the tests: image manifests, indexes and foreign layers, built in
memory and then pushed to a real registry (:func:`push`) or handed to the fault server
(:func:`serve`), so both serve the very same bytes.

:func:`tests.support.push_image` pushes one single-platform image under a tag; an index needs its
children pushed by digest first and its own descriptors written around them, which is what this
module adds. Everything is deterministic: the same arguments give the same digests in every run.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from tests.support import (
    MEDIA_TYPES,
    Endpoint,
    ImageFormat,
    make_layer,
    push_blob,
    push_manifest,
)
from tests.support.faults import FaultServer

__all__ = [
    "DOCKER_LIST",
    "FOREIGN_LAYER_TYPES",
    "OCI_INDEX",
    "Image",
    "Index",
    "build_image",
    "build_index",
    "make_layers",
    "platform_fields",
    "push",
    "serve",
    "sha256",
]

OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
# The layer types that may carry ``urls`` and that a registry accepts without the blob.
FOREIGN_LAYER_TYPES: Final = {
    "schema2": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "oci": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}
# A fixed creation time keeps configs, and so digests, the same from run to run.
_EPOCH: Final = "1970-01-01T00:00:00Z"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    """One image manifest for one platform, its config and its layers, as bytes."""

    platform: str
    media_type: str
    manifest: bytes = field(repr=False)
    config: bytes = field(repr=False)
    layers: tuple[bytes, ...] = field(repr=False)
    # Digests of the layers a registry does not hold: fetched from their ``urls`` instead.
    foreign: frozenset[str] = frozenset()

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def config_digest(self) -> str:
        return sha256(self.config)

    @property
    def layer_digests(self) -> tuple[str, ...]:
        return tuple(sha256(layer) for layer in self.layers)

    @property
    def blobs(self) -> dict[str, bytes]:
        """Every blob by digest, config first: the files a fetch must leave besides manifest."""
        return {self.config_digest: self.config, **{sha256(layer): layer for layer in self.layers}}


@dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list, and what its entries point at."""

    media_type: str
    body: bytes = field(repr=False)
    children: tuple[Image | Index, ...]

    @property
    def digest(self) -> str:
        return sha256(self.body)

    def image(self, platform: str) -> Image:
        """The child image pushed for ``platform`` (``os/arch[/variant]``), nested ones too."""
        for child in self.children:
            if isinstance(child, Image) and child.platform == platform:
                return child
            if isinstance(child, Index):
                try:
                    return child.image(platform)
                except KeyError:
                    pass
        raise KeyError(platform)


def make_layers(seed: str, count: int, size: int = 4096) -> list[bytes]:
    """``count`` distinct gzip'd tar layers, the same for the same ``seed`` text."""
    base = zlib.crc32(seed.encode())
    return [make_layer(base + i, size) for i in range(count)]


def platform_fields(platform: str) -> dict[str, str]:
    """``linux/arm64/v8`` as the ``os``/``architecture``/``variant`` fields of JSON."""
    os_name, architecture, *variant = platform.split("/")
    fields = {"architecture": architecture, "os": os_name}
    if variant:
        fields["variant"] = variant[0]
    return fields


def _diff_id(layer: bytes) -> str:
    return sha256(gzip.decompress(layer))


def build_image(
    platform: str,
    layers: Sequence[bytes],
    *,
    image_format: ImageFormat = "oci",
    foreign_urls: Mapping[int, Sequence[str]] | None = None,
    media_type_field: bool = True,
) -> Image:
    """An image of ``layers`` for ``platform``; ``foreign_urls`` maps a layer's position to the
    URLs it is to be fetched from (it becomes a non-distributable layer the registry lacks).
    ``media_type_field=False`` leaves ``mediaType`` out of an OCI manifest, as the OCI spec allows.
    """
    manifest_type, config_type, layer_type = MEDIA_TYPES[image_format]
    urls = dict(foreign_urls or {})
    config = json.dumps(
        {
            **platform_fields(platform),
            "config": {},
            "created": _EPOCH,
            "rootfs": {"type": "layers", "diff_ids": [_diff_id(layer) for layer in layers]},
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    descriptors: list[dict[str, object]] = []
    for position, layer in enumerate(layers):
        descriptor: dict[str, object] = {
            "mediaType": layer_type,
            "size": len(layer),
            "digest": sha256(layer),
        }
        if position in urls:
            descriptor["mediaType"] = FOREIGN_LAYER_TYPES[image_format]
            descriptor["urls"] = list(urls[position])
        descriptors.append(descriptor)
    document: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "size": len(config), "digest": sha256(config)},
        "layers": descriptors,
    }
    if not media_type_field:
        if image_format != "oci":
            raise ValueError("only an OCI manifest may leave out its mediaType")
        del document["mediaType"]
    manifest = json.dumps(document, indent=3).encode()
    return Image(
        platform=platform,
        media_type=manifest_type,
        manifest=manifest,
        config=config,
        layers=tuple(layers),
        foreign=frozenset(sha256(layers[position]) for position in urls),
    )


def build_index(
    children: Sequence[Image | Index],
    *,
    media_type: str = OCI_INDEX,
    media_type_field: bool = True,
) -> Index:
    """An index of ``children``: images with their platform, indexes without one (a client
    learns the platforms of a nested index only by fetching it). ``media_type_field=False``
    leaves ``mediaType`` out of an OCI index, as the OCI spec allows."""
    entries: list[dict[str, object]] = []
    for child in children:
        if isinstance(child, Image):
            entry: dict[str, object] = {
                "mediaType": child.media_type,
                "size": len(child.manifest),
                "digest": child.digest,
                "platform": platform_fields(child.platform),
            }
        else:
            entry = {"mediaType": child.media_type, "size": len(child.body), "digest": child.digest}
        entries.append(entry)
    document: dict[str, object] = {"schemaVersion": 2, "mediaType": media_type}
    if not media_type_field:
        if media_type != OCI_INDEX:
            raise ValueError("only an OCI index may leave out its mediaType")
        del document["mediaType"]
    body = json.dumps({**document, "manifests": entries}, indent=3).encode()
    return Index(media_type=media_type, body=body, children=tuple(children))


def push(registry: Endpoint, repo: str, reference: str, content: Image | Index) -> str:
    """Push ``content`` to ``repo`` under ``reference`` (a tag or its digest): blobs first
    (foreign layers left out), an index's children by digest before the index itself."""
    if isinstance(content, Image):
        for digest, blob in content.blobs.items():
            if digest not in content.foreign:
                push_blob(registry, repo, blob)
        body, media_type = content.manifest, content.media_type
    else:
        for child in content.children:
            push(registry, repo, child.digest, child)
        body, media_type = content.body, content.media_type
    digest = push_manifest(registry, repo, reference, body, media_type)
    if digest != sha256(body):
        raise AssertionError(f"the registry stored {digest} for a manifest of {sha256(body)}")
    return digest


def serve(
    server: FaultServer, repo: str, content: Image | Index, *, tags: Sequence[str] = ("latest",)
) -> None:
    """Have the fault server hold ``content`` as a registry would: under ``tags`` and its
    digest, an index's children under their digests, every blob but the foreign ones."""
    if isinstance(content, Image):
        blobs = {d: b for d, b in content.blobs.items() if d not in content.foreign}
        server.registry(repo, content.manifest, content.media_type, blobs, tags=tags)
        return
    for child in content.children:
        serve(server, repo, child, tags=())
    server.registry(repo, content.body, content.media_type, tags=tags)
