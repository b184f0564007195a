"""Route handlers for :meth:`FaultServer.route`: a function that answers every request for its
path through its :class:`Exchange`, and ways to combine them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence

from .exchange import Exchange, Handler


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
