"""Images for the real registry: deterministic layers, and images built around them and pushed
(schema 2 or OCI, and signed schema 1)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from .client import Client, Endpoint
from .common import EPOCH, sha256_digest
from .jws import sign_schema1

__all__ = [
    "MEDIA_TYPES",
    "OCI_MANIFEST",
    "SCHEMA1_SIGNED",
    "SCHEMA2",
    "ImageFormat",
    "PushedImage",
    "PushedSchema1",
    "make_layer",
    "push_image",
    "push_schema1_image",
]

SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA2: Final = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
# manifest, config and layer media types of the two image formats push_image builds
MEDIA_TYPES: Final = {
    "schema2": (
        SCHEMA2,
        "application/vnd.docker.container.image.v1+json",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ),
    "oci": (
        OCI_MANIFEST,
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ),
}
# make_layer draws its bytes in pieces of this size, a multiple of 4 (see there).
_RANDOM_PIECE: Final = 64 * 1024 * 1024

ImageFormat = Literal["schema2", "oci"]


@dataclass(frozen=True, slots=True)
class PushedImage:
    """What ``push_image`` put in the registry; bytes are left out of the repr."""

    repo: str
    tag: str
    media_type: str
    platform: str
    manifest: bytes = field(repr=False)
    manifest_digest: str
    config: bytes = field(repr=False)
    config_digest: str
    layer_digests: tuple[str, ...]
    layers: tuple[bytes, ...] = field(repr=False)

    @property
    def blobs(self) -> dict[str, bytes]:
        """Every blob by digest, config first: what a fetch of the image should leave."""
        return {
            self.config_digest: self.config,
            **dict(zip(self.layer_digests, self.layers, strict=True)),
        }


def push_image(
    registry: Endpoint,
    repo: str,
    tag: str,
    layers: Sequence[bytes],
    *,
    media_type: ImageFormat = "schema2",
    platform: str = "linux/amd64",
) -> PushedImage:
    """Push the layers, a config describing them, and a schema 2 or OCI manifest under ``tag``."""
    manifest_type, config_type, layer_type = MEDIA_TYPES[media_type]
    client = Client(registry)
    layer_digests = tuple(client.push_blob(repo, layer) for layer in layers)
    config = _image_config(layers, platform)
    config_digest = client.push_blob(repo, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "size": len(config), "digest": config_digest},
            "layers": [
                {"mediaType": layer_type, "size": len(layer), "digest": digest}
                for layer, digest in zip(layers, layer_digests, strict=True)
            ],
        },
        indent=3,
    ).encode()
    return PushedImage(
        repo=repo,
        tag=tag,
        media_type=manifest_type,
        platform=platform,
        manifest=manifest,
        manifest_digest=client.push_manifest(repo, tag, manifest, manifest_type),
        config=config,
        config_digest=config_digest,
        layer_digests=layer_digests,
        layers=tuple(layers),
    )


@dataclass(frozen=True, slots=True)
class PushedSchema1:
    """A signed schema 1 image as ``push_schema1_image`` stored it."""

    repo: str
    tag: str
    manifest: bytes = field(repr=False)
    manifest_digest: str
    layer_digests: tuple[str, ...]
    layers: tuple[bytes, ...] = field(repr=False)

    @property
    def blobs(self) -> dict[str, bytes]:
        return dict(zip(self.layer_digests, self.layers, strict=True))


def push_schema1_image(
    registry: Endpoint, repo: str, tag: str, layers: Sequence[bytes], *, architecture: str = "amd64"
) -> PushedSchema1:
    """Push the layers and a signed schema 1 manifest (needs ``Registry(schema1=True)``).

    ``manifest_digest`` is what the registry names it by: the sha256 of the payload without
    its signatures, never the sha256 of the bytes served (those are re-signed on every GET).
    """
    client = Client(registry)
    layer_digests = tuple(client.push_blob(repo, layer) for layer in layers)
    ids = [
        hashlib.sha256(f"{repo}:{tag}:{i}:{d}".encode()).hexdigest()
        for i, d in enumerate(layer_digests)
    ]
    history: list[dict[str, str]] = []
    # fsLayers and history run from the top layer down (image manifest v2 schema 1)
    for i in reversed(range(len(layers))):
        v1: dict[str, object] = {"id": ids[i], "created": EPOCH}
        if i > 0:
            v1["parent"] = ids[i - 1]
        if i == len(layers) - 1:
            v1 |= {"architecture": architecture, "os": "linux", "config": {}}
        history.append({"v1Compatibility": json.dumps(v1, separators=(",", ":"))})
    manifest = sign_schema1(
        {
            "schemaVersion": 1,
            "name": repo,
            "tag": tag,
            "architecture": architecture,
            "fsLayers": [{"blobSum": digest} for digest in reversed(layer_digests)],
            "history": history,
        }
    )
    return PushedSchema1(
        repo=repo,
        tag=tag,
        manifest=manifest,
        manifest_digest=client.push_manifest(repo, tag, manifest, SCHEMA1_SIGNED),
        layer_digests=layer_digests,
        layers=tuple(layers),
    )


def _image_config(layers: Sequence[bytes], platform: str) -> bytes:
    os_name, _, rest = platform.partition("/")
    architecture, _, variant = rest.partition("/")
    config: dict[str, object] = {
        "architecture": architecture or "amd64",
        "os": os_name or "linux",
        "created": EPOCH,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [_diff_id(layer) for layer in layers]},
        "history": [
            {"created": EPOCH, "created_by": f"localregistry layer {i}"} for i in range(len(layers))
        ],
    }
    if variant:
        config["variant"] = variant
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _diff_id(layer: bytes) -> str:
    """sha256 of the uncompressed tar; a layer that is not gzip is taken as the tar itself."""
    if not layer.startswith(b"\x1f\x8b"):
        return sha256_digest(layer)
    digest = hashlib.sha256()
    with gzip.GzipFile(fileobj=io.BytesIO(layer)) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def make_layer(seed: int, size: int) -> bytes:
    """A gzip'd tar holding one file of ``size`` incompressible bytes, the same for each seed.

    gzip level 0 (stored blocks): random bytes do not compress anyway, and level 1 would take
    eight times as long on 64 MiB. The blob is a little larger than ``size``: tar pads the
    archive to its 10 KiB record.
    """
    generator = random.Random(seed)
    # randbytes() of 256 MiB or more overflows; pieces whose size is a multiple of 4 bytes
    # concatenate to exactly the bytes one call would give.
    data = b"".join(
        generator.randbytes(min(_RANDOM_PIECE, size - start))
        for start in range(0, size, _RANDOM_PIECE)
    )
    info = tarfile.TarInfo(f"layer-{seed}.bin")
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(data))
    return gzip.compress(tar.getbuffer(), compresslevel=0, mtime=0)
