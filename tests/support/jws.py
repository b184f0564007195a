"""The two JSON Web Signatures the registry verifies: the token server's JWTs, and the libtrust
signature of a schema 1 manifest. Both are ES256 over P-256 keys from :mod:`.tls`."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EPOCH
from .tls import certificate, new_key, write_pem

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

__all__ = ["TokenSigner", "b64url", "sign_schema1"]


def b64url(data: bytes) -> str:
    """Base64url without padding, as JOSE writes every part."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenSigner:
    """The key the registry trusts: its self-signed certificate is the ``rootcertbundle``."""

    def __init__(self, directory: Path) -> None:
        from cryptography.hazmat.primitives import serialization

        self._key = new_key()
        cert = certificate("mesos_uri test token signer", self._key)
        self.rootcertbundle = write_pem(directory / "token-signer.pem", certs=[cert])
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    def sign(self, claims: Mapping[str, object]) -> str:
        """A compact JWS with the certificate in ``x5c``, as distribution verifies it."""
        header = {"alg": "ES256", "typ": "JWT", "x5c": [self._x5c]}
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        return signing_input + "." + b64url(es256(self._key, signing_input.encode("ascii")))


def es256(key: EllipticCurvePrivateKey, data: bytes) -> bytes:
    """JWS ES256 (RFC 7518, section 3.4): raw r||s, 32 bytes each, not the DER OpenSSL gives."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def libtrust_jwk(key: EllipticCurvePrivateKey) -> dict[str, str]:
    """The public key as libtrust writes it in a schema 1 signature, ``kid`` included.

    libtrust's key ID: sha256 of the DER SubjectPublicKeyInfo, cut to 240 bits, base32, in
    groups of four joined by ``:``; the registry refuses a ``kid`` that does not match.
    """
    from cryptography.hazmat.primitives import serialization

    public = key.public_key()
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode()
    numbers = public.public_numbers()
    return {
        "crv": "P-256",
        "kid": ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4)),
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }


def sign_schema1(manifest: Mapping[str, object]) -> bytes:
    """A schema 1 manifest signed the way libtrust's ``PrettySignature`` lays it out.

    The payload is the manifest indented by three spaces; the signature's protected header
    records where the ``signatures`` key was spliced in (``formatLength``, ``formatTail``).
    """
    indent = "   "
    payload = json.dumps(manifest, indent=len(indent)).encode()
    format_length = len(payload) - 2  # everything before the closing "\n}"
    protected = b64url(
        json.dumps(
            {
                "formatLength": format_length,
                "formatTail": b64url(payload[format_length:]),
                "time": EPOCH,
            }
        ).encode()
    )
    key = new_key()
    signature = es256(key, f"{protected}.{b64url(payload)}".encode("ascii"))
    block = [
        {
            "header": {"jwk": libtrust_jwk(key), "alg": "ES256"},
            "signature": b64url(signature),
            "protected": protected,
        }
    ]
    signatures = json.dumps(block, indent=len(indent)).replace("\n", "\n" + indent)
    pretty = f',\n{indent}"signatures": {signatures}\n}}'
    return payload[:format_length] + pretty.encode()
