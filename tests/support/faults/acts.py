"""Acts: one scripted answer each, for :meth:`FaultServer.script`. An act with no body of its own
works on what the registry holds at the path, so a script reads as "fail this way, then behave"."""

from __future__ import annotations

import re
from typing import Final, Literal, Protocol

import attrs

from .exchange import (
    JSON_TYPE,
    Content,
    Exchange,
    Fields,
    RecordedRequest,
    as_fields,
    error_body,
    head_bytes,
    reason_phrase,
)

# Range = "bytes=" first-pos "-" [ last-pos ] (RFC 9110); one range is all we serve.
_RANGE: Final = re.compile(r"bytes=([0-9]+)-([0-9]*)")


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


@attrs.frozen
class Serve:
    """Answer normally: ``body`` (default: the registry's content) with ``headers``, Range
    honoured unless ``ranges`` is False (then a ``Range`` header is ignored with a 200)."""

    status: int = 200
    body: bytes | None = None
    headers: Fields = attrs.field(default=(), converter=as_fields)
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
    headers: Fields = attrs.field(default=(), converter=as_fields)
    body: bytes | None = None

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        body = self.body
        if body is None:
            body = error_body(f"INJECTED_{self.code}", reason_phrase(self.code))
        Serve(self.code, body, _merge(JSON_TYPE, self.headers)).perform(exchange, None)


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
        exchange.raw(head_bytes(self.status, fields, extra=self.line + b"\r\n"))
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
    headers: Fields = attrs.field(default=(), converter=as_fields)
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
    headers: Fields = attrs.field(default=JSON_TYPE, converter=as_fields)

    def perform(self, exchange: Exchange, content: Content | None) -> None:
        exchange.head(self.status, [*self.headers, ("Content-Length", str(self.size))])
        if exchange.request.method != "HEAD":
            _fill(exchange, self.size)
