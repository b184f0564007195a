"""What the harness's parts share: where they listen, whom they push as, how they fail, and how
they reach what they started."""

from __future__ import annotations

import hashlib
import ssl
import urllib.request
from pathlib import Path
from typing import Final

LOOPBACK: Final = "127.0.0.1"
# The user every push authenticates as; the token server grants push to it alone.
DEFAULT_ADMIN: Final = ("admin", "admin-secret")
HTTP_TIMEOUT: Final = 60.0
# A fixed creation time keeps configs and signatures, and so digests, the same from run to run.
EPOCH: Final = "1970-01-01T00:00:00Z"


class HarnessError(RuntimeError):
    """The local registry could not be started, or talking to it failed."""


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``, as a registry names content."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def opener(
    ca_bundle: Path | None, client_cert: tuple[Path, Path] | None = None
) -> urllib.request.OpenerDirector:
    """An opener that trusts ``ca_bundle`` and presents ``client_cert``.

    It ignores the environment's proxies: tests set ``http_proxy`` for the code under test, and
    the harness must still reach loopback directly.
    """
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    if client_cert is not None:
        context.load_cert_chain(*client_cert)
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
