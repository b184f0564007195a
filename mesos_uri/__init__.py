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

The facade and the URI model are imported on first use, so that the command line can start its
first request before they are loaded.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

from mesos_uri import errors
from mesos_uri.errors import *  # noqa: F403  (the whole error tree is public)

if TYPE_CHECKING:
    from mesos_uri._uri import URI, parse_uri
    from mesos_uri.fetcher import BlobResult, Fetcher, FetchSummary, Flags, create

__all__ = ["URI", "BlobResult", "FetchSummary", "Fetcher", "Flags", "create", "parse_uri"]
__all__ += errors.__all__

_LAZY = {
    "URI": "mesos_uri._uri",
    "parse_uri": "mesos_uri._uri",
    "BlobResult": "mesos_uri.fetcher",
    "Fetcher": "mesos_uri.fetcher",
    "FetchSummary": "mesos_uri.fetcher",
    "Flags": "mesos_uri.fetcher",
    "create": "mesos_uri.fetcher",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mesos_uri' has no attribute '{name}'")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# A library's loggers get no handler but this one: without it Python's last-resort handler
# prints our warnings on stderr, where the CLI promises nothing unless -v asks for it.
logging.getLogger(__name__).addHandler(logging.NullHandler())
