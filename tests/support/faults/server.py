"""The fault server itself: a threaded HTTP/1.1 server on loopback, plain or TLS, that serves
images as the distribution registry does and answers any path as a test scripts it."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Final

import attrs

from ..common import sha256_digest
from ..tls import CertificateAuthority
from .acts import Act, Redirect, Serve, Status
from .exchange import (
    JSON_TYPE,
    Content,
    Exchange,
    Handler,
    RecordedRequest,
    blob_path,
    error_body,
    manifest_path,
    shutdown,
)
from .images import OCI_MANIFEST, Image

# A client that connects and sends nothing cannot hold a handler thread longer than this.
REQUEST_READ_TIMEOUT: Final = 10.0
# A TLS connection starts with a handshake record, content type 22 (RFC 8446, 5.1).
_TLS_HANDSHAKE: Final = 0x16


def tls_context(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server-side TLS context for 127.0.0.1 and localhost, and the CA bundle a client trusts
    it with (``curl --cacert``, the CLI's ``--cacert``): a throw-away CA in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = CertificateAuthority(directory)
    cert, key = authority.issue("faults")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, authority.ca_bundle


@attrs.define
class _Script:
    acts: tuple[Act, ...]
    used: int = 0

    def next(self) -> Act:
        act = self.acts[min(self.used, len(self.acts) - 1)]
        self.used += 1
        return act


@attrs.frozen
class _Routed:
    """A route's handler, as an act."""

    handler: Handler

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        self.handler(exchange)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_READ_TIMEOUT
    server: _Server

    def setup(self) -> None:
        owner = self.server.owner
        self._accepted = self.request
        owner._track(self.request)
        self.tls = False
        if owner.tls is not None:
            self.request.settimeout(self.timeout)
            wrapped = owner._start_tls(self.request)
            if wrapped is None:
                owner._untrack(self.request)
                raise ConnectionAbortedError("neither TLS nor an allowed plain connection")
            self.tls = wrapped is not self.request
            self.request = wrapped
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._untrack(self.request)
            if self.request is not self._accepted:
                self.request.close()  # the TLS socket: the server closes only what it accepted

    def _dispatch(self) -> None:
        owner = self.server.owner
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers=tuple(self.headers.items()),
            body=body,
            at=time.monotonic(),
            tls=self.tls,
        )
        act, content = owner._answer_for(request)
        act.perform(Exchange(self, request, owner), content)
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
    """The tests' server; see the module docstring. Use it as a context manager.

    With ``tls`` (a server-side context) it speaks HTTPS; with ``plain`` as well, the same port
    answers plain HTTP too, told apart by the first byte a client sends.
    """

    def __init__(self, *, tls: ssl.SSLContext | None = None, plain: bool = False) -> None:
        self.closing = threading.Event()
        self.tls = tls
        self.plain = plain
        self._lock = threading.Lock()
        self._content: dict[str, Content] = {}
        self._scripts: dict[str, _Script] = {}
        self._requests: list[RecordedRequest] = []
        self._sent: dict[str, int] = {}
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

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def url(
        self,
        path: str = "/",
        *,
        userinfo: str = "",
        host: str = "127.0.0.1",
        scheme: str | None = None,
    ) -> str:
        """The absolute URL of ``path`` here, optionally with ``user:password@``, under another
        name for this host (``localhost``), or with another scheme (``http`` on a ``plain``
        TLS server)."""
        at = f"{userinfo}@" if userinfo else ""
        return f"{scheme or self.scheme}://{at}{host}:{self.port}{path}"

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
                b"{}", [*JSON_TYPE, ("Docker-Distribution-API-Version", "registry/2.0")]
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

    def serve(self, image: Image, *, tags: Sequence[str] = ("latest",)) -> str:
        """Serve an :class:`Image` from :func:`oci_image`; its manifest digest."""
        return self.registry(image.repository, image.manifest, OCI_MANIFEST, image.blobs, tags=tags)

    def script(self, path: str, acts: Sequence[Act]) -> None:
        """Answer requests for ``path`` (query ignored) with ``acts``, one per request, the last
        repeating; replaces any earlier script or route for ``path``."""
        if not acts:
            raise ValueError("a script needs at least one act")
        with self._lock:
            self._scripts[path] = _Script(tuple(acts))

    def route(self, path: str, handler: Handler) -> None:
        """Answer every request for ``path`` with ``handler``; a path with a query must match it
        all, one without matches any query. Replaces any earlier script or route for ``path``."""
        self.script(path, [_Routed(handler)])

    # -- what it saw ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """The requests whose path, without its query, is ``path``."""
        return [r for r in self.requests if r.path.partition("?")[0] == path]

    def sent_for(self, path: str) -> int:
        """Bytes written back (header blocks included) to requests for ``path`` (query
        ignored), counting only what the client's side of the connection accepted."""
        with self._lock:
            return self._sent.get(path, 0)

    # -- life cycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving: wake stalled handlers, cut open connections, join every thread."""
        with self._lock:
            self.closing.set()
            connections = list(self._connections)
        for connection in connections:
            shutdown(connection)
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
                shutdown(connection)  # accepted as close() began: do not wait for its request
            else:
                self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _start_tls(self, connection: socket.socket) -> socket.socket | None:
        """The connection to talk over: wrapped in TLS when the client starts a handshake,
        as it is when plain HTTP is allowed, None when the client cannot be answered."""
        assert self.tls is not None
        try:
            first = connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return None
        if first and first[0] != _TLS_HANDSHAKE:
            return connection if self.plain else None
        self._untrack(connection)
        try:
            wrapped = self.tls.wrap_socket(connection, server_side=True)
        except (OSError, ssl.SSLError):
            return None
        self._track(wrapped)
        return wrapped

    def _count_sent(self, path: str, count: int) -> None:
        key = path.partition("?")[0]
        with self._lock:
            self._sent[key] = self._sent.get(key, 0) + count

    def _answer_for(self, request: RecordedRequest) -> tuple[Act, Content | None]:
        path = request.path.partition("?")[0]
        with self._lock:
            self._requests.append(request)
            content = self._content.get(path)
            script = self._scripts.get(request.path) or self._scripts.get(path)
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
        return error_body("BLOB_UNKNOWN", "blob unknown to registry")
    if "/manifests/" in path:
        return error_body("MANIFEST_UNKNOWN", "manifest unknown")
    return error_body("NOT_FOUND", "no such path")
