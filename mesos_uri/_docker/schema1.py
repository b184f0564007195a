"""Docker image manifest schema 1 (the original's ``v2::parse``), and what its digest covers.

Deprecated, but still served by registries with schema 1 compatibility on, and to clients that do
not accept schema 2.
"""

from __future__ import annotations

import base64
import re
from typing import Final

import attrs

from mesos_uri._docker.digest import Digest, parse_digest
from mesos_uri._json import Fields, JSONError, parse_object
from mesos_uri.errors import DigestError, ManifestError, excerpt

__all__ = ["Schema1Manifest", "parse_schema1", "schema1_payload"]

_VALIDATION: Final = "Docker v2 image manifest validation failed: "


@attrs.frozen
class Schema1Manifest:
    """A schema 1 manifest; ``blob_sums`` lists the layers from the top down, and may name a blob
    more than once."""

    name: str
    tag: str
    architecture: str
    blob_sums: tuple[Digest, ...]


def parse_schema1(document: Fields) -> Schema1Manifest:
    """Validate a parsed schema 1 manifest with the original's rules and texts; each
    ``history[].v1Compatibility`` must hold a JSON object, which a fetch does not read. Beyond
    the original, a ``blobSum`` must be a digest, since it becomes a file name."""
    name, tag, architecture = (document.string(key) for key in ("name", "tag", "architecture"))
    document.count("schemaVersion")  # required, but its value is not checked
    blob_sums = [layer.string("blobSum") for layer in document.children("fsLayers")]
    history = [entry.string("v1Compatibility") for entry in document.children("history")]
    for text in history:
        try:
            parse_object(text)
        except JSONError as exc:
            raise ManifestError(f"Parsing v1Compatibility JSON failed: {exc}") from exc
    if not blob_sums:
        raise ManifestError(_VALIDATION + "'fsLayers' field size must be at least one")
    if not history:
        raise ManifestError(_VALIDATION + "'history' field size must be at least one")
    if len(blob_sums) != len(history):
        raise ManifestError(
            _VALIDATION + "The size of 'fsLayers' should be equal to the size of 'history'"
        )
    digests = []
    for text in blob_sums:
        try:
            digests.append(parse_digest(text))
        except DigestError as exc:
            raise ManifestError(
                _VALIDATION + f"Incorrect 'blobSum' format: {excerpt(text, 80)}: {exc}"
            ) from exc
    return Schema1Manifest(name, tag, architecture, tuple(digests))


_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_PAYLOAD: Final = "Failed to extract the schema 1 payload: "


def _base64url(text: str, what: str) -> bytes:
    # JWS base64url has no padding; b64decode alone would skip stray characters. Only a length
    # of 4n+1 cannot be padded: its last character holds 6 bits, less than a byte.
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ManifestError(_PAYLOAD + f"{what} is not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _cut(raw: bytes, signature: Fields) -> tuple[int, bytes]:
    """Where a signature says its payload is: the length of ``raw`` it keeps, and the tail."""
    where = f"{signature.path}.protected"
    protected = _base64url(signature.string("protected"), f"'{where}'")
    try:
        header = parse_object(protected)
    except JSONError as exc:
        raise JSONError(f"'{where}': {exc}") from exc
    header = attrs.evolve(header, path=where)
    length = header.count("formatLength")
    if length > len(raw):
        raise ManifestError(_PAYLOAD + f"'{where}.formatLength' is longer than the document")
    return length, _base64url(header.string("formatTail"), f"'{where}.formatTail'")


def schema1_payload(raw: bytes) -> bytes:
    """The bytes a schema 1 manifest's digest is taken over: ``raw`` without the signatures of a
    JWS in "pretty" form. As docker/libtrust's ``ParsePrettySignature``, each protected header
    names the payload's leading bytes (``formatLength``) and closing bytes (``formatTail``); all
    must name one payload, which must say what the document says, so the bytes hashed are the
    bytes parsed."""
    try:
        document = parse_object(raw)
    except JSONError as exc:
        raise ManifestError(_PAYLOAD + f"JSON parse failed: {exc}") from exc
    if "signatures" not in document:
        return raw
    try:
        # Compared as (length, tail), not as payloads: thousands of signatures must not
        # cost a copy of the document each.
        cuts = {_cut(raw, signature) for signature in document.children("signatures")}
    except JSONError as exc:
        raise ManifestError(_PAYLOAD + str(exc)) from exc
    if not cuts:
        raise ManifestError(_PAYLOAD + "'signatures' is empty")
    if len(cuts) > 1:
        raise ManifestError(_PAYLOAD + "the signatures name different payloads")
    length, tail = cuts.pop()
    payload = raw[:length] + tail
    try:
        content = parse_object(payload).values
    except JSONError as exc:
        raise ManifestError(_PAYLOAD + f"the payload does not parse: {exc}") from exc
    unsigned = {key: value for key, value in document.values.items() if key != "signatures"}
    try:
        same = content == unsigned
    except RecursionError as exc:
        raise ManifestError(_PAYLOAD + "the document is nested too deeply") from exc
    if not same:
        raise ManifestError(_PAYLOAD + "the payload differs from the signed document")
    return payload
