"""Apache Mesos' URI fetcher and its Docker registry plugin, driving curl.

    import anyio, mesos_uri

    async def pull() -> None:
        fetcher = mesos_uri.create(mesos_uri.Flags(docker_stall_timeout=30.0))
        await fetcher.fetch("docker://127.0.0.1:5000/library/busybox?latest#http", "/tmp/x")

    anyio.run(pull)

What is here is the whole public surface: the facade (:func:`create`, :class:`Fetcher`, its
options :class:`Flags`, what a fetch did, :class:`FetchSummary`), the URI model, and the error
tree every call raises (:class:`FetchError` at its root). Modules whose names start with ``_``
are the implementation; ``python -m mesos_uri.fetch`` is the command line.
"""

import logging

from mesos_uri._uri import URI, parse_uri
from mesos_uri.errors import (
    AuthError,
    BlobSizeError,
    CurlError,
    DecodeError,
    DigestError,
    DigestMismatchError,
    FetchError,
    HTTPStatusError,
    ManifestError,
    RedirectError,
    ResponseTooLargeError,
    TooManyRedirectsError,
    TransferInterruptedError,
    TruncatedResponseError,
    UsageError,
)
from mesos_uri.fetcher import BlobResult, Fetcher, FetchSummary, Flags, create

__all__ = [
    "URI",
    "AuthError",
    "BlobResult",
    "BlobSizeError",
    "CurlError",
    "DecodeError",
    "DigestError",
    "DigestMismatchError",
    "FetchError",
    "FetchSummary",
    "Fetcher",
    "Flags",
    "HTTPStatusError",
    "ManifestError",
    "RedirectError",
    "ResponseTooLargeError",
    "TooManyRedirectsError",
    "TransferInterruptedError",
    "TruncatedResponseError",
    "UsageError",
    "create",
    "parse_uri",
]

# A library's loggers get no handler but this one: without it Python's last-resort handler
# prints our warnings on stderr, where the CLI promises nothing unless -v asks for it.
logging.getLogger(__name__).addHandler(logging.NullHandler())
