"""Every HTTP exchange of the package, run by the ``curl`` program in a subprocess.

Two modes, as in the original (SPEC.md §4):

* :func:`request` follows redirects and decodes curl's ``-i --raw`` output into the last response:
  manifests, tokens, challenge probes.
* :func:`download` does not follow redirects and streams the body of a 200/206 into a callback as
  it arrives, so the caller can hash and size-check it before any byte is trusted (a departure
  from SPEC.md §4.2, where curl writes every body, error pages included, to the target file).

What both guarantee:

* No secret in argv: the URL and every header reach curl through a config on stdin (``-K -``),
  because argv is readable by every user in ``/proc/<pid>/cmdline``.
* No header injection: a header whose name or value holds CR, LF or NUL is refused before curl
  starts.
* No orphan: whatever ends the call (success, an error, a raising sink, cancellation), the curl
  child is killed and reaped before the call returns or raises.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final, TypeAlias
from urllib.parse import urljoin

import anyio
import anyio.abc
import attrs

from mesos_uri.errors import CurlError, DecodeError, TruncatedResponseError, UsageError
from mesos_uri.http import MAX_HEADER_BYTES, Response, decode_responses, parse_head

__all__ = [
    "CURL",
    "CURL_ENV",
    "MAX_ERROR_BODY_BYTES",
    "TLS",
    "DownloadResult",
    "ResponseTooLargeError",
    "Sink",
    "Transfer",
    "TransferResult",
    "download",
    "download_batch",
    "fetch_to_file",
    "redact_url",
    "request",
]

# Receives a 200/206 body piece by piece as it arrives (its return value is ignored, so
# `file.write` fits); raising stops curl at once.
Sink: TypeAlias = Callable[[bytes], object]

# The program run for every exchange, found on PATH; CURL_ENV names another one.
CURL: Final = "curl"
CURL_ENV: Final = "MESOS_URI_CURL"

# A registry's JSON error body is small; more than this is not worth holding for a message.
MAX_ERROR_BODY_BYTES: Final = 64 * 1024
# curl's stderr is one line per failure; keep enough for any of them, bound the rest.
_MAX_STDERR_BYTES: Final = 64 * 1024
# How much of an undecodable stdout an error message quotes.
_MAX_QUOTED_STDOUT: Final = 2 * 1024
# The largest read from curl's stdout; asyncio's pipe reader holds at most 128 KiB anyway.
_CHUNK: Final = 256 * 1024

# RFC 9110 §5.1: field-name = token.
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FORBIDDEN: Final = re.compile(r"[\r\n\0]")
# The userinfo of an authority: everything up to the last "@" before the path (as urlsplit does).
_USERINFO: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def redact_url(url: str) -> str:
    """``url`` without its ``user:password@``, for messages and logs."""
    return _USERINFO.sub(r"\1", url)


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
        lines = [
            f"{name} = {_quote(value)}"
            for name, value in (("cacert", self.cacert), ("cert", cert), ("key", self.key))
            if value is not None
        ]
        return [*lines, "insecure"] if self.insecure else lines


class ResponseTooLargeError(DecodeError):
    """curl's output passed ``max_bytes``; curl was killed. The caller names its own limit."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


@attrs.frozen
class Transfer:
    """One URL of a batch, and the file curl writes its body to (whatever the status)."""

    url: str
    output: str


@attrs.frozen
class TransferResult:
    """How one transfer of a batch ended: curl's exit code and message for it, the HTTP status
    (0 when none arrived), the body bytes written, and the ``Retry-After`` it carried."""

    url: str
    exit_code: int
    code: int
    size: int
    retry_after: str = ""
    challenge: str = ""
    redirect_url: str = ""
    error: str = ""


@attrs.frozen
class DownloadResult:
    """What :func:`download` saw.

    ``response`` has the status and headers of the final (non-1xx) response; its body is empty for
    200/206 (those bytes went to the sink) and holds at most :data:`MAX_ERROR_BODY_BYTES` of any
    other body. ``redirect_url`` is the absolute ``Location`` of a 3xx, which is not followed:
    the caller decides which headers the next hop may see. ``received`` counts the body bytes
    passed to the sink.
    """

    response: Response
    redirect_url: str | None
    received: int


async def request(
    url: str,
    *,
    headers: Mapping[str, str] = {},
    stall_timeout: float | None = None,
    connect_timeout: float | None = None,
    max_bytes: int | None = None,
    method: str = "GET",
    data: bytes | None = None,
    tls: TLS | None = None,
) -> Response:
    """Run curl in request mode (SPEC.md §4.1) and return the last response it printed.

    Redirects are followed by curl; the responses before the last are those redirects
    (SPEC §4.1 step 8). HTTP error codes are responses, not errors. ``max_bytes`` bounds curl's
    whole stdout (header blocks included): beyond it curl is killed and :class:`DecodeError`
    raised. ``data`` is sent as the body (``--data-binary``), from a private temporary file so
    that it stays out of argv.
    """
    program = _program()
    config = [_url_line(url), *_header_lines(headers), *(tls.config_lines() if tls else [])]
    options = ["-s", "-S", "-L", "-i", "--raw"]
    if _supports_http11(program):
        # The decoder reads HTTP/1.x only; curl would otherwise pick HTTP/2 over TLS (SPEC §4.1).
        options.append("--http1.1")
    options += _timeout_options(stall_timeout, connect_timeout)
    config += _method_lines(method, data is not None)
    collected = bytearray()

    def collect(chunk: bytes) -> None:
        collected.extend(chunk)
        if max_bytes is not None and len(collected) > max_bytes:
            raise ResponseTooLargeError(
                f"Response from '{redact_url(url)}' is larger than the {max_bytes}-byte limit",
                limit=max_bytes,
            )

    if data is None:
        status, stderr = await _run(program, options, config, url, collect)
    else:
        status, stderr = await _with_data_file(
            data, lambda line: _run(program, options, [*config, line], url, collect)
        )
    _check_status(url, status, stderr)
    # No proxy re-parse keyed on https_proxy (SPEC §4.3.3): the decoder recognises a CONNECT
    # block by its shape.
    stdout = bytes(collected)
    try:
        responses = decode_responses(stdout)
    except DecodeError as exc:
        quoted = stdout[:_MAX_QUOTED_STDOUT].decode("utf-8", "replace")
        # type(exc): a truncated response stays one, so that it is retried.
        raise type(exc)(f"Failed to decode HTTP responses: {exc}\n{quoted}") from exc
    return responses[-1]


async def download(
    url: str,
    sink: Sink,
    *,
    headers: Mapping[str, str] = {},
    stall_timeout: float | None = None,
    connect_timeout: float | None = None,
    on_response: Callable[[Response], None] | None = None,
    tls: TLS | None = None,
) -> DownloadResult:
    """Run curl in download mode and stream a 200/206 body into ``sink`` as it arrives.

    Departs from SPEC.md §4.2: curl prints the header block before the body on stdout
    (``-D - -o -``), so the status is known before any byte reaches ``sink`` and an error body
    never does. Redirects are reported in the result, not followed (as in §4.2, but without the
    original's header-less recursion). An exception from ``sink`` kills curl and propagates
    unchanged. HTTP(S) only: for FTP, curl's ``-D`` writes the server's reply lines instead.
    ``on_response`` sees the final header block before the first body byte reaches ``sink``
    (a resumed download learns there whether the server honoured its Range).
    """
    program = _program()
    config = [_url_line(url), *_header_lines(headers), *(tls.config_lines() if tls else [])]
    # -N: curl's stdio would hold the last few KiB until the transfer ends; a sink that checks
    # size or progress must see bytes when they arrive.
    options = ["-s", "-S", "-N", "-D", "-", "-o", "-", "--suppress-connect-headers"]
    options += _timeout_options(stall_timeout, connect_timeout)
    parser = _DownloadParser(sink, on_response)
    status, stderr = await _run(program, options, config, url, parser.feed)
    _check_status(url, status, stderr)
    if parser.response is None:
        # curl exited 0 inside (or before) the header block: the server hung up mid-response.
        quoted = bytes(parser.head[:_MAX_QUOTED_STDOUT]).decode("utf-8", "replace")
        raise TruncatedResponseError(
            f"Failed to decode HTTP responses: No response decoded\n{quoted}"
        )
    response = attrs.evolve(parser.response, body=bytes(parser.error_body))
    redirect_url = None
    location = response.headers.get("Location")
    if 300 <= response.code < 400 and location is not None:
        redirect_url = urljoin(url.strip(), location.strip())
    return DownloadResult(response=response, redirect_url=redirect_url, received=parser.received)


class _DownloadParser:
    """Splits curl's ``-D - -o -`` stream into the header block(s) and the body, bytes in."""

    def __init__(self, sink: Sink, on_response: Callable[[Response], None] | None) -> None:
        self._sink = sink
        self._on_response = on_response
        self.head = bytearray()
        self.response: Response | None = None
        self.error_body = bytearray()
        self.received = 0

    def feed(self, chunk: bytes) -> None:
        if self.response is None:
            self.head.extend(chunk)
            chunk = self._parse_heads()
            if self.response is None:
                return
        if self.response.code in (200, 206):
            if chunk:
                self._sink(chunk)
                self.received += len(chunk)
        elif len(self.error_body) < MAX_ERROR_BODY_BYTES:
            self.error_body.extend(chunk[: MAX_ERROR_BODY_BYTES - len(self.error_body)])

    def _parse_heads(self) -> bytes:
        """Consume complete header blocks; return what follows the final one, if it arrived."""
        while True:
            try:
                parsed = parse_head(bytes(self.head))
            except DecodeError as exc:
                raise DecodeError(
                    f"Failed to decode HTTP responses: {exc}\n{self._quote()}"
                ) from exc
            if parsed is None:
                # parse_head enforces the limit too; this bounds the buffer whatever it does.
                if len(self.head) > MAX_HEADER_BYTES:
                    raise DecodeError(
                        "Failed to decode HTTP responses: the header section is larger than "
                        f"{MAX_HEADER_BYTES} bytes\n{self._quote()}"
                    )
                return b""
            response, consumed = parsed
            del self.head[:consumed]
            # curl prints interim 1xx blocks (100 Continue, 103 Early Hints) before the final one.
            if not 100 <= response.code < 200:
                self.response = response
                if self._on_response is not None:
                    self._on_response(response)
                rest = bytes(self.head)
                self.head.clear()
                return rest

    def _quote(self) -> str:
        return bytes(self.head[:_MAX_QUOTED_STDOUT]).decode("utf-8", "replace")


# One line per finished transfer; the marker keeps it apart from anything else on stdout.
_BATCH_MARK: Final = "mesos-uri-transfer"
_BATCH_WRITE_OUT: Final = "\\t".join(
    (
        _BATCH_MARK,
        "%{exitcode}",
        "%{http_code}",
        "%{size_download}",
        "%{url_effective}",
        "%header{retry-after}",
        "%header{www-authenticate}",
        "%{redirect_url}",
        "%{errormsg}\\n",
    )
)


async def download_batch(
    transfers: Sequence[Transfer],
    *,
    parallel: int,
    headers: Mapping[str, str] = {},
    stall_timeout: float | None = None,
    connect_timeout: float | None = None,
    tls: TLS | None = None,
) -> list[TransferResult]:
    """Run ONE curl for many URLs (``--parallel``), each body to its own file.

    Starting curl costs more than fetching a small blob from a near registry, so many small
    blobs go through one process. Nothing is interpreted here: the caller verifies each file and
    sends any transfer that did not end with a 200 through :func:`download`, which knows
    redirects, challenges and retries. Redirects are not followed (headers stay with the
    origin). A transfer missing from the result did not finish.
    """
    program = _program()
    config = [*_header_lines(headers), *(tls.config_lines() if tls else [])]
    for transfer in transfers:
        config += [_url_line(transfer.url), f"output = {_quote(transfer.output)}"]
    options = ["-s", "-S", "--parallel", "--parallel-max", str(parallel)]
    options += ["-w", _BATCH_WRITE_OUT, *_timeout_options(stall_timeout, connect_timeout)]
    collected = bytearray()
    first = transfers[0].url if transfers else ""
    await _run(program, options, config, first, collected.extend)
    results = []
    # Split on LF only: a header value curl copies may end in a CR of its own.
    for line in bytes(collected).decode("utf-8", "replace").split("\n"):
        fields = line.split("\t", 8)
        if len(fields) == 9 and fields[0] == _BATCH_MARK and all(f.isdigit() for f in fields[1:4]):
            exit_code, code, size = (int(field) for field in fields[1:4])
            url, retry_after, challenge, redirect, error = (f.strip() for f in fields[4:])
            results.append(
                TransferResult(url, exit_code, code, size, retry_after, challenge, redirect, error)
            )
    return results


async def fetch_to_file(url: str, output: str, *, stall_timeout: float | None = None) -> None:
    """curl writes ``url`` to ``output``; for protocols with no HTTP status to read (FTP), where
    curl's exit status is the whole answer (it fails with 78 on a missing remote file)."""
    config = [_url_line(url), f"output = {_quote(output)}"]
    options = ["-s", "-S", *_timeout_options(stall_timeout, None)]
    status, stderr = await _run(_program(), options, config, url, lambda chunk: None)
    _check_status(url, status, stderr)


def _program() -> str:
    return os.environ.get(CURL_ENV) or CURL


def _check_status(url: str, status: int, stderr: bytes) -> None:
    # A signal death (negative status) is a failure too (SPEC §4 "raw wait status").
    if status != 0:
        text = stderr.decode("utf-8", "replace")
        raise CurlError(
            f"Failed to perform 'curl' for '{redact_url(url)}': {text}",
            exit_code=status,
            stderr=text,
        )


def _quote(value: str) -> str:
    """A double-quoted string in curl's config syntax (the escapes curl's parser undoes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _escape(text: str) -> str:
    """``text`` with control characters shown as escapes, so a message stays one line."""
    return text.encode("unicode_escape").decode("ascii")


def _url_line(url: str) -> str:
    stripped = url.strip()  # as the original hands it to curl (SPEC §4.1)
    if _FORBIDDEN.search(stripped):
        raise UsageError(f"Refusing URL '{_escape(redact_url(url))}': it contains CR, LF or NUL")
    return f"url = {_quote(stripped)}"


def _header_lines(headers: Mapping[str, str]) -> list[str]:
    lines = []
    for name, value in headers.items():
        if _TOKEN.fullmatch(name) is None:
            raise UsageError(f"Refusing header '{_escape(name)}': its name is not an HTTP token")
        # Never echo the value: it may be a credential.
        if "\r" in value or "\n" in value:
            raise UsageError(f"Refusing header '{name}': its value contains CR or LF")
        if "\0" in value:
            raise UsageError(f"Refusing header '{name}': its value contains NUL")
        # "Name:" would make curl drop a header of its own; "Name;" sends it empty.
        field = f"{name}: {value}" if value else f"{name};"
        lines.append(f"header = {_quote(field)}")
    return lines


def _method_lines(method: str, has_data: bool) -> list[str]:
    if _TOKEN.fullmatch(method) is None:
        raise UsageError(f"Refusing method '{_escape(method)}': it is not an HTTP token")
    if method == "GET":
        if has_data:
            raise UsageError("Refusing to send data with a GET request")
        return []
    if method == "HEAD":
        # A response to HEAD announces a length it does not send; the decoder cannot know.
        raise UsageError("Refusing a HEAD request: its response cannot be decoded")
    if method == "POST" and has_data:
        # --data-binary already makes it a POST; an explicit -X POST would also keep POST
        # across a 301/302/303, which curl otherwise turns into a GET as browsers do.
        return []
    return [f"request = {_quote(method)}"]


def _timeout_options(stall_timeout: float | None, connect_timeout: float | None) -> list[str]:
    options = []
    if stall_timeout is not None:
        if not (math.isfinite(stall_timeout) and stall_timeout >= 0):
            raise UsageError(f"The stall timeout must be seconds >= 0, got {stall_timeout}")
        # Whole seconds, truncated; 0 disables curl's stall check (SPEC §3).
        options += ["-y", str(int(stall_timeout))]
    if connect_timeout is not None:
        if not (math.isfinite(connect_timeout) and connect_timeout > 0):
            raise UsageError(f"The connect timeout must be seconds > 0, got {connect_timeout}")
        options += ["--connect-timeout", f"{connect_timeout:.3f}"]
    return options


async def _with_data_file(
    data: bytes, run: Callable[[str], Awaitable[tuple[int, bytes]]]
) -> tuple[int, bytes]:
    """Run ``run`` with a config line that makes curl send ``data`` from a 0600 temporary file."""
    fd, path = tempfile.mkstemp(prefix="mesos-uri-data-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        return await run(f"data-binary = {_quote('@' + path)}")
    finally:
        os.unlink(path)


_http11_lock = threading.Lock()
_http11: dict[str, bool] = {}


def _supports_http11(program: str) -> bool:
    """Whether ``program --http1.1 -V`` exits 0: probed once per process and program.

    The probe runs synchronously, as the original's does: one ~10 ms exec per process, under a
    thread lock, is cheaper than a worker-thread hop and needs no per-event-loop primitive.
    """
    known = _http11.get(program)
    if known is not None:
        return known
    with _http11_lock:
        known = _http11.get(program)
        if known is None:
            try:
                # Run directly, not through a shell as the original does (SPEC §4.1).
                probe = subprocess.run(
                    [program, "--http1.1", "-V"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                )
            except OSError:
                return False  # not cached: the exec error surfaces from the real run
            known = _http11[program] = probe.returncode == 0
        return known


async def _run(
    program: str,
    options: list[str],
    config: list[str],
    url: str,
    on_stdout: Callable[[bytes], None],
) -> tuple[int, bytes]:
    """Run curl with ``config`` on stdin, feeding stdout to ``on_stdout``; (status, stderr).

    An exception from ``on_stdout`` kills curl and is re-raised unchanged once curl is reaped.
    """
    # -q must come first: it stops curl from reading ~/.curlrc.
    argv = [program, "-q", *options, "-K", "-"]
    try:
        # Shielded: a cancellation inside the spawn would lose the child before we can reap it
        # (asyncio kills it but cannot wait for it then). Spawning takes milliseconds.
        with anyio.CancelScope(shield=True):
            process = await anyio.open_process(argv)
    except OSError as exc:
        hint = " (is curl installed and on PATH?)" if isinstance(exc, FileNotFoundError) else ""
        raise CurlError(f"Failed to exec the curl subprocess: {exc}{hint}") from exc
    failure: list[BaseException] = []
    stderr = bytearray()
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None

        def fail(exc: Exception) -> None:
            if not failure:
                failure.append(exc)
            _kill(process)

        # All three pipes at once, so curl never blocks on a full one (SPEC §4).
        async with anyio.create_task_group() as group:
            group.start_soon(_feed, process.stdin, "".join(f"{line}\n" for line in config))
            group.start_soon(_drain, process.stderr, stderr)
            group.start_soon(_pump, process.stdout, on_stdout, fail, url)
        status = await process.wait()
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                _kill(process)
            await process.aclose()
    if failure:
        raise failure[0]
    return status, bytes(stderr)


def _kill(process: anyio.abc.Process) -> None:
    # os.kill, not process.kill(): on asyncio that is Popen.send_signal, whose poll() may reap
    # a curl that just exited before asyncio's child watcher does; the watcher then logs
    # "Unknown child process pid N, will report returncode 255" (on the CLI's stderr, too).
    # Only the watcher reaps, so until returncode is set the pid is still our zombie or child.
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.kill(process.pid, signal.SIGKILL)


async def _feed(stream: anyio.abc.ByteSendStream, text: str) -> None:
    try:
        await stream.send(text.encode("utf-8"))
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass  # curl exited before reading its config; its status and stderr say why
    finally:
        await stream.aclose()


async def _drain(stream: anyio.abc.ByteReceiveStream, into: bytearray) -> None:
    try:
        while True:
            chunk = await stream.receive(_CHUNK)
            if len(into) < _MAX_STDERR_BYTES:
                into.extend(chunk[: _MAX_STDERR_BYTES - len(into)])
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass


async def _pump(
    stream: anyio.abc.ByteReceiveStream,
    on_stdout: Callable[[bytes], None],
    fail: Callable[[Exception], None],
    url: str,
) -> None:
    consume: Callable[[bytes], None] | None = on_stdout
    while True:
        try:
            chunk = await stream.receive(_CHUNK)
        except anyio.EndOfStream:
            return
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            error = CurlError(f"Failed to read stdout from 'curl' for '{redact_url(url)}': {exc}")
            error.__cause__ = exc
            fail(error)
            return
        if consume is None:
            # Read on to EOF after a failure: on asyncio a pipe left unread is never seen to
            # close, and waiting for the killed curl would then never end.
            continue
        try:
            consume(chunk)
        except Exception as exc:
            consume = None
            fail(exc)
