"""Running the ``curl`` program: every network exchange of the package goes through here.

:func:`request` runs one request and decodes curl's ``-i --raw`` output into its final response
(manifests, tokens); :mod:`mesos_uri._transfers` runs many downloads into files with one curl.
Both build on :func:`run`, which guarantees:

* No secret in argv: the URL and every header reach curl through a config on stdin (``-K -``),
  because argv is readable by every user in ``/proc/<pid>/cmdline``. ``-q`` comes first, so
  ``~/.curlrc`` is never read.
* Only the protocols the caller chose (``--proto``, ``--proto-redir``), and curl follows no
  redirect itself: the caller decides where a ``Location`` may lead (:mod:`mesos_uri._urls`).
* No injection: a URL or header holding CR, LF or NUL is refused, and every config value is quoted
  with the escapes curl's config parser undoes, control characters included.
* Bounded: what curl prints is read up to limits, and its messages are sanitised before they
  become part of an error.
* No orphan: whatever ends the call (success, an error, a raising callback, cancellation), the
  curl child is killed and reaped before the call returns or raises.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Final

import attrs

from mesos_uri._http import Response, decode_responses
from mesos_uri._urls import redact_url
from mesos_uri.errors import CurlError, DecodeError, ResponseTooLargeError, UsageError, excerpt

if TYPE_CHECKING:
    import anyio.abc

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_STALL_TIMEOUT",
    "TLS",
    "WEB_PROTOCOLS",
    "Timeouts",
    "config_lines",
    "curl_error",
    "quote",
    "request",
    "run",
    "start_early",
    "stop_early",
]

_log = logging.getLogger(__name__)

# The program run for every exchange, found on PATH; this environment variable names another.
CURL_ENV: Final = "MESOS_URI_CURL"
# What curl may speak to a registry, its token service and its blob storage.
WEB_PROTOCOLS: Final = "http,https"

# The Mesos agent runs its fetcher with --fetcher_stall_timeout, whose default is 1mins.
DEFAULT_STALL_TIMEOUT: Final = 60.0
# dockerd's registry dialer gives up connecting after 30 s as well.
DEFAULT_CONNECT_TIMEOUT: Final = 30.0

# curl's stderr is one line per failure; keep enough for any of them, bound the rest.
_MAX_STDERR_BYTES: Final = 64 * 1024
# The largest read from a pipe; asyncio's pipe reader holds at most 128 KiB anyway.
_CHUNK: Final = 256 * 1024
# How request mode asks curl to print the responses: header blocks and bodies as they came.
_REQUEST_OPTIONS: Final = ("-i", "--raw")
# curl reads config lines of at most 100 KiB.
_MAX_CONFIG_LINE: Final = 100 * 1024

# RFC 9110 §5.1: field-name = token.
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FORBIDDEN: Final = re.compile(r"[\r\n\0]")
# What curl's config parser turns back into control characters inside a quoted value.
_ESCAPES: Final = str.maketrans(
    {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r", "\v": "\\v"}
)


def _escape(text: str) -> str:
    """Local input shown in an error: control characters as escapes, bounded."""
    return excerpt(text.encode("unicode_escape").decode("ascii"))


def quote(value: str) -> str:
    """``value`` double-quoted in curl's config syntax, so that curl reads back exactly it."""
    if "\0" in value:
        raise UsageError(f"Refusing '{_escape(value)}': it contains NUL")
    return '"' + value.translate(_ESCAPES) + '"'


@attrs.frozen
class Timeouts:
    """How long curl may wait: for a connection, and for a transfer that moves no bytes. ``None``
    (or 0) turns a check off."""

    stall: float | None = DEFAULT_STALL_TIMEOUT
    connect: float | None = DEFAULT_CONNECT_TIMEOUT

    def config_lines(self) -> list[str]:
        # speed-limit defaults to 1 byte/s: slower than that for this long is a stall. curl counts
        # whole seconds: a fraction rounds up, never down to 0 ("no check at all").
        lines = [f"speed-time = {max(1, math.ceil(self.stall))}"] if self.stall else []
        # The stall check starts with the transfer: a server that accepts the connection and
        # says nothing (an FTP server that never greets, a TLS handshake that hangs) is caught
        # by the connect timeout, which is therefore never longer than the stall timeout.
        connect = min((t for t in (self.connect, self.stall) if t), default=None)
        # curl reads milliseconds; less than one would be 0, its 300 s default.
        return [*lines, f"connect-timeout = {max(connect, 0.001):.3f}"] if connect else lines


@attrs.frozen
class TLS:
    """How curl checks a server and proves itself: a CA bundle, a client certificate, or
    (``insecure``) no verification at all, which only ``--insecure_registry`` asks for."""

    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False

    def config_lines(self) -> list[str]:
        # --cert reads "certificate[:password]": a ':' in the path (Docker's certs.d/<host:port>/
        # always has one) and a '\\' must be escaped, or curl cuts the path there.
        cert = self.cert.replace("\\", "\\\\").replace(":", "\\:") if self.cert else self.cert
        files = (("cacert", self.cacert), ("cert", cert), ("key", self.key))
        lines = [f"{name} = {quote(value)}" for name, value in files if value is not None]
        return [*lines, "insecure"] if self.insecure else lines


def config_lines(
    url: str,
    *,
    headers: Mapping[str, str] = {},
    protocols: str = WEB_PROTOCOLS,
    tls: TLS | None = None,
    timeouts: Timeouts,
) -> list[str]:
    stripped = url.strip()  # as the original hands it to curl
    if _FORBIDDEN.search(stripped):
        raise UsageError(f"Refusing URL '{_escape(redact_url(url))}': it contains CR, LF or NUL")
    lines = [
        f"url = {quote(stripped)}",
        # "=" drops curl's default set first: nothing but these, for the URL and any redirect.
        f"proto = {quote('=' + protocols)}",
        f"proto-redir = {quote('=' + WEB_PROTOCOLS)}",
    ]
    for name, value in headers.items():
        if _TOKEN.fullmatch(name) is None:
            raise UsageError(f"Refusing header '{_escape(name)}': its name is not an HTTP token")
        # Never echo the value: it may be a credential.
        if _FORBIDDEN.search(value):
            raise UsageError(f"Refusing header '{name}': its value contains CR, LF or NUL")
        # "Name:" would make curl drop a header of its own; "Name;" sends it empty.
        lines.append(f"header = {quote(f'{name}: {value}' if value else f'{name};')}")
    if tls is not None:
        lines += tls.config_lines()
    lines += timeouts.config_lines()
    if any(len(line) >= _MAX_CONFIG_LINE for line in lines):
        raise UsageError(
            f"Refusing a request to '{excerpt(redact_url(url))}': a header is too long"
        )
    return lines


async def request(
    url: str,
    *,
    headers: Mapping[str, str] = {},
    data: bytes | None = None,
    max_bytes: int,
    tls: TLS | None = None,
    timeouts: Timeouts = Timeouts(),
) -> Response:
    """The final response curl printed (1xx and a proxy's CONNECT answer come before it); an
    HTTP error or a redirect is a response too. ``max_bytes`` bounds curl's whole stdout, header
    blocks included. A GET, or with ``data`` a POST of it (the package sends no other method),
    from a private temporary file that keeps it out of argv."""
    config = _request_config(url, headers, tls, timeouts)
    collected = bytearray()

    def collect(chunk: bytes) -> None:
        collected.extend(chunk)
        if len(collected) > max_bytes:
            raise ResponseTooLargeError(
                f"Response from '{redact_url(url)}' is larger than the {max_bytes}-byte limit",
                limit=max_bytes,
            )

    started = time.monotonic()
    early = _early.pop(tuple(config), None) if data is None else None
    if early is not None:
        status, stderr = await _adopt(early, collect)
    else:
        with _with_data(config, data) as sent:
            status, stderr = await run(_REQUEST_OPTIONS, sent, what=url, stdout=collect)
    if status != 0:
        # curl's first line says what failed; what follows (for a certificate, a paragraph
        # on how to fix curl's own configuration) would only bury it.
        text = excerpt(stderr.strip().split("\n", 1)[0])
        raise curl_error(url, status, text, stderr=text)
    try:
        response = decode_responses(bytes(collected))[-1]
    except DecodeError as exc:
        # No body bytes in the text: they are the server's, and may be anything.
        raise type(exc)(f"Failed to decode HTTP responses: {exc}") from exc
    _log.debug(
        "%s %s -> %s, %d bytes, %.3f s%s",
        "GET" if data is None else "POST",
        redact_url(url),
        response.code,
        len(response.body),
        time.monotonic() - started,
        " (started early)" if early is not None else "",
    )
    return response


def _request_config(
    url: str, headers: Mapping[str, str], tls: TLS | None, timeouts: Timeouts
) -> list[str]:
    # The decoder reads HTTP/1.x; curl would pick HTTP/2 over TLS.
    return [*config_lines(url, headers=headers, tls=tls, timeouts=timeouts), "http1.1"]


# Requests started before the event loop, by the config they were started with.
_early: dict[tuple[str, ...], subprocess.Popen[bytes]] = {}


def start_early(url: str, *, headers: Mapping[str, str], timeouts: Timeouts) -> None:
    """Start a GET that :func:`request` will be asked for later, with the same arguments.

    The command line knows its first request (a manifest's) before it has imported the rest of
    the program: curl connects and asks while Python is still busy, which on a real network saves
    a round trip or two. :func:`stop_early` ends a request nobody took over.
    """
    config = _request_config(url, headers, None, timeouts)
    pipe = subprocess.PIPE
    try:
        process = subprocess.Popen(_argv(_REQUEST_OPTIONS), stdin=pipe, stdout=pipe, stderr=pipe)
    except OSError:
        return  # no curl to run: request tries again, and says why it cannot
    assert process.stdin is not None
    with contextlib.suppress(OSError), process.stdin:  # curl exited at once: its status says why
        process.stdin.write(_config_bytes(config))
    _early[tuple(config)] = process


def stop_early() -> None:
    """Kill and reap the requests :func:`start_early` started that nobody took over."""
    while _early:
        _stop(_early.popitem()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()  # Popen ignores a process that is already gone
    process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


async def _adopt(
    process: subprocess.Popen[bytes], stdout: Callable[[bytes], None]
) -> tuple[int, str]:
    """The status and messages of an early request, its output fed to ``stdout``; like
    :func:`run`, it returns or raises only once curl is gone."""
    import anyio

    def read() -> tuple[int, str]:
        assert process.stdout is not None
        assert process.stderr is not None
        descriptor = process.stdout.fileno()
        while chunk := os.read(descriptor, _CHUNK):
            stdout(chunk)  # raises past the caller's limit: curl is killed below
        # curl's messages are a line or two: the pipe held them while stdout was read.
        messages = process.stderr.read(_MAX_STDERR_BYTES).decode("utf-8", "replace")
        return process.wait(), messages

    try:
        return await anyio.to_thread.run_sync(read, abandon_on_cancel=True)
    finally:
        # Killing it ends a read the worker thread may still be blocked in.
        _stop(process)


def curl_error(url: str, exit_code: int, message: str, *, stderr: str) -> CurlError:
    """The original's error for a curl that failed (a signal death, a negative status, too)."""
    text = f"Failed to perform 'curl' for '{redact_url(url)}': {message}"
    return CurlError(text, exit_code=exit_code, stderr=stderr)


@contextlib.contextmanager
def _with_data(config: list[str], data: bytes | None) -> Iterator[list[str]]:
    """``config``, with a line that sends ``data`` from a 0600 temporary file (removed after)."""
    if data is None:
        yield config
        return
    import tempfile  # only a refresh token's POST sends data

    with tempfile.NamedTemporaryFile(prefix="mesos-uri-data-") as file:  # made 0600
        file.write(data)
        file.flush()
        yield [*config, f"data-binary = {quote('@' + file.name)}"]


def _argv(options: Sequence[str]) -> list[str]:
    curl = os.environ.get(CURL_ENV) or "curl"
    return [curl, "-q", "-s", "-S", "--no-progress-meter", *options, "-K", "-"]


def _config_bytes(config: Sequence[str]) -> bytes:
    # A URL from the command line may hold bytes that are not UTF-8: curl gets them as they came.
    return "".join(f"{line}\n" for line in config).encode("utf-8", "surrogateescape")


async def run(
    options: Sequence[str],
    config: Sequence[str],
    *,
    what: str,
    stdout: Callable[[bytes], None] | None = None,
    stderr_line: Callable[[str], bool] | None = None,
    spawned: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Run curl with ``options`` and ``config`` (on stdin); return its status and its messages.

    ``stderr_line`` sees each line of stderr first and returns True for a line it consumed (a
    transfer's record); the rest is kept (bounded) as curl's messages. ``spawned`` gets the pid
    before curl reads its config, so before any transfer. An exception from a callback kills curl
    and is re-raised unchanged once curl is reaped. ``what`` (a URL) names the exchange in errors.
    """
    import anyio  # here: importing this module starts no event loop machinery (see start_early)

    try:
        # Shielded: a cancellation inside the spawn would lose the child before we can reap it.
        with anyio.CancelScope(shield=True):
            process = await anyio.open_process(_argv(options))
    except OSError as exc:
        hint = " (is curl installed and on PATH?)" if isinstance(exc, FileNotFoundError) else ""
        raise CurlError(f"Failed to exec the curl subprocess: {exc}{hint}") from exc
    failure: list[BaseException] = []
    messages = _Messages(stderr_line)
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None

        def fail(exc: BaseException) -> None:
            if not failure:
                failure.append(exc)
            _kill(process)

        if spawned is not None:
            spawned(process.pid)
        # All three pipes at once, so curl never blocks on a full one.
        async with anyio.create_task_group() as group:
            group.start_soon(_feed, process.stdin, _config_bytes(config))
            group.start_soon(_pump, process.stderr, messages.feed, fail, what)
            group.start_soon(_pump, process.stdout, stdout or _discard, fail, what)
        status = await process.wait()
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                _kill(process)
            await process.aclose()
    if failure:
        raise failure[0]
    return status, messages.finish()


class _Messages:
    """curl's stderr, split into lines: each offered to a consumer, the rest kept, bounded."""

    def __init__(self, consumer: Callable[[str], bool] | None) -> None:
        self._consumer = consumer or (lambda line: False)
        self._pending = b""
        self._kept = bytearray()

    def feed(self, chunk: bytes) -> None:
        *lines, rest = (self._pending + chunk).split(b"\n")
        self._pending = rest[:_MAX_STDERR_BYTES]
        for line in lines:
            if self._consumer(line.decode("utf-8", "replace")):
                continue
            if len(self._kept) < _MAX_STDERR_BYTES:
                self._kept += line[: _MAX_STDERR_BYTES - len(self._kept)] + b"\n"

    def finish(self) -> str:
        """What was kept, once the last line (it has no newline) was offered too."""
        if self._pending:
            self.feed(b"\n")
        return self._kept.decode("utf-8", "replace")


def _discard(chunk: bytes) -> None:
    pass


def _kill(process: anyio.abc.Process) -> None:
    # os.kill, not process.kill(): on asyncio that is Popen.send_signal, whose poll() may reap
    # a curl that just exited before asyncio's child watcher does; the watcher then logs
    # "Unknown child process pid N, will report returncode 255" (on the CLI's stderr, too).
    # Only the watcher reaps, so until returncode is set the pid is still our zombie or child.
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.kill(process.pid, signal.SIGKILL)


async def _feed(stream: anyio.abc.ByteSendStream, config: bytes) -> None:
    import anyio

    # curl may exit before it reads its config: its status and stderr say why.
    async with stream:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await stream.send(config)


async def _pump(
    stream: anyio.abc.ByteReceiveStream,
    consume: Callable[[bytes], None],
    fail: Callable[[BaseException], None],
    what: str,
) -> None:
    import anyio

    while True:
        try:
            chunk = await stream.receive(_CHUNK)
        except anyio.EndOfStream:
            return
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            error = CurlError(f"Failed to read from 'curl' for '{redact_url(what)}': {exc}")
            error.__cause__ = exc
            fail(error)
            return
        try:
            consume(chunk)
        except Exception as exc:
            # Read on to EOF after a failure: on asyncio a pipe left unread is never seen to
            # close, and waiting for the killed curl would then never end.
            consume = _discard
            fail(exc)
