"""A throw-away certificate authority, and the keys and certificates the harness signs with.

``cryptography`` is imported only when a key or certificate is made, so an anonymous
plain-HTTP registry needs nothing beyond the standard library.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .common import LOOPBACK

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.x509 import Certificate

__all__ = ["CertificateAuthority", "certificate", "new_key", "write_pem"]

# Validity of the test CA's and the token signer's certificates, back-dated for clock skew.
CERT_DAYS: Final = 30


def new_key() -> EllipticCurvePrivateKey:
    """A fresh P-256 key: what ES256 signs with, and what the test certificates hold."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def write_pem(
    path: Path,
    *,
    key: EllipticCurvePrivateKey | None = None,
    certs: Sequence[Certificate] = (),
) -> Path:
    """Write ``certs``, then ``key`` (unencrypted PKCS#8), as PEM: what curl and Go both read."""
    from cryptography.hazmat.primitives import serialization

    parts = [cert.public_bytes(serialization.Encoding.PEM) for cert in certs]
    if key is not None:
        parts.append(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    path.write_bytes(b"".join(parts))
    return path


def certificate(
    subject: str,
    key: EllipticCurvePrivateKey,
    *,
    issuer: tuple[str, EllipticCurvePrivateKey] | None = None,
    ca: bool = False,
    hosts: Sequence[str] = (),
    usage: str | None = None,
) -> Certificate:
    """An X.509 certificate for ``key``, self-signed unless ``issuer`` (name, key) is given."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    issuer_name, signing_key = issuer if issuer is not None else (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if hosts:
        alt: list[x509.GeneralName] = []
        for host in hosts:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    if usage is not None:
        purpose = {
            "server": ExtendedKeyUsageOID.SERVER_AUTH,
            "client": ExtendedKeyUsageOID.CLIENT_AUTH,
        }
        builder = builder.add_extension(x509.ExtendedKeyUsage([purpose[usage]]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


class CertificateAuthority:
    """A throw-away CA whose ``ca_bundle`` a client passes to ``curl --cacert``."""

    def __init__(self, directory: Path, *, name: str = "mesos_uri test CA") -> None:
        self.directory = directory
        self.name = name
        self._key = new_key()
        self._cert = certificate(name, self._key, ca=True)
        self.ca_bundle = write_pem(directory / "ca.pem", certs=[self._cert])

    def issue(
        self,
        name: str,
        *,
        hosts: Sequence[str] = (LOOPBACK, "localhost"),
        client: bool = False,
    ) -> tuple[Path, Path]:
        """Write ``NAME.crt`` and ``NAME.key`` (PKCS#8 PEM) for a server, or a client for mTLS."""
        key = new_key()
        cert = certificate(
            name,
            key,
            issuer=(self.name, self._key),
            hosts=() if client else hosts,
            usage="client" if client else "server",
        )
        return (
            write_pem(self.directory / f"{name}.crt", certs=[cert]),
            write_pem(self.directory / f"{name}.key", key=key),
        )
