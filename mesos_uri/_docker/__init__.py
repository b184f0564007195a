"""The Docker fetcher plugin and the Docker and OCI specifications it follows.

The defaults below are here, in a module that imports nothing, so that the command line can name
them in ``--help`` before it loads anything else.
"""

from typing import Final

# The agent's --docker_registry default: Docker Hub's API.
DEFAULT_REGISTRY_URL: Final = "https://registry-1.docker.io"
# Docker's per-host TLS directory: certs.d/HOST[:PORT]/{*.crt, *.cert, *.key}.
DEFAULT_CERTS_DIR: Final = "/etc/docker/certs.d"
