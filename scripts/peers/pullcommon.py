"""What the benchmark's peer scripts share: their command line, and how a pull is written out.

Every peer pulls the manifest and every blob it names (config first) and leaves them as
``OUT/manifest`` and ``OUT/<digest>``, the layout mesos_uri leaves, so that the benchmark
checks every tool's result the same way. A blob that does not match its digest, or a manifest
that does not match the ``Docker-Content-Digest`` the registry sent, fails the pull.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Final

# The manifest types a pull of a single-platform image may get (Docker schema 2, OCI).
MANIFEST_TYPES: Final = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)


class PullError(Exception):
    """The registry sent something that does not verify."""


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", required=True, metavar="HOST:PORT", help="plain-HTTP registry")
    parser.add_argument("--repo", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument("--threads", type=int, default=1, help="blobs pulled at once")
    return parser.parse_args()


def blobs_of(manifest: bytes) -> list[str]:
    """The digests of the config and every layer, in that order."""
    document = json.loads(manifest)
    return [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]


def save_manifest(out: Path, body: bytes, served_digest: str | None) -> None:
    if served_digest is not None:
        check(served_digest, hashlib.sha256(body).hexdigest())
    (out / "manifest").write_bytes(body)


def save_blob(out: Path, digest: str, chunks: Iterable[bytes], *, verify: bool) -> None:
    """Write ``chunks`` to ``OUT/<digest>``, hashing them on the way unless the client does."""
    hasher = hashlib.sha256()
    with open(out / digest, "wb") as handle:
        for chunk in chunks:
            if verify:
                hasher.update(chunk)
            handle.write(chunk)
    if verify:
        check(digest, hasher.hexdigest())


def check(digest: str, sha256_hex: str) -> None:
    algorithm, _, expected = digest.partition(":")
    if algorithm != "sha256" or expected != sha256_hex:
        raise PullError(f"digest mismatch: expected {digest}, got sha256:{sha256_hex}")
