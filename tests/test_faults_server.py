"""The fault server, where it could break without any product test noticing: a fault that is not
the fault it claims (a drop that sends everything, a range honoured that should be ignored), a
script that skips an act, a byte count or a canary stuck at zero, a server that outlives its
test. Seen through curl, as the product sees it."""

from __future__ import annotations

import email.utils
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import attrs
import pytest

from tests.support.faults import (
    Act,
    Blackhole,
    Canary,
    Drop,
    Endless,
    FaultServer,
    Hangup,
    Huge,
    MalformedHeader,
    Oversized,
    RateLimited,
    Raw,
    Redirect,
    Serve,
    Stall,
    Status,
    WrongBytes,
    blob_path,
    http_date,
    manifest_path,
    respond,
    sequence,
    sha256_digest,
    tls_context,
)

REPO = "lab/app"
MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
BLOB = bytes(range(256)) * 40
DIGEST = sha256_digest(BLOB)
BLOB_PATH = blob_path(REPO, DIGEST)
MANIFEST = b'{"schemaVersion": 2}'


@attrs.frozen
class Answer:
    exit_code: int
    status: int | None
    head: str
    body: bytes


def curl(url: str, *options: str) -> Answer:
    """One curl run: its exit code, and the last header block and the body apart.

    The fault server's redirects have empty bodies, so with ``-L`` each header block is followed
    directly by the next one.
    """
    run = subprocess.run(
        ["curl", "-q", "-s", "-S", "-i", *options, url], capture_output=True, timeout=30
    )
    out, pos, head = run.stdout, 0, b""
    while out.startswith(b"HTTP/", pos):
        end = out.find(b"\r\n\r\n", pos)
        end = len(out) if end < 0 else end
        head, pos = out[pos:end], end + 4
    status = int(head.split()[1]) if head else None
    return Answer(run.returncode, status, head.decode("latin-1"), out[pos:])


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        server.registry(REPO, MANIFEST, MEDIA_TYPE, {DIGEST: BLOB})
        yield server


@pytest.mark.parametrize(
    ("act", "options", "exit_code"),
    [
        (Hangup(), (), 52),  # CURLE_GOT_NOTHING
        (Drop(after=1000), (), 18),  # CURLE_PARTIAL_FILE
        (Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"), (), 18),
        (MalformedHeader(), (), 8),  # CURLE_WEIRD_SERVER_REPLY
        (Redirect(BLOB_PATH), ("-L", "--max-redirs", "3"), 47),  # a loop: TOO_MANY_REDIRECTS
        (Stall(10), ("-y", "1", "-Y", "1"), 28),  # a stall before any byte: OPERATION_TIMEDOUT
        (Stall(10, after=100), ("-y", "1", "-Y", "1000"), 28),  # a stall mid-body
    ],
)
def test_each_fault_makes_curl_fail_as_it_would_in_the_wild(
    server: FaultServer, act: Act, options: tuple[str, ...], exit_code: int
) -> None:
    server.script(BLOB_PATH, [act])
    assert curl(server.url(BLOB_PATH), *options).exit_code == exit_code


def test_scripts_and_sequences_answer_one_request_each_and_the_last_repeats(
    server: FaultServer,
) -> None:
    """A retry test whose first fault was skipped would pass without any retry."""
    server.script(BLOB_PATH, [Status(503), Status(500), Serve()])
    assert [curl(server.url(BLOB_PATH)).status for _ in range(4)] == [503, 500, 200, 200]
    server.route("/r", sequence(respond(503), respond(200)))
    server.route("/r?exact=1", respond(418))
    assert [curl(server.url("/r?any")).status for _ in range(3)] == [503, 200, 200]
    assert curl(server.url("/r?exact=1")).status == 418


def test_range_requests_get_206_unless_ranges_are_off(server: FaultServer) -> None:
    partial = curl(server.url(BLOB_PATH), "-r", "1000-")
    assert (partial.status, partial.body) == (206, BLOB[1000:])
    assert f"Content-Range: bytes 1000-{len(BLOB) - 1}/{len(BLOB)}" in partial.head
    server.script(BLOB_PATH, [Serve(ranges=False)])
    whole = curl(server.url(BLOB_PATH), "-r", "1000-")
    assert (whole.status, whole.body) == (200, BLOB)


def test_wrong_and_oversized_bodies_are_what_they_claim(server: FaultServer) -> None:
    server.script(BLOB_PATH, [WrongBytes()])
    wrong = curl(server.url(BLOB_PATH))
    assert len(wrong.body) == len(BLOB)
    assert wrong.body != BLOB
    assert f"Docker-Content-Digest: {DIGEST}" in wrong.head  # it still claims the digest
    path = manifest_path(REPO, "latest")
    server.script(path, [Oversized(5 * 1024 * 1024)])
    big = curl(server.url(path))
    assert len(big.body) == 5 * 1024 * 1024
    assert big.body.startswith(MANIFEST)


def test_rate_limited_answers_429_with_retry_after_as_given(server: FaultServer) -> None:
    when = time.time() + 120
    for value in (30, http_date(when), "soon"):
        server.script(BLOB_PATH, [RateLimited(value)])
        answer = curl(server.url(BLOB_PATH))
        assert answer.status == 429
        assert f"\r\nRetry-After: {value}\r\n" in answer.head
    assert email.utils.parsedate_to_datetime(http_date(when)).timestamp() == int(when)


def test_redirect_to_another_server(server: FaultServer) -> None:
    """A redirect that never left would let the tests of where redirects may go pass."""
    with FaultServer() as storage:
        storage.script("/bucket/blob", [Serve(body=b"stored")])
        server.script(BLOB_PATH, [Redirect(storage.url("/bucket/blob"))])
        assert curl(server.url(BLOB_PATH), "-L").body == b"stored"
        assert len(storage.requests_for("/bucket/blob")) == 1


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_an_endless_body_runs_past_any_size_then_stalls_at_its_limit(
    server: FaultServer, framing: Literal["chunked", "close"]
) -> None:
    limit = 1024 * 1024
    server.script(BLOB_PATH, [Endless(framing, limit=limit)])
    answer = curl(server.url(BLOB_PATH), "-m", "2")
    assert answer.exit_code == 28  # it never ended: curl gave up waiting
    assert answer.status == 200
    assert "Content-Length" not in answer.head
    assert answer.body == b"A" * limit


def test_bytes_sent_are_counted(server: FaultServer) -> None:
    """Tests assert that a client stopped reading by how little was sent."""
    answer = curl(server.url(BLOB_PATH))
    assert server.sent_for(BLOB_PATH) == len(answer.head) + 4 + len(BLOB)


def test_a_huge_answer_is_framed_and_stops_when_the_client_goes(server: FaultServer) -> None:
    size = 1024 * 1024 * 1024
    server.script(BLOB_PATH, [Huge(size, status=500)])
    answer = curl(server.url(BLOB_PATH), "--max-filesize", "1000")
    assert answer.exit_code == 63  # CURLE_FILESIZE_EXCEEDED, from the Content-Length alone
    assert answer.status == 500
    assert f"Content-Length: {size}" in answer.head
    sent = -1
    while sent != server.sent_for(BLOB_PATH):  # until the handler has stopped writing
        sent = server.sent_for(BLOB_PATH)
        time.sleep(0.1)
    assert sent < size // 8


def test_close_while_stalling_leaves_no_thread_and_frees_the_port() -> None:
    before = set(threading.enumerate())
    server = FaultServer()
    server.script("/slow", [Stall(60)])
    client = subprocess.Popen(
        ["curl", "-q", "-s", "-S", server.url("/slow")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not server.requests_for("/slow") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.requests_for("/slow")
        started = time.monotonic()
        server.close()
        assert time.monotonic() - started < 2
        assert set(threading.enumerate()) == before
        assert client.wait(timeout=10) == 52  # cut before a byte was sent
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", server.port))
    finally:
        client.kill()
        client.wait()


def test_the_canary_records_every_byte_and_answers_none() -> None:
    """Tests assert that nothing reached the canary: a canary that counted nothing would agree."""
    with Canary() as canary:
        assert (canary.connections, canary.received) == (0, b"")
        gopher = curl(canary.url("gopher", "/_SET%20pwned%201"), "-m", "1")
        assert canary.connections == 1
        # gopher sends the path (without its type character) and a CRLF, nothing else.
        assert canary.received == b"SET pwned 1\r\n"
        assert gopher.exit_code == 28  # it waited for an answer that never came
        curl(canary.url("http", "/x"), "-m", "1")
        assert canary.connections == 2
        assert b"GET /x HTTP/1.1" in canary.received


def test_the_blackhole_lets_no_connection_through() -> None:
    with Blackhole() as hole:
        run = subprocess.run(
            ["curl", "-q", "-sS", "--connect-timeout", "1", f"http://{hole.host}/"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert run.returncode == 28
        assert "Failed to connect" in run.stderr


def test_a_tls_server_may_answer_plain_http_on_the_same_port_and_says_which(
    tmp_path: Path,
) -> None:
    """Tests of a redirect from https to http check it went out in plain text by ``tls``."""
    context, ca_bundle = tls_context(tmp_path)
    with FaultServer(tls=context, plain=True) as mixed:
        mixed.route("/x", respond(200, b"either"))
        secure = curl(mixed.url("/x"), "--cacert", str(ca_bundle))
        plain = curl(mixed.url("/x", scheme="http"))
        assert (secure.body, plain.body) == (b"either", b"either")
        assert [r.tls for r in mixed.requests] == [True, False]
