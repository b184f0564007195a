"""OCI images as a fault server holds them: built in memory, handed to :meth:`FaultServer.serve`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from ..common import sha256_digest
from .exchange import blob_path, manifest_path

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"


def descriptor(data: bytes, media_type: str = OCI_LAYER, **extra: object) -> dict[str, object]:
    """The OCI descriptor of ``data``; ``extra`` fields (``urls``, or a ``digest`` or ``size``
    that lies) are added or override."""
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


@attrs.frozen
class Image:
    """An OCI image: the manifest bytes, and the blobs (by digest) the registry holds for it."""

    repository: str
    manifest: bytes
    blobs: Mapping[str, bytes] = attrs.field(eq=False, repr=False)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def declared(self) -> int:
        """The bytes a complete fetch puts in DIR: the manifest and every blob it declares."""
        document = json.loads(self.manifest)
        sizes = [document["config"]["size"], *(layer["size"] for layer in document["layers"])]
        return len(self.manifest) + sum(int(size) for size in sizes)

    def uri(self, host: str, reference: str = "latest", *, transport: str = "http") -> str:
        """``docker://HOST/REPO?REFERENCE#TRANSPORT``."""
        return f"docker://{host}/{self.repository}?{reference}#{transport}"

    def manifest_path(self, reference: str = "latest") -> str:
        return manifest_path(self.repository, reference)

    def blob_path(self, digest: str) -> str:
        return blob_path(self.repository, digest)


def oci_image(
    repository: str,
    layers: Sequence[bytes],
    *,
    descriptors: Sequence[Mapping[str, object]] = (),
) -> Image:
    """An OCI image of ``layers`` (each held by the registry), followed by ``descriptors`` as
    given (layers the registry need not hold: foreign ones, hostile ones)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": repository}).encode()
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config, OCI_CONFIG),
        "layers": [*(descriptor(layer) for layer in layers), *map(dict, descriptors)],
    }
    blobs = {sha256_digest(data): data for data in [config, *layers]}
    return Image(repository, json.dumps(document).encode(), blobs)
