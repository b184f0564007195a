"""What a fault server's answer is made of: the request as it arrived, the content a registry
holds at a path, and the :class:`Exchange` through which any answer is written, byte by byte."""

from __future__ import annotations

import contextlib
import email.utils
import http
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Final

import attrs

if TYPE_CHECKING:
    from .server import FaultServer

Fields = tuple[tuple[str, str], ...]

# How long a handler waits, at most, for a release it was promised: long enough for any test,
# short enough that a forgotten release cannot hang the suite.
STALL_LIMIT: Final = 30.0
JSON_TYPE: Final = (("Content-Type", "application/json"),)


def as_fields(value: Iterable[tuple[str, str]]) -> Fields:
    """Header fields as a tuple of str pairs: hashable and immutable, like the acts holding them."""
    return tuple((str(name), str(text)) for name, text in value)


def manifest_path(repository: str, reference: str) -> str:
    return f"/v2/{repository}/manifests/{reference}"


def blob_path(repository: str, digest: str) -> str:
    return f"/v2/{repository}/blobs/{digest}"


def http_date(when: float) -> str:
    """``when`` (seconds since the epoch) as an IMF-fixdate, the form a Retry-After date takes."""
    return email.utils.formatdate(when, usegmt=True)


def error_body(code: str, message: str) -> bytes:
    """A registry's JSON error body: ``{"errors": [{"code": ..., "message": ...}]}``."""
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


@attrs.frozen
class RecordedRequest:
    """A request as the server received it; ``path`` includes the query string. ``at`` is when
    it arrived (``time.monotonic()``), ``tls`` whether it came over TLS."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    at: float = attrs.field(default=0.0, eq=False, repr=False)
    tls: bool = attrs.field(default=False, eq=False)

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), or None."""
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found


@attrs.frozen
class Content:
    """What the registry holds at one path: the body and the headers that describe it."""

    body: bytes
    headers: Fields = attrs.field(default=(), converter=as_fields)


class Exchange:
    """One request being answered: what arrived, and raw writes back to the client."""

    def __init__(
        self, handler: BaseHTTPRequestHandler, request: RecordedRequest, server: FaultServer
    ) -> None:
        self._handler = handler
        self.server = server
        self.request = request
        # False once the client has gone or we hung up: later writes are dropped.
        self.connected = True

    def raw(self, data: bytes) -> None:
        """Write ``data`` as it is; a vanished client is not an error here."""
        if not self.connected or not data:
            return
        try:
            self._handler.wfile.write(data)
            self._handler.wfile.flush()
        except OSError:
            self.connected = False
        else:
            self.server._count_sent(self.request.path, len(data))

    def head(
        self, status: int, headers: Iterable[tuple[str, str]] = (), *, reason: str | None = None
    ) -> None:
        """A status line and a header block, with ``Connection: close``: one exchange per
        connection, so that a dropped or stalled answer never spills into the next request.
        ``reason`` is the reason phrase (default: the standard one for ``status``)."""
        self.raw(head_bytes(status, headers, reason=reason))

    def body(self, data: bytes) -> None:
        """Body bytes; none for a HEAD request."""
        if self.request.method != "HEAD":
            self.raw(data)

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False when the server began closing meanwhile."""
        return not self.server.closing.wait(seconds)

    def wait(self, release: threading.Event | None = None, timeout: float = STALL_LIMIT) -> None:
        """Block until ``release`` is set, the server closes, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.server.closing.is_set():
            if release is not None and release.wait(0.02):
                return
            if release is None:
                self.server.closing.wait(0.02)

    def hang_up(self) -> None:
        """Close the connection now, whatever was promised (the client sees EOF or a reset)."""
        self.connected = False
        shutdown(self._handler.connection)


def head_bytes(
    status: int, headers: Iterable[tuple[str, str]], extra: bytes = b"", reason: str | None = None
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason_phrase(status) if reason is None else reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Connection: close")
    text = "".join(f"{line}\r\n" for line in lines).encode("latin-1")
    return text + extra + b"\r\n"


def reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def shutdown(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the client or by us
        connection.shutdown(socket.SHUT_RDWR)


Handler = Callable[[Exchange], None]
