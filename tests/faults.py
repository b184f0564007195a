"""A loopback registry that fails on cue: the faults a real registry will not produce for a test.

A :class:`FaultServer` is a threaded HTTP/1.1 server on 127.0.0.1 (a free port). It can serve one
or more images the way the distribution registry does (``/v2/``, manifests by tag and by digest
with ``Docker-Content-Digest``, blobs with ``Range`` support), and any path can be given a
*script*: a list of acts, one consumed per request, the last one repeating::

    with FaultServer() as server:
        server.registry("lab/app", manifest, MEDIA_TYPE, {digest: blob})
        server.script(blob_path("lab/app", digest), [Status(503), Drop(after=100), Serve()])
        ... fetch server.url("/v2/lab/app/manifests/latest") ...
        assert [r.header("Range") for r in server.requests_for(blob_path(...))] == [...]

An act with no body of its own (``Serve()``, ``Drop(after=...)``, ``WrongBytes()``, ...) works
on what the registry holds for that path, so a script reads as "fail this way, then behave".
Every request is recorded. :meth:`FaultServer.close` returns only when every handler thread has
ended, stalled ones included, and the port is free again.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http
import json
import re
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Final, Protocol

import attrs
from httpserver import RecordedRequest

__all__ = [
    "Act",
    "BadChallenge",
    "Content",
    "Drop",
    "Exchange",
    "FaultServer",
    "Hangup",
    "MalformedHeader",
    "Oversized",
    "RateLimited",
    "Raw",
    "RecordedRequest",
    "Redirect",
    "Serve",
    "Stall",
    "Status",
    "WrongBytes",
    "blob_path",
    "http_date",
    "manifest_path",
    "sha256_digest",
]

Fields = tuple[tuple[str, str], ...]

# A client that connects and sends nothing cannot hold a handler thread longer than this.
REQUEST_READ_TIMEOUT: Final = 10.0
# Range = "bytes=" first-pos "-" [ last-pos ] (RFC 9110 §14.1.2); one range is all we serve.
_RANGE: Final = re.compile(r"bytes=([0-9]+)-([0-9]*)")


def _fields(value: Iterable[tuple[str, str]]) -> Fields:
    return tuple((str(name), str(text)) for name, text in value)


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``, as a registry names content."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def manifest_path(repository: str, reference: str) -> str:
    return f"/v2/{repository}/manifests/{reference}"


def blob_path(repository: str, digest: str) -> str:
    return f"/v2/{repository}/blobs/{digest}"


def http_date(when: float) -> str:
    """``when`` (seconds since the epoch) as an IMF-fixdate, the form a Retry-After date takes."""
    return email.utils.formatdate(when, usegmt=True)


@attrs.frozen
class Content:
    """What the registry holds at one path: the body and the headers that describe it."""

    body: bytes
    headers: Fields = attrs.field(default=(), converter=_fields)


class Exchange:
    """One request being answered: what arrived, and raw writes back to the client."""

    def __init__(
        self, handler: _Handler, request: RecordedRequest, closing: threading.Event
    ) -> None:
        self._handler = handler
        self._closing = closing
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

    def head(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        """A status line and a header block, with ``Connection: close``: one exchange per
        connection, so that a dropped or stalled answer never spills into the next request."""
        self.raw(_head_bytes(status, headers))

    def body(self, data: bytes) -> None:
        """Body bytes; none for a HEAD request."""
        if self.request.method != "HEAD":
            self.raw(data)

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False when the server began closing meanwhile."""
        return not self._closing.wait(seconds)

    def hang_up(self) -> None:
        """Close the connection now, whatever was promised (the client sees EOF or a reset)."""
        self.connected = False
        _shutdown(self._handler.connection)


def _head_bytes(status: int, headers: Iterable[tuple[str, str]], extra: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Connection: close")
    text = "".join(f"{line}\r\n" for line in lines).encode("latin-1")
    return text + extra + b"\r\n"


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _shutdown(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the client or by us
        connection.shutdown(socket.SHUT_RDWR)


class Act(Protocol):
    """One scripted answer. ``content`` is what the registry holds at the path, if anything."""

    def perform(self, exchange: Exchange, content: Content | None) -> None: ...


def _merge(base: Fields, override: Fields) -> Fields:
    """``base`` without the fields ``override`` names, then ``override``."""
    names = {name.lower() for name, _ in override}
    return tuple(field for field in base if field[0].lower() not in names) + override


def _resolve(body: bytes | None, headers: Fields, content: Content | None) -> tuple[bytes, Fields]:
    """The act's own body, or the registry's; the act's headers over the registry's."""
    if body is not None:
        return body, headers
    if content is None:
        return b"", headers
    return content.body, _merge(content.headers, headers)


def _ranged(
    request: RecordedRequest, status: int, body: bytes, ranges: bool
) -> tuple[int, Fields, bytes]:
    """(status, headers, payload) for ``body``, honouring a single ``Range: bytes=N-[M]`` on a
    200 when ``ranges`` is set (206, or 416 when it starts past the end) as the registry does."""
    wanted = request.header("Range")
    if not ranges or status != 200 or wanted is None:
        return status, (), body
    match = _RANGE.fullmatch(wanted.strip())
    if match is None:
        return status, (), body  # RFC 9110 §14.2: an unparseable Range is ignored
    first = int(match[1])
    last = min(int(match[2]), len(body) - 1) if match[2] else len(body) - 1
    if first >= len(body) or last < first:
        return 416, (("Content-Range", f"bytes */{len(body)}"),), b""
    return 206, (("Content-Range", f"bytes {first}-{last}/{len(body)}"),), body[first : last + 1]


def _error_body(code: str, message: str) -> bytes:
    """A registry-style JSON error body (REGISTRY-NOTES.md)."""
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


_JSON: Final = (("Content-Type", "application/json"),)


@attrs.frozen
class Serve:
    """Answer normally: ``body`` (default: the registry's content) with ``headers``, Range
    honoured unless ``ranges`` is False (then a ``Range`` header is ignored with a 200)."""

    status: int = 200
    body: bytes | None = None
    headers: Fields = attrs.field(default=(), converter=_fields)
    ranges: bool = True

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        body, headers = _resolve(self.body, self.headers, content)
        status, extra, payload = _ranged(exchange.request, self.status, body, self.ranges)
        exchange.head(status, [*headers, *extra, ("Content-Length", str(len(payload)))])
        exchange.body(payload)


@attrs.frozen
class Status:
    """Answer ``code`` with a registry-style JSON error body (or ``body``); never the content."""

    code: int
    headers: Fields = attrs.field(default=(), converter=_fields)
    body: bytes | None = None

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        body = self.body
        if body is None:
            body = _error_body(f"INJECTED_{self.code}", _reason(self.code))
        Serve(self.code, body, _merge(_JSON, self.headers)).perform(exchange, None)


@attrs.frozen
class RateLimited:
    """429 with ``Retry-After``: delay-seconds given as an int, or any text (e.g. an HTTP-date
    from :func:`http_date`, or garbage) given as a str."""

    retry_after: int | str = 1

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        headers = (("Retry-After", str(self.retry_after)),)
        body = _error_body("TOOMANYREQUESTS", "rate limited (injected)")
        Status(429, headers, body).perform(exchange, content)


@attrs.frozen
class Drop:
    """Announce the whole body (from the requested offset), send ``after`` bytes, hang up."""

    after: int
    body: bytes | None = None
    ranges: bool = True

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        body, headers = _resolve(self.body, (), content)
        status, extra, payload = _ranged(exchange.request, 200, body, self.ranges)
        exchange.head(status, [*headers, *extra, ("Content-Length", str(len(payload)))])
        exchange.body(payload[: self.after])
        exchange.hang_up()


@attrs.frozen
class Stall:
    """Send nothing for ``seconds`` — before the answer (``after`` None) or after the header
    block and ``after`` body bytes — then finish the answer, unless the server is closing."""

    seconds: float
    after: int | None = None
    body: bytes | None = None
    ranges: bool = True

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        if self.after is None:
            if exchange.pause(self.seconds):
                Serve(body=self.body, ranges=self.ranges).perform(exchange, content)
            return
        body, headers = _resolve(self.body, (), content)
        status, extra, payload = _ranged(exchange.request, 200, body, self.ranges)
        exchange.head(status, [*headers, *extra, ("Content-Length", str(len(payload)))])
        exchange.body(payload[: self.after])
        if exchange.pause(self.seconds):
            exchange.body(payload[self.after :])


@attrs.frozen
class WrongBytes:
    """The content with its last byte flipped: the same length and headers, another digest."""

    body: bytes | None = None

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        body, headers = _resolve(self.body, (), content)
        if body:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        Serve(body=body, headers=headers).perform(exchange, None)


@attrs.frozen
class Oversized:
    """The content padded with spaces to ``size`` bytes, honestly framed. Spaces keep a JSON
    manifest valid JSON, so what trips the client is the size alone."""

    size: int
    body: bytes | None = None

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        body, headers = _resolve(self.body, (), content)
        if self.size < len(body):
            raise ValueError(f"Oversized({self.size}) is smaller than the body ({len(body)})")
        padded = body + b" " * (self.size - len(body))
        Serve(body=padded, headers=headers, ranges=False).perform(exchange, None)


@attrs.frozen
class MalformedHeader:
    """The normal answer with ``line`` (not a header field) inside its header block."""

    line: bytes = b"this line is not a header field"
    status: int = 200

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        body, headers = _resolve(None, (), content)
        fields = [*headers, ("Content-Length", str(len(body)))]
        exchange.raw(_head_bytes(self.status, fields, extra=self.line + b"\r\n"))
        exchange.body(body)


@attrs.frozen
class BadChallenge:
    """401 with a ``WWW-Authenticate`` value no parser should accept."""

    value: str = 'Bearer realm="http://127.0.0.1:1/token'  # an unterminated quoted string

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        headers = (("WWW-Authenticate", self.value),)
        Status(401, headers, _error_body("UNAUTHORIZED", "authentication required")).perform(
            exchange, content
        )


@attrs.frozen
class Redirect:
    """A redirect to ``location``: a path on this server (itself, for a loop) or any URL."""

    location: str
    status: int = 307

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        exchange.head(self.status, [("Location", self.location), ("Content-Length", "0")])


@attrs.frozen
class Hangup:
    """Close the connection before sending a byte (curl: "Empty reply from server")."""

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        exchange.hang_up()


@attrs.frozen
class Raw:
    """Write ``data`` verbatim (status line, headers, body, anything), then hang up."""

    data: bytes

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        exchange.raw(self.data)
        exchange.hang_up()


@attrs.define
class _Script:
    acts: tuple[Act, ...]
    used: int = 0

    def next(self) -> Act:
        act = self.acts[min(self.used, len(self.acts) - 1)]
        self.used += 1
        return act


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_READ_TIMEOUT
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._untrack(self.connection)

    def _dispatch(self) -> None:
        owner = self.server.owner
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        request = RecordedRequest(
            method=self.command, path=self.path, headers=tuple(self.headers.items()), body=body
        )
        act, content = owner._answer_for(request)
        act.perform(Exchange(self, request, owner.closing), content)
        self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the recorded requests say what happened."""


class _Server(ThreadingHTTPServer):
    # Handler threads are joined by server_close() (ThreadingMixIn.block_on_close), so close()
    # returns only when every one of them has ended.
    daemon_threads = False

    def __init__(self, owner: FaultServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-answer is what the faults are about."""


class FaultServer:
    """The fault-injection server; see the module docstring. Use it as a context manager."""

    def __init__(self) -> None:
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._content: dict[str, Content] = {}
        self._scripts: dict[str, _Script] = {}
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._server = _Server(self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="faults"
        )
        self._thread.start()

    # -- what it serves ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the registry host of a ``docker://`` URI."""
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}{path}"

    def registry(
        self,
        repository: str,
        manifest: bytes,
        media_type: str,
        blobs: Mapping[str, bytes] = {},
        *,
        tags: Sequence[str] = ("latest",),
    ) -> str:
        """Serve one image: ``manifest`` under each tag and under its digest, and ``blobs``
        (digest → bytes, not checked, so a test can make a registry lie). Returns the manifest
        digest. Call again for more images, index children or repositories."""
        digest = sha256_digest(manifest)
        described = Content(
            manifest,
            [
                ("Content-Type", media_type),
                ("Docker-Content-Digest", digest),
                ("Docker-Distribution-API-Version", "registry/2.0"),
            ],
        )
        with self._lock:
            self._content["/v2/"] = Content(
                b"{}", [*_JSON, ("Docker-Distribution-API-Version", "registry/2.0")]
            )
            for reference in [*tags, digest]:
                self._content[manifest_path(repository, reference)] = described
            for blob_digest, blob in blobs.items():
                self._content[blob_path(repository, blob_digest)] = Content(
                    blob,
                    [
                        ("Content-Type", "application/octet-stream"),
                        ("Docker-Content-Digest", blob_digest),
                        ("Accept-Ranges", "bytes"),
                    ],
                )
        return digest

    def script(self, path: str, acts: Sequence[Act]) -> None:
        """Answer requests for ``path`` (query ignored) with ``acts``, one per request, the last
        repeating; replaces any earlier script for ``path``."""
        if not acts:
            raise ValueError("a script needs at least one act")
        with self._lock:
            self._scripts[path] = _Script(tuple(acts))

    # -- what it saw ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """The requests whose path, without its query, is ``path``."""
        return [r for r in self.requests if r.path.partition("?")[0] == path]

    # -- life cycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving: wake stalled handlers, cut open connections, join every thread."""
        with self._lock:
            self.closing.set()
            connections = list(self._connections)
        for connection in connections:
            _shutdown(connection)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- for the handler --------------------------------------------------------------------

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            if self.closing.is_set():
                _shutdown(connection)  # accepted as close() began: do not wait for its request
            else:
                self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _answer_for(self, request: RecordedRequest) -> tuple[Act, Content | None]:
        path = request.path.partition("?")[0]
        with self._lock:
            self._requests.append(request)
            content = self._content.get(path)
            script = self._scripts.get(path)
            serves_root = "/v2/" in self._content
            act = None if script is None else script.next()
        if act is not None:
            return act, content
        if content is not None:
            return Serve(), content
        if path == "/v2" and serves_root:
            # distribution's router redirects the slash-less root (StrictSlash).
            return Redirect("/v2/", 301), None
        return Status(404, body=_not_found_body(path)), None


def _not_found_body(path: str) -> bytes:
    if "/blobs/" in path:
        return _error_body("BLOB_UNKNOWN", "blob unknown to registry")
    if "/manifests/" in path:
        return _error_body("MANIFEST_UNKNOWN", "manifest unknown")
    return _error_body("NOT_FOUND", "no such path")
