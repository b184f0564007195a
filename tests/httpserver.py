"""A small threaded HTTP/1.1 server on 127.0.0.1 whose answers the tests choose per path.

A route maps a path to a handler, a function that answers one request through an
:class:`Exchange`; the ready-made handlers below cover what a registry or a hostile network does
(redirects with and without bodies, error codes, stalls, slow or cut bodies, raw bytes).
Every request is recorded, so tests can check what reached the server.

    with HTTPTestServer() as server:
        server.route("/v2/", respond(401, headers=[("WWW-Authenticate", 'Bearer realm="..."')]))
        server.route("/blob", sequence(respond(503), respond(200, b"data")))
        ... server.url("/blob") ...
        assert server.requests_for("/blob")[0].header("Authorization") is None
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import attrs

__all__ = [
    "Exchange",
    "HTTPTestServer",
    "Handler",
    "RecordedRequest",
    "drop_after",
    "echo_headers",
    "raw",
    "redirect",
    "respond",
    "sequence",
    "slow_body",
    "stall",
]

# Long enough for any test, short enough that a forgotten release cannot hang the suite.
STALL_LIMIT = 30.0


@attrs.frozen
class RecordedRequest:
    """A request as the server received it; ``path`` includes the query string."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), or None."""
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found


class Exchange:
    """One request being answered: what arrived, and raw writes back to the client."""

    def __init__(self, handler: _RequestHandler, request: RecordedRequest) -> None:
        self._handler = handler
        self.request = request
        self.server: HTTPTestServer = handler.server.owner  # type: ignore[attr-defined]
        # False once the client has gone: later writes are dropped.
        self.connected = True

    def send_head(
        self, status: int, headers: Iterable[tuple[str, str]] = (), *, reason: str = "Reason"
    ) -> None:
        """Write a status line and a header block (and nothing else)."""
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{name}: {value}" for name, value in headers]
        self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def write(self, data: bytes) -> None:
        """Write raw bytes and flush them; a vanished client is not an error here."""
        if not self.connected:
            return
        try:
            self._handler.wfile.write(data)
            self._handler.wfile.flush()
        except OSError:
            self.connected = False

    def wait(self, release: threading.Event | None = None, timeout: float = STALL_LIMIT) -> None:
        """Block until ``release`` is set, the server closes, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.server.closing.is_set():
            if release is not None and release.wait(0.02):
                return
            if release is None:
                self.server.closing.wait(0.02)


Handler = Callable[[Exchange], None]


def respond(
    status: int = 200,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    framing: str = "length",
    reason: str = "Reason",
) -> Handler:
    """Answer ``status`` with ``body``, framed by ``length`` (Content-Length), ``chunked``
    (in chunks of at most 7 bytes), or ``eof`` (no length; the connection is closed)."""
    fields = list(headers)
    if framing == "length":
        fields.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        fields.append(("Transfer-Encoding", "chunked"))
    elif framing != "eof":
        raise ValueError(f"unknown framing {framing!r}")
    fields.append(("Connection", "close"))

    def handle(exchange: Exchange) -> None:
        exchange.send_head(status, fields, reason=reason)
        if framing == "chunked":
            for start in range(0, len(body), 7):
                piece = body[start : start + 7]
                exchange.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            exchange.write(b"0\r\n\r\n")
        else:
            exchange.write(body)

    return handle


def redirect(
    location: str,
    status: int = 302,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    framing: str = "length",
) -> Handler:
    """Answer a redirect to ``location``, with a body framed as :func:`respond` does."""
    return respond(status, body, [("Location", location), *headers], framing=framing)


def echo_headers(status: int = 200) -> Handler:
    """Answer with the request's headers as a JSON list of ``[name, value]`` pairs."""

    def handle(exchange: Exchange) -> None:
        body = json.dumps([list(field) for field in exchange.request.headers]).encode()
        respond(status, body, [("Content-Type", "application/json")])(exchange)

    return handle


def stall(
    release: threading.Event | None = None,
    *,
    head: bytes | None = None,
    then: Handler | None = None,
) -> Handler:
    """Write ``head`` (raw bytes, e.g. a header block and part of a body), then send nothing
    until ``release`` is set (or the server closes), then answer with ``then`` if given."""

    def handle(exchange: Exchange) -> None:
        if head is not None:
            exchange.write(head)
        exchange.wait(release)
        if then is not None and not exchange.server.closing.is_set():
            then(exchange)

    return handle


def slow_body(
    chunks: Sequence[bytes],
    delay: float,
    status: int = 200,
    headers: Iterable[tuple[str, str]] = (),
) -> Handler:
    """Announce the whole length, then write ``chunks`` one by one, ``delay`` seconds apart."""
    fields = [*headers, ("Content-Length", str(sum(map(len, chunks)))), ("Connection", "close")]

    def handle(exchange: Exchange) -> None:
        exchange.send_head(status, fields)
        for index, chunk in enumerate(chunks):
            if index:
                exchange.server.closing.wait(delay)
            exchange.write(chunk)

    return handle


def drop_after(body: bytes, sent: int, status: int = 200) -> Handler:
    """Announce ``len(body)`` bytes, send only the first ``sent``, then close the connection."""

    def handle(exchange: Exchange) -> None:
        exchange.send_head(status, [("Content-Length", str(len(body)))])
        exchange.write(body[:sent])

    return handle


def raw(data: bytes) -> Handler:
    """Write ``data`` verbatim (status line, headers and all), then close the connection."""

    def handle(exchange: Exchange) -> None:
        exchange.write(data)

    return handle


def sequence(*handlers: Handler) -> Handler:
    """The n-th request is answered by the n-th handler; the last one answers all later ones."""
    if not handlers:
        raise ValueError("sequence() needs at least one handler")
    lock = threading.Lock()
    count = 0

    def handle(exchange: Exchange) -> None:
        nonlocal count
        with lock:
            index = min(count, len(handlers) - 1)
            count += 1
        handlers[index](exchange)

    return handle


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A client that connects and says nothing cannot hold a server thread for ever.
    timeout = 10

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers=tuple(self.headers.items()),
            body=body,
        )
        owner: HTTPTestServer = self.server.owner  # type: ignore[attr-defined]
        owner._record(request)
        exchange = Exchange(self, request)
        owner._handler_for(self.path)(exchange)
        # One exchange per connection: bodies framed by EOF need it, and nothing here needs
        # keep-alive.
        self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the recorded requests say what happened."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-answer is what several tests do on purpose."""


def _not_found(exchange: Exchange) -> None:
    respond(404, b'{"errors":[{"code":"NOT_FOUND","message":"no route"}]}')(exchange)


class HTTPTestServer:
    """An HTTP/1.1 server on 127.0.0.1 (a free port), serving from a thread until closed."""

    def __init__(self) -> None:
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._routes: dict[str, Handler] = {}
        self._requests: list[RecordedRequest] = []
        self._server = _Server(("127.0.0.1", 0), _RequestHandler)
        self._server.owner = self  # type: ignore[attr-defined]
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def route(self, path: str, handler: Handler) -> None:
        """Answer requests for ``path`` with ``handler``; a path with a query must match it all,
        one without matches any query."""
        with self._lock:
            self._routes[path] = handler

    def url(self, path: str = "/", *, userinfo: str = "") -> str:
        """The absolute URL of ``path`` on this server, optionally with ``user:password@``."""
        at = f"{userinfo}@" if userinfo else ""
        return f"http://{at}127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """The requests whose path (without the query) is ``path``."""
        return [r for r in self.requests if r.path.partition("?")[0] == path]

    def close(self) -> None:
        """Release every stalled handler and stop serving."""
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> HTTPTestServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _handler_for(self, path: str) -> Handler:
        with self._lock:
            handler = self._routes.get(path) or self._routes.get(path.partition("?")[0])
        return handler or _not_found
