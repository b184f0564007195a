"""The tests' HTTP server: a loopback registry that fails on cue, and a hostile one on demand.

A :class:`FaultServer` is a threaded HTTP/1.1 server on 127.0.0.1 (a free port), plain or TLS. It
can serve images the way the distribution registry does (``/v2/``, manifests by tag and by digest
with ``Docker-Content-Digest``, blobs with ``Range`` support), and any path can be given its
answers in one of two styles:

* a *script*: a list of acts, one consumed per request, the last one repeating. An act with no
  body of its own (``Serve()``, ``Drop(after=...)``, ``WrongBytes()``, ...) works on what the
  registry holds for that path, so a script reads as "fail this way, then behave"::

      with FaultServer() as server:
          server.registry("lab/app", manifest, MEDIA_TYPE, {digest: blob})
          server.script(blob_path("lab/app", digest), [Status(503), Drop(after=100), Serve()])

* a *route*: a handler, a function that answers every request for the path through its
  :class:`Exchange` (``respond``, ``redirect``, ``stall``, ``sequence`` of handlers, ...)::

      server.route("/blob", sequence(respond(503), respond(200, b"data")))

The hostile acts answer as a registry under an attacker's control would: redirects anywhere
(``Redirect``), bodies that never end (``Endless``), huge error answers generated on the fly
(``Huge``). Beside the server stand a :class:`Canary`, a listener on another port that records
every byte anyone sends it and answers none, and a :class:`Blackhole`, a port no connection
attempt gets through to.

Every request is recorded with the time it arrived, and every byte sent back is counted per
path. :meth:`FaultServer.close` returns only when every handler thread has ended, stalled ones
included, and the port is free again.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http
import json
import re
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Protocol, cast

import attrs

from .tls import CertificateAuthority

__all__ = [
    "OCI_CONFIG",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "Act",
    "BadChallenge",
    "Blackhole",
    "Canary",
    "Content",
    "Drop",
    "Endless",
    "Exchange",
    "FaultServer",
    "Handler",
    "Hangup",
    "Huge",
    "Image",
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
    "descriptor",
    "drop_after",
    "echo_headers",
    "error_body",
    "http_date",
    "manifest_path",
    "oci_image",
    "raw",
    "redirect",
    "respond",
    "sequence",
    "sha256_digest",
    "slow_body",
    "stall",
    "tls_context",
]

Fields = tuple[tuple[str, str], ...]

# A client that connects and sends nothing cannot hold a handler thread longer than this.
REQUEST_READ_TIMEOUT: Final = 10.0
# How long a handler waits, at most, for a release it was promised: long enough for any test,
# short enough that a forgotten release cannot hang the suite.
STALL_LIMIT: Final = 30.0
# Range = "bytes=" first-pos "-" [ last-pos ] (RFC 9110); one range is all we serve.
_RANGE: Final = re.compile(r"bytes=([0-9]+)-([0-9]*)")
# A TLS connection starts with a handshake record, content type 22 (RFC 8446, 5.1).
_TLS_HANDSHAKE: Final = 0x16

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"


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


def error_body(code: str, message: str) -> bytes:
    """A registry's JSON error body: ``{"errors": [{"code": ..., "message": ...}]}``."""
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


# -- what arrives, what goes back -----------------------------------------------------------------


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
    headers: Fields = attrs.field(default=(), converter=_fields)


class Exchange:
    """One request being answered: what arrived, and raw writes back to the client."""

    def __init__(self, handler: _Handler, request: RecordedRequest, server: FaultServer) -> None:
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
        self.raw(_head_bytes(status, headers, reason=reason))

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
        _shutdown(self._handler.connection)


def _head_bytes(
    status: int, headers: Iterable[tuple[str, str]], extra: bytes = b"", reason: str | None = None
) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status) if reason is None else reason}"]
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


# -- acts: one scripted answer each ---------------------------------------------------------------


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
        return status, (), body  # RFC 9110: an unparseable Range is ignored
    first = int(match[1])
    last = min(int(match[2]), len(body) - 1) if match[2] else len(body) - 1
    if first >= len(body) or last < first:
        return 416, (("Content-Range", f"bytes */{len(body)}"),), b""
    return 206, (("Content-Range", f"bytes {first}-{last}/{len(body)}"),), body[first : last + 1]


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
            body = error_body(f"INJECTED_{self.code}", _reason(self.code))
        Serve(self.code, body, _merge(_JSON, self.headers)).perform(exchange, None)


@attrs.frozen
class RateLimited:
    """429 with ``Retry-After``: delay-seconds given as an int, or any text (e.g. an HTTP-date
    from :func:`http_date`, or garbage) given as a str."""

    retry_after: int | str = 1

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        headers = (("Retry-After", str(self.retry_after)),)
        body = error_body("TOOMANYREQUESTS", "rate limited (injected)")
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
        Status(401, headers, error_body("UNAUTHORIZED", "authentication required")).perform(
            exchange, content
        )


@attrs.frozen
class Redirect:
    """A redirect (``status`` 301, 302, 303, 307 or 308) to ``location``: a path on this server
    (itself, for a loop) or any URL at all, ``file:`` and ``gopher:`` included."""

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


# Filler for generated bodies: one piece is written per call, so a body of any length costs the
# server this much memory.
_FILLER: Final = b"A" * (64 * 1024)
# Where an endless body stops sending (and then stalls): far beyond any size a test declares,
# so that a client still reading there is caught, but a bound on what a failing client writes.
ENDLESS_LIMIT: Final = 64 * 1024 * 1024


def _fill(exchange: Exchange, total: int, *, chunked: bool = False) -> int:
    """Send ``total`` filler bytes (as chunks of chunked encoding with ``chunked``) while the
    client reads them; the bytes sent."""
    sent = 0
    while sent < total and exchange.connected and not exchange.server.closing.is_set():
        piece = _FILLER[: total - sent]
        exchange.raw(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if exchange.connected:
            sent += len(piece)
    return sent


@attrs.frozen
class Endless:
    """``status`` with a body that never ends: ``chunked`` (Transfer-Encoding: chunked, never
    the last chunk) or ``close`` (no length at all: the body would end with the connection).
    Filler bytes go out as fast as the client reads them; after ``limit`` bytes the server
    sends nothing more but keeps the connection open, which the client cannot tell apart from a
    registry that is just slow."""

    framing: Literal["chunked", "close"] = "chunked"
    status: int = 200
    headers: Fields = attrs.field(default=(), converter=_fields)
    limit: int = ENDLESS_LIMIT

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        framing = (("Transfer-Encoding", "chunked"),) if self.framing == "chunked" else ()
        exchange.head(self.status, [*self.headers, *framing])
        if exchange.request.method == "HEAD":
            return
        _fill(exchange, self.limit, chunked=self.framing == "chunked")
        while exchange.connected and exchange.pause(0.05):
            pass  # the client's turn: it should have given up long ago


@attrs.frozen
class Huge:
    """``status`` with an honestly framed body of ``size`` filler bytes, generated piece by
    piece while the client reads: a 1 GiB answer never sits in the server's memory."""

    size: int
    status: int = 500
    headers: Fields = attrs.field(default=_JSON, converter=_fields)

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        exchange.head(self.status, [*self.headers, ("Content-Length", str(self.size))])
        if exchange.request.method != "HEAD":
            _fill(exchange, self.size)


@attrs.frozen
class _Routed:
    """A route's handler, as an act."""

    handler: Handler

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        self.handler(exchange)


# -- route handlers: a function answers every request for its path --------------------------------

Handler = Callable[[Exchange], None]


def respond(
    status: int = 200,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    framing: str = "length",
    reason: str | None = None,
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

    def handle(exchange: Exchange) -> None:
        exchange.head(status, fields, reason=reason)
        if framing == "chunked":
            for start in range(0, len(body), 7):
                piece = body[start : start + 7]
                exchange.raw(b"%x\r\n%s\r\n" % (len(piece), piece))
            exchange.raw(b"0\r\n\r\n")
        else:
            exchange.raw(body)

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
            exchange.raw(head)
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
    fields = [*headers, ("Content-Length", str(sum(map(len, chunks))))]

    def handle(exchange: Exchange) -> None:
        exchange.head(status, fields)
        for index, chunk in enumerate(chunks):
            if index:
                exchange.server.closing.wait(delay)
            exchange.raw(chunk)

    return handle


def drop_after(body: bytes, sent: int, status: int = 200) -> Handler:
    """Announce ``len(body)`` bytes, send only the first ``sent``, then close the connection."""

    def handle(exchange: Exchange) -> None:
        exchange.head(status, [("Content-Length", str(len(body)))])
        exchange.raw(body[:sent])

    return handle


def raw(data: bytes) -> Handler:
    """Write ``data`` verbatim (status line, headers and all), then close the connection."""

    def handle(exchange: Exchange) -> None:
        exchange.raw(data)

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


# -- images as a registry holds them --------------------------------------------------------------


def descriptor(data: bytes, media_type: str = OCI_LAYER, **extra: object) -> dict[str, object]:
    """The OCI descriptor of ``data``; ``extra`` fields (``urls``, or a ``digest`` or ``size``
    that lies) are added or override."""
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


@attrs.frozen
class Image:
    """An OCI image: the manifest bytes, and the blobs (by digest) the registry holds for it."""

    repository: str
    manifest: bytes
    blobs: Mapping[str, bytes] = attrs.field(eq=False, repr=False)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def declared(self) -> int:
        """The bytes a complete fetch puts in DIR: the manifest and every blob it declares."""
        document = json.loads(self.manifest)
        sizes = [document["config"]["size"], *(layer["size"] for layer in document["layers"])]
        return len(self.manifest) + sum(int(size) for size in sizes)

    def uri(self, host: str, reference: str = "latest", *, transport: str = "http") -> str:
        """``docker://HOST/REPO?REFERENCE#TRANSPORT``."""
        return f"docker://{host}/{self.repository}?{reference}#{transport}"

    def manifest_path(self, reference: str = "latest") -> str:
        return manifest_path(self.repository, reference)

    def blob_path(self, digest: str) -> str:
        return blob_path(self.repository, digest)


def oci_image(
    repository: str,
    layers: Sequence[bytes],
    *,
    descriptors: Sequence[Mapping[str, object]] = (),
) -> Image:
    """An OCI image of ``layers`` (each held by the registry), followed by ``descriptors`` as
    given (layers the registry need not hold: foreign ones, hostile ones)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": repository}).encode()
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config, OCI_CONFIG),
        "layers": [*(descriptor(layer) for layer in layers), *map(dict, descriptors)],
    }
    blobs = {sha256_digest(data): data for data in [config, *layers]}
    return Image(repository, json.dumps(document).encode(), blobs)


# -- the server -----------------------------------------------------------------------------------


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


# -- listeners that are not HTTP servers ----------------------------------------------------------


class Canary:
    """A TCP listener on another loopback port standing for any other local service (a Redis,
    a memcached, an FTP server): it accepts connections, records every byte it receives, and
    never sends one. A test asserts it saw no connection: then nothing reached it, through
    any redirect or any URL."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._connections: list[bytearray] = []
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, name="canary")
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, scheme: str, path: str = "/", *, host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return len(self._connections)

    @property
    def received(self) -> bytes:
        """Every byte received so far, connection after connection."""
        with self._lock:
            return b"".join(bytes(data) for data in self._connections)

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select():
                if key.fileobj is self._wake_reader:
                    return
                if key.fileobj is self._listener:
                    self._accept()
                else:
                    self._read(cast(socket.socket, key.fileobj), key.data)

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError):
            connection, _ = self._listener.accept()
            connection.setblocking(False)
            data = bytearray()
            with self._lock:
                self._connections.append(data)
            self._open.append(connection)
            self._selector.register(connection, selectors.EVENT_READ, data)

    def _read(self, connection: socket.socket, data: bytearray) -> None:
        try:
            chunk = connection.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            with self._lock:
                data.extend(chunk)
            return
        self._selector.unregister(connection)
        connection.close()

    def close(self) -> None:
        self._wake_writer.send(b"x")
        self._thread.join()
        for connection in self._open:
            connection.close()
        for sock in (self._listener, self._wake_reader, self._wake_writer):
            sock.close()
        self._selector.close()

    def __enter__(self) -> Canary:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# Connections that fill a listen(0) queue; Linux keeps one more than the backlog, the rest spare.
_BACKLOG_FILLERS: Final = 4


class Blackhole:
    """A loopback port that no connection attempt gets through to: it listens, but its accept
    queue is full and never drained, so the kernel drops every new SYN (a host that is down
    behind a firewall looks the same). Only a connect timeout ends an attempt."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.port: int = self._listener.getsockname()[1]
        self._fillers: list[socket.socket] = []
        for _ in range(_BACKLOG_FILLERS):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self._fillers.append(filler)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        for sock in [*self._fillers, self._listener]:
            sock.close()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
