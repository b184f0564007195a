"""What the tests, the demo and the benchmark stand on: a real Docker registry on loopback, and
(in :mod:`tests.support.faults`) an HTTP server that fails on cue.

The registry is the CNCF distribution registry (Debian's ``docker-registry``) run as a child
process with a throw-away config and storage (:mod:`.registry`), optionally behind TLS from a
test CA (:mod:`.tls`), with htpasswd or token auth; the token server (:mod:`.tokens`) is a small
stdlib HTTP server issuing ES256 JWTs (:mod:`.jws`) as the Docker token spec describes. Images
(:mod:`.images`) are pushed through the registry API itself (:mod:`.client`), so what a fetch
sees is what a real push produced::

    with Registry(auth="token", tls=True) as reg:
        image = push_image(reg, "lab/app", "latest", [make_layer(1, 4096)])
        reg.docker_uri("lab/app", "latest")  # docker://127.0.0.1:PORT/lab/app?latest#https

The scripts import it from the repository root (``scripts/repo_root.py`` puts it on the path).
"""

from .client import Endpoint, push_blob, push_manifest
from .common import DEFAULT_ADMIN, LOOPBACK, HarnessError, sha256_digest
from .images import (
    MEDIA_TYPES,
    OCI_MANIFEST,
    SCHEMA1_SIGNED,
    SCHEMA2,
    ImageFormat,
    PushedImage,
    PushedSchema1,
    make_layer,
    push_image,
    push_schema1_image,
)
from .registry import INSTALL_HINT, AuthMode, Registry, RegistryNotInstalledError
from .tls import CertificateAuthority
from .tokens import TokenRequest, TokenServer

__all__ = [
    "DEFAULT_ADMIN",
    "INSTALL_HINT",
    "LOOPBACK",
    "MEDIA_TYPES",
    "OCI_MANIFEST",
    "SCHEMA1_SIGNED",
    "SCHEMA2",
    "AuthMode",
    "CertificateAuthority",
    "Endpoint",
    "HarnessError",
    "ImageFormat",
    "PushedImage",
    "PushedSchema1",
    "Registry",
    "RegistryNotInstalledError",
    "TokenRequest",
    "TokenServer",
    "make_layer",
    "push_blob",
    "push_image",
    "push_manifest",
    "push_schema1_image",
    "sha256_digest",
]
