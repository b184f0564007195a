"""The Docker fetcher plugin and the Docker and OCI specifications it follows.

The defaults and the certs.d naming rule are here, in a module that imports nothing, so that the
command line can use them (in ``--help``, for its early request) before it loads anything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mesos_uri._urls import Origin

# The agent's --docker_registry default: Docker Hub's API.
DEFAULT_REGISTRY_URL: Final = "https://registry-1.docker.io"
# Docker's per-host TLS directory: certs.d/HOST[:PORT]/{*.crt, *.cert, *.key}.
DEFAULT_CERTS_DIR: Final = "/etc/docker/certs.d"


def certs_subdir(origin: Origin) -> str:
    """The name of ``origin``'s directory in a certs.d: ``HOST[:PORT]``, an IPv6 host without its
    brackets, as dockerd names it."""
    return origin.hostport.replace("[", "").replace("]", "")
