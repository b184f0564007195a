"""The curl wrapper against a real HTTP server on 127.0.0.1 (and, for argv and odd exits, a
stand-in curl script)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
from faults import (
    FaultServer,
    echo_headers,
    raw,
    redirect,
    respond,
    slow_body,
    stall,
)

from mesos_uri import curl
from mesos_uri.errors import CurlError, DecodeError, UsageError

pytestmark = pytest.mark.anyio

SECRET = "s3cret-t0ken"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def curl_children() -> list[tuple[int, list[str]]]:
    """(pid, argv) of every child of this process whose command is curl, zombies included."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing paren.
        comm = stat_line[stat_line.index("(") + 1 : stat_line.rindex(")")]
        ppid = int(stat_line[stat_line.rindex(")") + 2 :].split()[1])
        if ppid == os.getpid() and comm == "curl":
            found.append((int(entry.name), [a.decode() for a in cmdline.split(b"\0") if a]))
    return found


async def wait_for_curl_child() -> list[str]:
    """The argv of the one curl child, once it has started."""
    with anyio.fail_after(10):
        while True:
            children = curl_children()
            if children and children[0][1]:
                return children[0][1]
            await anyio.sleep(0.01)


class Chunks:
    """A sink that records what it was given, and signals the first bytes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.first = anyio.Event()

    def __call__(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.first.set()

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def never(chunk: bytes) -> None:
    raise AssertionError(f"the sink got {len(chunk)} bytes it should not have")


async def fetch(
    mode: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    stall_timeout: float | None = None,
) -> object:
    """One call of the wrapper in ``mode``: ``request``, ``post`` (a request carrying the secret
    as data), or ``download`` into a recording sink."""
    headers = headers or {}
    if mode == "request":
        return await curl.request(url, headers=headers, stall_timeout=stall_timeout)
    if mode == "post":
        data = f"refresh_token={SECRET}".encode()
        return await curl.request(
            url, headers=headers, stall_timeout=stall_timeout, method="POST", data=data
        )
    return await curl.download(url, Chunks(), headers=headers, stall_timeout=stall_timeout)


@pytest.fixture
def data_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[], list[Path]]:
    """Point the temporary directory at a fresh one; list the request-data files in it."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return lambda: sorted(tmp_path.glob("mesos-uri-data-*"))


# ---------------------------------------------------------------------------------------------
# Headers and argv


async def test_request_sends_headers_with_quotes_and_backslashes(server: FaultServer) -> None:
    server.route("/echo", echo_headers())
    headers = {"Authorization": f"Bearer {SECRET}", "X-Odd": 'a "quoted" \\path\\ end'}

    response = await curl.request(server.url("/echo"), headers=headers)

    received = dict(json.loads(response.body))
    assert received["Authorization"] == f"Bearer {SECRET}"
    assert received["X-Odd"] == 'a "quoted" \\path\\ end'


async def test_download_sends_headers(server: FaultServer) -> None:
    server.route("/echo", echo_headers())
    sink = Chunks()

    await curl.download(server.url("/echo"), sink, headers={"Authorization": f"Basic {SECRET}"})

    assert dict(json.loads(sink.data))["Authorization"] == f"Basic {SECRET}"


async def test_empty_header_value_is_sent_empty(server: FaultServer) -> None:
    server.route("/echo", echo_headers())

    response = await curl.request(server.url("/echo"), headers={"X-Empty": ""})

    assert ["X-Empty", ""] in json.loads(response.body)


@pytest.mark.parametrize("mode", ["request", "post", "download"])
async def test_credentials_stay_out_of_curl_argv(
    server: FaultServer, mode: str, data_files: Callable[[], list[Path]]
) -> None:
    release = threading.Event()
    server.route("/slow", stall(release, then=respond(200, b"done")))
    url = server.url("/slow", userinfo=f"user:{SECRET}pw")
    headers = {"Authorization": f"Bearer {SECRET}"}
    results: list[object] = []

    async def call() -> None:
        results.append(await fetch(mode, url, headers=headers))

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        argv = await wait_for_curl_child()
        files = data_files()
        modes = [stat.S_IMODE(path.stat().st_mode) for path in files]
        release.set()

    assert modes == ([0o600] if mode == "post" else [])
    assert data_files() == []
    assert argv[:2] == ["curl", "-q"]
    assert argv[-2:] == ["-K", "-"]
    assert not any(SECRET in arg or "127.0.0.1" in arg for arg in argv)
    assert len(results) == 1
    assert server.requests_for("/slow")[0].header("Authorization") == f"Bearer {SECRET}"


async def test_request_argv_asks_for_http11(server: FaultServer) -> None:
    # curl 7.88 knows --http1.1, so the probe succeeds and request mode forces it (SPEC §4.1).
    release = threading.Event()
    server.route("/slow", stall(release, then=respond(200)))
    async with anyio.create_task_group() as group:
        group.start_soon(curl.request, server.url("/slow"))
        argv = await wait_for_curl_child()
        release.set()

    assert argv == ["curl", "-q", "-s", "-S", "-L", "-i", "--raw", "--http1.1", "-K", "-"]


@pytest.mark.parametrize("mode", ["request", "download"])
@pytest.mark.parametrize("bad", ["a\r\nX-Injected: 1", "a\nb", "a\rb"])
async def test_header_with_cr_or_lf_is_refused(server: FaultServer, mode: str, bad: str) -> None:
    server.route("/", respond(200))
    headers = {"Authorization": SECRET + bad}

    with pytest.raises(UsageError) as caught:
        await fetch(mode, server.url(), headers=headers)

    assert str(caught.value) == "Refusing header 'Authorization': its value contains CR or LF"
    assert server.requests == []
    assert curl_children() == []


async def test_header_with_nul_or_bad_name_is_refused(server: FaultServer) -> None:
    with pytest.raises(UsageError, match="'X-A': its value contains NUL"):
        await curl.request(server.url(), headers={"X-A": f"{SECRET}\0"})
    with pytest.raises(UsageError, match=r"'X\\nB': its name is not an HTTP token"):
        await curl.request(server.url(), headers={"X\nB": "v"})
    with pytest.raises(UsageError, match="'X: B': its name is not an HTTP token"):
        await curl.request(server.url(), headers={"X: B": "v"})
    assert server.requests == []


async def test_url_with_newline_is_refused_without_its_password(server: FaultServer) -> None:
    url = server.url("/a\nb", userinfo=f"u:{SECRET}")

    with pytest.raises(UsageError, match="contains CR, LF or NUL") as caught:
        await curl.request(url)

    assert SECRET not in str(caught.value)
    assert server.requests == []


# ---------------------------------------------------------------------------------------------
# Request mode


@pytest.mark.parametrize("framing", ["length", "chunked", "eof"])
@pytest.mark.parametrize("body", [b"", b"<a href='/final'>moved</a>"])
async def test_request_returns_the_response_after_redirects(
    server: FaultServer, framing: str, body: bytes
) -> None:
    server.route("/first", redirect("/second", 301, body, framing=framing))
    server.route("/second", redirect(server.url("/final"), 307, body, framing=framing))
    server.route("/final", respond(200, b"final body", [("X-Final", "yes")], framing=framing))

    response = await curl.request(server.url("/first"))

    assert (response.code, response.body) == (200, b"final body")
    assert response.headers.get("X-Final") == "yes"
    assert [r.path for r in server.requests] == ["/first", "/second", "/final"]


async def test_request_decodes_429(server: FaultServer) -> None:
    body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
    server.route("/limited", respond(429, body, [("Retry-After", "7")]))

    response = await curl.request(server.url("/limited"))

    assert (response.code, response.body) == (429, body)
    assert response.headers.get("Retry-After") == "7"


async def test_request_does_not_carry_authorization_to_another_port(
    server: FaultServer,
) -> None:
    with FaultServer() as storage:
        storage.route("/blob", echo_headers())
        server.route("/v2/blob", redirect(storage.url("/blob")))

        response = await curl.request(
            server.url("/v2/blob"), headers={"Authorization": f"Bearer {SECRET}", "X-Other": "1"}
        )

    received = dict(json.loads(response.body))
    assert "Authorization" not in received
    assert received["X-Other"] == "1"
    assert server.requests[0].header("Authorization") == f"Bearer {SECRET}"


async def test_request_posts_data_from_a_file_it_removes(
    server: FaultServer, data_files: Callable[[], list[Path]]
) -> None:
    server.route("/token", respond(200, b'{"token":"t"}'))
    data = b"grant_type=refresh_token&refresh_token=" + SECRET.encode() + b'\0\n"\\end'

    response = await curl.request(server.url("/token"), method="POST", data=data)

    assert response.code == 200
    (received,) = server.requests
    assert (received.method, received.body) == ("POST", data)
    assert data_files() == []


async def test_request_sends_other_methods(server: FaultServer) -> None:
    server.route("/thing", respond(202))

    response = await curl.request(server.url("/thing"), method="PUT", data=b"new")

    assert response.code == 202
    assert [(r.method, r.body) for r in server.requests] == [("PUT", b"new")]


async def test_request_refuses_a_method_it_cannot_send(server: FaultServer) -> None:
    with pytest.raises(UsageError, match="with a GET request"):
        await curl.request(server.url(), data=b"x")
    with pytest.raises(UsageError, match="is not an HTTP token"):
        await curl.request(server.url(), method="GET /x")
    with pytest.raises(UsageError, match="HEAD"):
        await curl.request(server.url(), method="HEAD")
    assert server.requests == []


async def test_request_over_max_bytes_kills_curl(server: FaultServer) -> None:
    # 8 KiB arrive, then the server holds the connection open: only killing curl ends the call.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 8192
    server.route("/huge", stall(head=head))
    url = server.url("/huge", userinfo=f"u:{SECRET}")

    with anyio.fail_after(10), pytest.raises(DecodeError) as caught:
        await curl.request(url, max_bytes=4096)

    assert str(caught.value) == (
        f"Response from '{server.url('/huge')}' is larger than the 4096-byte limit"
    )
    assert curl_children() == []


async def test_request_within_max_bytes_succeeds(server: FaultServer) -> None:
    server.route("/small", respond(200, b"y" * 1000))

    response = await curl.request(server.url("/small"), max_bytes=4096)

    assert response.body == b"y" * 1000


# ---------------------------------------------------------------------------------------------
# Download mode


async def test_download_streams_the_body_while_it_arrives(server: FaultServer) -> None:
    release = threading.Event()
    first, second = b"a" * 50_000, b"b" * 70_000
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(first) + len(second)) + first
    server.route("/blob", stall(release, head=head, then=raw(second)))
    sink = Chunks()
    results: list[curl.DownloadResult] = []

    async def call() -> None:
        results.append(await curl.download(server.url("/blob"), sink))

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        with anyio.fail_after(10):
            # The body's first part reaches the sink while the server still holds the rest.
            await sink.first.wait()
        assert sink.data == first[: len(sink.data)]
        release.set()

    (result,) = results
    assert sink.data == first + second
    assert result.received == len(first + second)
    assert (result.response.code, result.response.body, result.redirect_url) == (200, b"", None)
    assert result.response.headers.get("Content-Length") == str(len(first + second))


async def test_download_streams_chunked_bodies_unchunked(server: FaultServer) -> None:
    server.route("/blob", respond(200, b"0123456789abcdef", framing="chunked"))
    sink = Chunks()

    result = await curl.download(server.url("/blob"), sink)

    assert (sink.data, result.received) == (b"0123456789abcdef", 16)


async def test_download_streams_a_partial_content_answer(server: FaultServer) -> None:
    server.route("/blob", respond(206, b"tail", [("Content-Range", "bytes 6-9/10")]))
    sink = Chunks()

    result = await curl.download(server.url("/blob"), sink, headers={"Range": "bytes=6-"})

    assert (result.response.code, sink.data) == (206, b"tail")
    assert server.requests[0].header("Range") == "bytes=6-"


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize(
    ("location", "expected"),
    [("/storage/blob?sig=1", "{base}/storage/blob?sig=1"), ("http://cdn.invalid/b", None)],
)
async def test_download_reports_redirects_without_following_them(
    server: FaultServer, code: int, location: str, expected: str | None
) -> None:
    server.route("/v2/blob", redirect(location, code, b"<html>moved</html>"))

    result = await curl.download(server.url("/v2/blob"), never)

    base = server.url("").rstrip("/")
    assert result.redirect_url == (expected or location).format(base=base)
    assert result.response.code == code
    assert result.response.body == b"<html>moved</html>"
    assert result.received == 0
    assert [r.path for r in server.requests] == ["/v2/blob"]


async def test_download_captures_an_error_body_instead_of_sinking_it(
    server: FaultServer,
) -> None:
    body = b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}'
    server.route("/blob", respond(404, body, [("Content-Type", "application/json")]))

    result = await curl.download(server.url("/blob"), never)

    assert (result.response.code, result.response.body) == (404, body)
    assert result.response.headers.get("Content-Type") == "application/json"
    assert (result.received, result.redirect_url) == (0, None)


async def test_download_keeps_only_the_start_of_a_large_error_body(
    server: FaultServer,
) -> None:
    server.route("/blob", respond(500, bytes(range(256)) * 1024))

    result = await curl.download(server.url("/blob"), never)

    assert result.response.body == (bytes(range(256)) * 1024)[: curl.MAX_ERROR_BODY_BYTES]


async def test_download_decodes_429(server: FaultServer) -> None:
    server.route("/blob", respond(429, b"{}", [("Retry-After", "3")]))

    result = await curl.download(server.url("/blob"), never)

    assert result.response.code == 429
    assert result.response.headers.get("Retry-After") == "3"


async def test_download_skips_interim_responses(server: FaultServer) -> None:
    server.route(
        "/blob",
        raw(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: 1\r\n\r\nhello"
        ),
    )
    sink = Chunks()

    result = await curl.download(server.url("/blob"), sink)

    assert (result.response.code, result.response.headers.get("X-Final")) == (200, "1")
    assert sink.data == b"hello"


async def test_download_cut_short_is_a_curl_error(server: FaultServer) -> None:
    server.route("/blob", raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 400))
    sink = Chunks()

    with pytest.raises(CurlError) as caught:
        await curl.download(server.url("/blob"), sink)

    assert caught.value.exit_code == 18  # partial file
    assert sink.data == b"x" * 400


async def test_a_raising_sink_kills_curl_and_propagates_unchanged(server: FaultServer) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 1000
    server.route("/blob", stall(head=head))  # never finishes on its own
    problem = ValueError("size exceeded")

    def sink(chunk: bytes) -> None:
        raise problem

    with anyio.fail_after(10), pytest.raises(ValueError, match="size exceeded") as caught:
        await curl.download(server.url("/blob"), sink)

    assert caught.value is problem
    assert curl_children() == []


# ---------------------------------------------------------------------------------------------
# Failures of curl itself


@pytest.mark.parametrize("mode", ["request", "download"])
async def test_stall_timeout_aborts_with_exit_28(server: FaultServer, mode: str) -> None:
    # No body byte at all: curl averages its speed over the last seconds, so bytes sent before
    # the stall would delay the abort by that window.
    server.route("/slow", stall(head=b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"))

    with anyio.fail_after(15), pytest.raises(CurlError) as caught:
        await fetch(mode, server.url("/slow"), stall_timeout=1.9)

    assert caught.value.exit_code == 28
    assert str(caught.value).startswith(f"Failed to perform 'curl' for '{server.url('/slow')}': ")
    assert "curl: (28)" in caught.value.stderr


async def test_slow_but_moving_body_is_not_a_stall(server: FaultServer) -> None:
    server.route("/slow", slow_body([b"a", b"b", b"c"], delay=0.6))

    response = await curl.request(server.url("/slow"), stall_timeout=1)

    assert response.body == b"abc"


async def test_refused_connection_names_the_url_without_password() -> None:
    with FaultServer() as gone:
        url = gone.url("/x", userinfo=f"user:{SECRET}")
    # The server is closed, so nothing listens on its port any more.

    with pytest.raises(CurlError) as caught:
        await curl.download(url, never, connect_timeout=5)

    assert caught.value.exit_code == 7
    assert str(caught.value) == (
        f"Failed to perform 'curl' for 'http://127.0.0.1:{gone.port}/x': {caught.value.stderr}"
    )
    assert caught.value.stderr.startswith("curl: (7) ")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("mode", ["request", "download"])
async def test_missing_curl_binary_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str
) -> None:
    missing = str(tmp_path / "no-such-curl")
    monkeypatch.setenv(curl.CURL_ENV, missing)

    with pytest.raises(CurlError) as caught:
        await fetch(mode, "http://127.0.0.1:9/")

    message = str(caught.value)
    assert message.startswith("Failed to exec the curl subprocess: ")
    assert missing in message
    assert "is curl installed" in message
    assert caught.value.exit_code is None


# ---------------------------------------------------------------------------------------------
# Cancellation


@pytest.mark.parametrize("mode", ["request", "post", "download"])
async def test_cancellation_kills_and_reaps_curl(
    server: FaultServer, mode: str, data_files: Callable[[], list[Path]]
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 1000
    server.route("/slow", stall(head=head))

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(fetch, mode, server.url("/slow"))
            await wait_for_curl_child()
            scope.cancel()

    assert scope.cancelled_caught
    assert curl_children() == []
    assert data_files() == []


@pytest.mark.parametrize("mode", ["request", "post", "download"])
async def test_cancellation_at_any_moment_leaves_no_child(
    server: FaultServer, mode: str, data_files: Callable[[], list[Path]]
) -> None:
    # Deadlines from "before curl starts" to "while its config is written or its answer read".
    server.route("/", slow_body([b"a", b"b"], delay=0.05))
    for delay in (0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.04):
        with anyio.move_on_after(delay):
            await fetch(mode, server.url())
        assert curl_children() == []
    assert data_files() == []


# ---------------------------------------------------------------------------------------------
# A stand-in curl: exact config text, argv options, odd outputs


FakeCurl = Callable[..., Path]


@pytest.fixture
def fake_curl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeCurl:
    """Install a script as curl that records argv and stdin and prints canned output."""

    def make(
        stdout: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        *,
        status: int = 0,
        stderr: bytes = b"",
        probe_status: int = 0,
        action: str = "",
    ) -> Path:
        (tmp_path / "stdout").write_bytes(stdout)
        (tmp_path / "stderr").write_bytes(stderr)
        script = tmp_path / "curl"
        script.write_text(
            "#!/bin/sh\n"
            f"cd '{tmp_path}'\n"
            f'if [ "$*" = "--http1.1 -V" ]; then echo probe >> probes; exit {probe_status}; fi\n'
            "printf '%s\\n' \"$@\" > argv\n"
            "cat > stdin\n"
            f"{action}\n"
            "cat stdout\n"
            "cat stderr >&2\n"
            f"exit {status}\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv(curl.CURL_ENV, str(script))
        return tmp_path

    return make


async def test_config_on_stdin_quotes_url_and_headers(fake_curl: FakeCurl) -> None:
    seen = fake_curl()

    await curl.request(
        '  http://u:p@h/x?a="1"  ', headers={"X-A": 'say "hi" \\o/', "Accept": "a/b"}
    )

    assert (seen / "stdin").read_text() == (
        'url = "http://u:p@h/x?a=\\"1\\""\n'
        'header = "X-A: say \\"hi\\" \\\\o/"\n'
        'header = "Accept: a/b"\n'
    )


async def test_timeouts_become_curl_options(fake_curl: FakeCurl) -> None:
    seen = fake_curl()

    await curl.request("http://h/", stall_timeout=2.9, connect_timeout=1.5)
    request_argv = (seen / "argv").read_text().split()
    await curl.download("http://h/", Chunks(), stall_timeout=0.5)
    download_argv = (seen / "argv").read_text().split()

    assert request_argv[-6:] == ["-y", "2", "--connect-timeout", "1.500", "-K", "-"]
    # Below a second truncates to 0, which curl reads as "no stall check" (SPEC §3).
    assert download_argv == [
        "-q", "-s", "-S", "-N", "-D", "-", "-o", "-", "--suppress-connect-headers",
        "-y", "0", "-K", "-",
    ]  # fmt: skip


async def test_negative_timeouts_are_refused(fake_curl: FakeCurl) -> None:
    seen = fake_curl()
    with pytest.raises(UsageError, match="stall timeout"):
        await curl.request("http://h/", stall_timeout=-1)
    with pytest.raises(UsageError, match="stall timeout"):
        await curl.request("http://h/", stall_timeout=float("inf"))
    with pytest.raises(UsageError, match="connect timeout"):
        await curl.download("http://h/", never, connect_timeout=0)
    with pytest.raises(UsageError, match="connect timeout"):
        await curl.download("http://h/", never, connect_timeout=float("nan"))
    assert not (seen / "argv").exists()


async def test_http11_probe_runs_once_and_decides_the_option(fake_curl: FakeCurl) -> None:
    seen = fake_curl(probe_status=2)

    for _ in range(3):
        await curl.request("http://h/")

    assert (seen / "probes").read_text() == "probe\n"
    assert "--http1.1" not in (seen / "argv").read_text().split()


async def test_concurrent_first_requests_probe_once(fake_curl: FakeCurl) -> None:
    seen = fake_curl()

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(curl.request, "http://h/")

    assert (seen / "probes").read_text() == "probe\n"
    assert "--http1.1" in (seen / "argv").read_text().split()


async def test_undecodable_output_is_quoted_up_to_2_kib(fake_curl: FakeCurl) -> None:
    fake_curl(b"garbage" + b"x" * 5000)

    with pytest.raises(DecodeError) as caught:
        await curl.request("http://h/")

    reason, quoted = str(caught.value).split("\n", 1)
    assert reason.startswith("Failed to decode HTTP responses: ")
    assert quoted == ("garbage" + "x" * 5000)[:2048]


async def test_empty_output_is_no_response(fake_curl: FakeCurl) -> None:
    fake_curl(b"")

    with pytest.raises(DecodeError, match=r"^Failed to decode HTTP responses: No response decoded"):
        await curl.request("http://h/")
    with pytest.raises(DecodeError, match=r"^Failed to decode HTTP responses: No response decoded"):
        await curl.download("http://h/", never)


async def test_nonzero_exit_carries_status_and_stderr(fake_curl: FakeCurl) -> None:
    fake_curl(b"", status=6, stderr=b"curl: (6) Could not resolve host: h\n")

    with pytest.raises(CurlError) as caught:
        await curl.request("http://h/")

    assert str(caught.value) == (
        "Failed to perform 'curl' for 'http://h/': curl: (6) Could not resolve host: h\n"
    )
    assert (caught.value.exit_code, caught.value.stderr) == (
        6,
        "curl: (6) Could not resolve host: h\n",
    )


async def test_death_by_signal_is_a_failure(fake_curl: FakeCurl) -> None:
    fake_curl(action="kill -9 $$")

    with pytest.raises(CurlError) as caught:
        await curl.download("http://h/", never)

    assert caught.value.exit_code == -9


async def test_a_huge_header_block_is_refused(fake_curl: FakeCurl) -> None:
    fake_curl(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 200_000 + b"\r\n\r\nbody")

    with pytest.raises(DecodeError) as caught:
        await curl.download("http://h/", never)

    reason, quoted = str(caught.value).split("\n", 1)
    assert reason.startswith("Failed to decode HTTP responses: ")
    assert len(quoted) == 2048


# ---------------------------------------------------------------------------------------------
# Pure helpers


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pw@h:5000/v2/x", "http://h:5000/v2/x"),
        ("https://u:p@ss@h/x?a=b@c", "https://h/x?a=b@c"),
        ("https://h/v2/x?a=b@c", "https://h/v2/x?a=b@c"),
        ("https://token@h", "https://h"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert curl.redact_url(url) == expected
