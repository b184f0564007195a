"""The Docker fetcher plugin and the Docker and OCI specifications it follows.

The defaults, the manifest media types and the certs.d naming rule are here, in a module that
imports nothing, so that the command line can use them (in ``--help``, for its early request)
before it loads anything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mesos_uri._urls import Origin

# The agent's --docker_registry default: Docker Hub's API.
DEFAULT_REGISTRY_URL: Final = "https://registry-1.docker.io"
# The manifest media types a registry may answer with.
SCHEMA1: Final = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA2: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
# Indexes first, so that the registry never converts a manifest or picks a platform for us (a
# registry that is not offered an index type answers with the manifest of its own platform),
# then single manifests, schema 1 last.
ACCEPT: Final = ",".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, SCHEMA2, SCHEMA1, SCHEMA1_SIGNED))
# Docker's per-host TLS directory: certs.d/HOST[:PORT]/{*.crt, *.cert, *.key}.
DEFAULT_CERTS_DIR: Final = "/etc/docker/certs.d"


def certs_subdir(origin: Origin) -> str:
    """The name of ``origin``'s directory in a certs.d: ``HOST[:PORT]``, an IPv6 host without its
    brackets, as dockerd names it."""
    return origin.hostport.replace("[", "").replace("]", "")
