"""Docker image manifest schema 1 (the original's ``v2::parse``) and its v1 image JSON.

Schema 1 is deprecated but still served by registries with schema 1 compatibility on, and by
registries converting a schema 2 manifest for clients that do not accept it (REGISTRY-NOTES.md).
A signed one is a JWS in "pretty" form: the signatures sit inside the JSON document, so its digest
is taken over the document with them cut out (:func:`schema1_payload`).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

import attrs

from mesos_uri.docker.digest import Digest, parse_digest
from mesos_uri.docker.jsonproto import (
    Kind,
    ProtoError,
    Record,
    convert,
    message,
    optional,
    parse_object,
    repeated,
    required,
    shorten,
)
from mesos_uri.errors import DigestError, ManifestError

__all__ = [
    "FsLayer",
    "History",
    "Jwk",
    "Schema1Manifest",
    "Signature",
    "SignatureHeader",
    "V1Config",
    "V1Image",
    "parse_schema1",
    "parse_v1_image",
    "schema1_payload",
]

_VALIDATION: Final = "Docker v2 image manifest validation failed: "


@attrs.frozen
class V1Config:
    """The runtime settings of a v1 image (``config`` / ``container_config``)."""

    hostname: str | None = None
    entrypoint: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    user: str | None = None
    cmd: tuple[str, ...] = ()
    working_dir: str | None = None
    image: str | None = None
    labels: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class V1Image:
    """The v1 image JSON carried in a schema 1 history entry; none of its fields is required."""

    id: str | None = None
    parent: str | None = None
    comment: str | None = None
    created: str | None = None
    container: str | None = None
    container_config: V1Config | None = None
    docker_version: str | None = None
    author: str | None = None
    config: V1Config | None = None
    architecture: str | None = None
    os: str | None = None
    size: int | None = None


@attrs.frozen
class FsLayer:
    blob_sum: Digest


@attrs.frozen
class History:
    """A history entry: the ``v1Compatibility`` text as received, and what it parses to."""

    v1_compatibility: str = attrs.field(repr=False)
    v1: V1Image


@attrs.frozen
class Jwk:
    crv: str
    kid: str
    kty: str
    x: str | None = None
    y: str | None = None


@attrs.frozen
class SignatureHeader:
    alg: str
    jwk: Jwk | None = None


@attrs.frozen
class Signature:
    header: SignatureHeader
    signature: str
    protected: str


@attrs.frozen
class Schema1Manifest:
    """A schema 1 manifest, with the exact bytes it was parsed from.

    ``fs_layers`` and ``history`` run from the top layer down, as schema 1 lists them.
    """

    name: str
    tag: str
    architecture: str
    fs_layers: tuple[FsLayer, ...]
    history: tuple[History, ...]
    schema_version: int
    signatures: tuple[Signature, ...]
    raw: bytes = attrs.field(repr=False)


_V1_CONFIG: Final = message(
    "Hostname",
    repeated("Entrypoint"),
    repeated("Env"),
    "User",
    repeated("Cmd"),
    "WorkingDir",
    "Image",
    optional("Labels", Kind.MAP),
)

_V1_IMAGE: Final = message(
    "id",
    "parent",
    "comment",
    "created",
    "container",
    optional("container_config", Kind.MESSAGE, _V1_CONFIG),
    "docker_version",
    "author",
    optional("config", Kind.MESSAGE, _V1_CONFIG),
    "architecture",
    "os",
    optional("Size", Kind.NUMBER),
)

_SIGNATURE: Final = message(
    required(
        "header",
        Kind.MESSAGE,
        message(
            optional(
                "jwk",
                Kind.MESSAGE,
                message(required("crv"), required("kid"), required("kty"), "x", "y"),
            ),
            required("alg"),
        ),
    ),
    required("signature"),
    required("protected"),
)

# The `v1` key of a history entry is not declared: the original aborted on it (SPEC §9 row 22);
# here it is ignored like any unknown key, and `v1` is always what v1Compatibility says.
_SCHEMA1: Final = message(
    required("name"),
    required("tag"),
    required("architecture"),
    repeated("fsLayers", Kind.MESSAGE, message(required("blobSum"))),
    repeated("history", Kind.MESSAGE, message(required("v1Compatibility"))),
    required("schemaVersion", Kind.NUMBER),
    repeated("signatures", Kind.MESSAGE, _SIGNATURE),
)


def _v1_config(record: Record | None) -> V1Config | None:
    if record is None:
        return None
    return V1Config(
        hostname=record.optional_text("Hostname"),
        entrypoint=record.texts("Entrypoint"),
        env=record.texts("Env"),
        user=record.optional_text("User"),
        cmd=record.texts("Cmd"),
        working_dir=record.optional_text("WorkingDir"),
        image=record.optional_text("Image"),
        labels=record.pairs("Labels"),
    )


def _v1_image(document: dict[str, object]) -> V1Image:
    try:
        record = convert(document, _V1_IMAGE)
    except ProtoError as exc:
        raise ManifestError(f"Protobuf parse failed: {exc}") from exc
    return V1Image(
        id=record.optional_text("id"),
        parent=record.optional_text("parent"),
        comment=record.optional_text("comment"),
        created=record.optional_text("created"),
        container=record.optional_text("container"),
        container_config=_v1_config(record.optional_child("container_config")),
        docker_version=record.optional_text("docker_version"),
        author=record.optional_text("author"),
        config=_v1_config(record.optional_child("config")),
        architecture=record.optional_text("architecture"),
        os=record.optional_text("os"),
        size=record.optional_number("Size"),
    )


def parse_v1_image(text: str | bytes) -> V1Image:
    """Parse a v1 image JSON (``v1::parse``); the original does not validate it (§9 row 27)."""
    try:
        document = parse_object(text)
    except ProtoError as exc:
        raise ManifestError(f"JSON parse failed: {exc}") from exc
    return _v1_image(document)


def _signature(record: Record) -> Signature:
    header = record.child("header")
    jwk = header.optional_child("jwk")
    return Signature(
        header=SignatureHeader(
            alg=header.text("alg"),
            jwk=None
            if jwk is None
            else Jwk(
                crv=jwk.text("crv"),
                kid=jwk.text("kid"),
                kty=jwk.text("kty"),
                x=jwk.optional_text("x"),
                y=jwk.optional_text("y"),
            ),
        ),
        signature=record.text("signature"),
        protected=record.text("protected"),
    )


def _history(record: Record) -> History:
    text = record.text("v1Compatibility")
    try:
        document = parse_object(text)
    except ProtoError as exc:
        raise ManifestError(f"Parsing v1Compatibility JSON failed: {exc}") from exc
    try:
        v1 = _v1_image(document)
    except ManifestError as exc:
        raise ManifestError(f"Parsing v1Compatibility protobuf failed: {exc}") from exc
    return History(v1_compatibility=text, v1=v1)


def parse_schema1(raw: bytes) -> Schema1Manifest:
    """Parse and validate a schema 1 manifest (SPEC.md §6.3), texts as the original's.

    Departure: a ``blobSum`` must be a digest in the OCI grammar, not merely contain ``:``, since
    it becomes a file name; the error keeps the original's "Incorrect 'blobSum' format" prefix.
    """
    try:
        document = parse_object(raw)
    except ProtoError as exc:
        raise ManifestError(f"JSON parse failed: {exc}") from exc
    try:
        record = convert(document, _SCHEMA1)
    except ProtoError as exc:
        raise ManifestError(f"Protobuf parse failed: {exc}") from exc

    history = tuple(_history(entry) for entry in record.children("history"))
    layers = record.children("fsLayers")
    if not layers:
        raise ManifestError(_VALIDATION + "'fsLayers' field size must be at least one")
    if not history:
        raise ManifestError(_VALIDATION + "'history' field size must be at least one")
    if len(layers) != len(history):
        raise ManifestError(
            _VALIDATION + "The size of 'fsLayers' should be equal to the size of 'history'"
        )
    fs_layers = []
    for layer in layers:
        blob_sum = layer.text("blobSum")
        try:
            fs_layers.append(FsLayer(parse_digest(blob_sum)))
        except DigestError as exc:
            raise ManifestError(
                _VALIDATION + f"Incorrect 'blobSum' format: {shorten(blob_sum)}: {exc}"
            ) from exc

    return Schema1Manifest(
        name=record.text("name"),
        tag=record.text("tag"),
        architecture=record.text("architecture"),
        fs_layers=tuple(fs_layers),
        history=history,
        schema_version=record.number("schemaVersion"),
        signatures=tuple(_signature(s) for s in record.children("signatures")),
        raw=raw,
    )


_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_PAYLOAD: Final = "Failed to extract the schema 1 payload: "


def _base64url(text: str, what: str) -> bytes:
    # JWS base64url: no padding (RFC 7515 §2); b64decode alone would skip stray characters.
    if not _BASE64URL.fullmatch(text):
        raise ManifestError(_PAYLOAD + f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ManifestError(_PAYLOAD + f"{what} is not base64url") from exc


def _cut(raw: bytes, protected: object, index: int) -> bytes:
    if not isinstance(protected, str):
        raise ManifestError(_PAYLOAD + f"signature {index} has no 'protected' header")
    try:
        header = parse_object(_base64url(protected, f"signature {index}'s 'protected' header"))
    except ProtoError as exc:
        raise ManifestError(_PAYLOAD + f"signature {index}'s 'protected' header: {exc}") from exc
    length = header.get("formatLength")
    tail = header.get("formatTail")
    if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= len(raw):
        raise ManifestError(_PAYLOAD + f"signature {index} has no valid 'formatLength'")
    if not isinstance(tail, str):
        raise ManifestError(_PAYLOAD + f"signature {index} has no 'formatTail'")
    return raw[:length] + _base64url(tail, f"signature {index}'s 'formatTail'")


def schema1_payload(raw: bytes) -> bytes:
    """The bytes a signed schema 1 manifest's digest is taken over: ``raw`` without signatures.

    As docker/libtrust's ``ParsePrettySignature``: each signature's protected header says how
    many leading bytes of the document belong to the payload (``formatLength``) and which bytes
    close it (``formatTail``, base64url). Every signature must name the same payload, and that
    payload must say what the document says outside ``signatures``, so the bytes hashed are the
    bytes parsed. A document without ``signatures`` is its own payload.
    """
    try:
        document = parse_object(raw)
    except ProtoError as exc:
        raise ManifestError(_PAYLOAD + f"JSON parse failed: {exc}") from exc
    signatures = document.get("signatures")
    if signatures is None:
        return raw
    if not isinstance(signatures, list) or not signatures:
        raise ManifestError(_PAYLOAD + "'signatures' is not a non-empty array")
    payloads = set()
    for index, signature in enumerate(signatures):
        if not isinstance(signature, dict):
            raise ManifestError(_PAYLOAD + f"signature {index} is not a JSON object")
        payloads.add(_cut(raw, signature.get("protected"), index))
    if len(payloads) != 1:
        raise ManifestError(_PAYLOAD + "the signatures name different payloads")
    payload = payloads.pop()
    try:
        content = parse_object(payload)
    except ProtoError as exc:
        raise ManifestError(_PAYLOAD + f"the payload does not parse: {exc}") from exc
    unsigned = {key: value for key, value in document.items() if key != "signatures"}
    try:
        same = content == unsigned
    except RecursionError as exc:
        raise ManifestError(_PAYLOAD + "the document is nested too deeply") from exc
    if not same:
        raise ManifestError(_PAYLOAD + "the payload differs from the signed document")
    return payload
