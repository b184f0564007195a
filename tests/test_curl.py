"""The curl wrapper's request mode against a real HTTP server on 127.0.0.1 (and, for argv and
odd exits, a stand-in curl script). Downloads to files are tested in test_transfers.py; the
guarantees every curl gets (argv, quoting, cancellation) are tested here for both."""

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

from mesos_uri import _curl as curl
from mesos_uri._curl import Timeouts
from mesos_uri._http import Response
from mesos_uri._transfers import Transfer, run_batch
from mesos_uri._urls import redact_url
from mesos_uri.errors import CurlError, DecodeError, UsageError
from tests.support.faults import (
    FaultServer,
    echo_headers,
    redirect,
    respond,
    slow_body,
    stall,
)
from tests.support.procs import Proc, curl_procs

pytestmark = pytest.mark.anyio

SECRET = "s3cret-t0ken"
LIMIT = 1024 * 1024


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def curl_children() -> list[Proc]:
    return curl_procs([os.getpid()])


async def wait_for_curl_child() -> list[str]:
    """The argv of the one curl child, once it has started."""
    with anyio.fail_after(10):
        while True:
            children = curl_children()
            if children and children[0].argv:
                return children[0].argv
            await anyio.sleep(0.01)


async def request(url: str, **options: object) -> Response:
    return await curl.request(url, max_bytes=LIMIT, **options)  # type: ignore[arg-type]


async def fetch(
    mode: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    timeouts: Timeouts | None = None,
) -> object:
    """One call of the wrapper in ``mode``: ``request``, ``post`` (a request carrying the secret
    as data), or ``transfer`` (a download into a file through a batch)."""
    headers = headers or {}
    timeouts = timeouts or Timeouts()
    if mode == "request":
        return await request(url, headers=headers, timeouts=timeouts)
    if mode == "post":
        data = f"refresh_token={SECRET}".encode()
        return await request(url, headers=headers, timeouts=timeouts, data=data)
    path = Path(tempfile.mkdtemp()) / "out"
    [outcome] = await run_batch(
        [Transfer(url, str(path), headers=headers)], parallel=1, timeouts=timeouts
    )
    if outcome.exit_code:
        raise CurlError(outcome.error, exit_code=outcome.exit_code, stderr=outcome.error)
    return outcome


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

    response = await request(server.url("/echo"), headers=headers)

    received = dict(json.loads(response.body))
    assert received["Authorization"] == f"Bearer {SECRET}"
    assert received["X-Odd"] == 'a "quoted" \\path\\ end'


async def test_empty_header_value_is_sent_empty(server: FaultServer) -> None:
    server.route("/echo", echo_headers())

    response = await request(server.url("/echo"), headers={"X-Empty": ""})

    assert ["X-Empty", ""] in json.loads(response.body)


@pytest.mark.parametrize("mode", ["request", "post", "transfer"])
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


async def test_request_argv_is_fixed_and_follows_nothing(server: FaultServer) -> None:
    release = threading.Event()
    server.route("/slow", stall(release, then=respond(200)))
    async with anyio.create_task_group() as group:
        group.start_soon(request, server.url("/slow"))
        argv = await wait_for_curl_child()
        release.set()

    assert argv == ["curl", "-q", "-s", "-S", "--no-progress-meter", "-i", "--raw", "-K", "-"]


@pytest.mark.parametrize("mode", ["request", "transfer"])
@pytest.mark.parametrize("bad", ["a\r\nX-Injected: 1", "a\nb", "a\rb"])
async def test_header_with_cr_or_lf_is_refused(server: FaultServer, mode: str, bad: str) -> None:
    server.route("/", respond(200))
    headers = {"Authorization": SECRET + bad}

    with pytest.raises(UsageError) as caught:
        await fetch(mode, server.url(), headers=headers)

    assert str(caught.value) == "Refusing header 'Authorization': its value contains CR, LF or NUL"
    assert server.requests == []
    assert curl_children() == []


async def test_header_with_nul_or_bad_name_is_refused(server: FaultServer) -> None:
    with pytest.raises(UsageError, match="'X-A': its value contains CR, LF or NUL"):
        await request(server.url(), headers={"X-A": f"{SECRET}\0"})
    with pytest.raises(UsageError, match=r"'X\\nB': its name is not an HTTP token"):
        await request(server.url(), headers={"X\nB": "v"})
    with pytest.raises(UsageError, match="'X: B': its name is not an HTTP token"):
        await request(server.url(), headers={"X: B": "v"})
    assert server.requests == []


async def test_url_with_newline_is_refused_without_its_password(server: FaultServer) -> None:
    url = server.url("/a\nb", userinfo=f"u:{SECRET}")

    with pytest.raises(UsageError, match="contains CR, LF or NUL") as caught:
        await request(url)

    assert SECRET not in str(caught.value)
    assert server.requests == []


# ---------------------------------------------------------------------------------------------
# Request mode


@pytest.mark.parametrize("framing", ["length", "chunked", "eof"])
@pytest.mark.parametrize("body", [b"", b"<a href='/final'>moved</a>"])
@pytest.mark.parametrize("location", ["/second", "file:///etc/passwd", "gopher://127.0.0.1:1/"])
async def test_request_returns_a_redirect_without_following_it(
    server: FaultServer, framing: str, body: bytes, location: str
) -> None:
    """Whoever asked decides where a redirect may lead (and with which headers)."""
    server.route("/first", redirect(location, 301, body, framing=framing))

    response = await request(server.url("/first"))

    assert (response.code, response.body) == (301, body)
    assert response.headers.get("Location") == location
    assert [r.path for r in server.requests] == ["/first"]


async def test_request_decodes_429(server: FaultServer) -> None:
    body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
    server.route("/limited", respond(429, body, [("Retry-After", "7")]))

    response = await request(server.url("/limited"))

    assert (response.code, response.body) == (429, body)
    assert response.headers.get("Retry-After") == "7"


async def test_request_posts_data_from_a_file_it_removes(
    server: FaultServer, data_files: Callable[[], list[Path]]
) -> None:
    server.route("/token", respond(200, b'{"token":"t"}'))
    data = b"grant_type=refresh_token&refresh_token=" + SECRET.encode() + b'\0\n"\\end'

    response = await request(server.url("/token"), data=data)

    assert response.code == 200
    (received,) = server.requests
    assert (received.method, received.body) == ("POST", data)
    assert data_files() == []


async def test_request_without_data_is_a_get(server: FaultServer) -> None:
    server.route("/v2/", respond(200, b"{}"))

    response = await request(server.url("/v2/"))

    assert response.code == 200
    (received,) = server.requests
    assert (received.method, received.body) == ("GET", b"")


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
# Failures of curl itself


@pytest.mark.parametrize("mode", ["request", "transfer"])
async def test_stall_timeout_aborts_with_exit_28(server: FaultServer, mode: str) -> None:
    # No body byte at all: curl averages its speed over the last seconds, so bytes sent before
    # the stall would delay the abort by that window.
    server.route("/slow", stall(head=b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"))

    with anyio.fail_after(15), pytest.raises(CurlError) as caught:
        await fetch(mode, server.url("/slow"), timeouts=Timeouts(stall=1.9, connect=5))

    assert caught.value.exit_code == 28


async def test_slow_but_moving_body_is_not_a_stall(server: FaultServer) -> None:
    server.route("/slow", slow_body([b"a", b"b", b"c"], delay=0.6))

    response = await request(server.url("/slow"), timeouts=Timeouts(stall=1))

    assert response.body == b"abc"


async def test_refused_connection_names_the_url_without_password() -> None:
    with FaultServer() as gone:
        url = gone.url("/x", userinfo=f"user:{SECRET}")
    # The server is closed, so nothing listens on its port any more.

    with pytest.raises(CurlError) as caught:
        await request(url, timeouts=Timeouts(connect=5))

    assert caught.value.exit_code == 7
    assert str(caught.value) == (
        f"Failed to perform 'curl' for 'http://127.0.0.1:{gone.port}/x': {caught.value.stderr}"
    )
    assert "\n" not in str(caught.value)
    assert caught.value.stderr.startswith("curl: (7) ")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("mode", ["request", "transfer"])
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


@pytest.mark.parametrize("mode", ["request", "post", "transfer"])
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


@pytest.mark.parametrize("mode", ["request", "post", "transfer"])
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
        action: str = "",
    ) -> Path:
        (tmp_path / "stdout").write_bytes(stdout)
        (tmp_path / "stderr").write_bytes(stderr)
        script = tmp_path / "curl"
        script.write_text(
            "#!/bin/sh\n"
            f"cd '{tmp_path}'\n"
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

    await request(
        '  http://u:p@h/x?a="1"  ',
        headers={"X-A": 'say "hi" \\o/\t', "Accept": "a/b"},
        timeouts=Timeouts(stall=None, connect=None),
    )

    assert (seen / "stdin").read_text() == (
        'url = "http://u:p@h/x?a=\\"1\\""\n'
        'proto = "=http,https"\n'
        'proto-redir = "=http,https"\n'
        'header = "X-A: say \\"hi\\" \\\\o/\\t"\n'
        'header = "Accept: a/b"\n'
        "http1.1\n"
    )


@pytest.mark.parametrize(
    ("timeouts", "lines"),
    [
        (Timeouts(), ["speed-time = 60", "connect-timeout = 30.000"]),
        (Timeouts(stall=2.1, connect=1.5), ["speed-time = 3", "connect-timeout = 1.500"]),
        # Below a second is one second, never curl's 0 (no stall check at all).
        (Timeouts(stall=0.5, connect=1e-9), ["speed-time = 1", "connect-timeout = 0.001"]),
        (Timeouts(stall=None, connect=None), []),
        (Timeouts(stall=0, connect=0), []),
    ],
)
async def test_timeouts_become_curl_config(
    fake_curl: FakeCurl, timeouts: Timeouts, lines: list[str]
) -> None:
    seen = fake_curl()
    await request("http://h/", timeouts=timeouts)
    config = (seen / "stdin").read_text().splitlines()
    assert [line for line in config if line.startswith(("speed-", "connect-"))] == lines


async def test_undecodable_output_quotes_nothing_of_it(fake_curl: FakeCurl) -> None:
    """What the server sent may be a file's content or terminal escapes: never in the text."""
    fake_curl(b"root:x:0:0:root\x1b]0;pwned\x07" + b"x" * 5000)

    with pytest.raises(DecodeError) as caught:
        await request("http://h/")

    assert str(caught.value) == "Failed to decode HTTP responses: Decoding failed"


async def test_empty_output_is_no_response(fake_curl: FakeCurl) -> None:
    fake_curl(b"")

    with pytest.raises(DecodeError, match=r"^Failed to decode HTTP responses: No response decoded"):
        await request("http://h/")


async def test_nonzero_exit_carries_status_and_stderr(fake_curl: FakeCurl) -> None:
    fake_curl(b"", status=6, stderr=b"curl: (6) Could not resolve host: h\x1b[2J\nMore details\n")

    with pytest.raises(CurlError) as caught:
        await request("http://h/")

    assert str(caught.value) == (
        "Failed to perform 'curl' for 'http://h/': curl: (6) Could not resolve host: h?[2J"
    )
    assert (caught.value.exit_code, caught.value.stderr) == (
        6,
        "curl: (6) Could not resolve host: h?[2J",
    )


async def test_death_by_signal_is_a_failure(fake_curl: FakeCurl) -> None:
    fake_curl(action="kill -9 $$")

    with pytest.raises(CurlError) as caught:
        await request("http://h/")

    assert caught.value.exit_code == -9


async def test_a_huge_header_block_is_refused(fake_curl: FakeCurl) -> None:
    fake_curl(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 200_000 + b"\r\n\r\nbody")

    with pytest.raises(DecodeError) as caught:
        await request("http://h/")

    assert str(caught.value) == "Failed to decode HTTP responses: Decoding failed"


async def test_a_batch_curl_that_refuses_its_options_is_a_curl_error_at_once(
    fake_curl: FakeCurl, tmp_path: Path
) -> None:
    # As a curl too old for an option says it: no transfer ran, and a retry would not help.
    fake_curl(b"", status=2, stderr=b"curl: option --parallel-immediate: is unknown\n")
    transfers = [Transfer(f"http://h/{n}", str(tmp_path / f"out{n}")) for n in range(2)]

    with pytest.raises(CurlError) as caught:
        await run_batch(transfers, parallel=2, timeouts=Timeouts())

    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        "Failed to perform 'curl' for 'http://h/0': curl: option --parallel-immediate: is unknown"
    )


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
    assert redact_url(url) == expected
