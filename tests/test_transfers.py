"""Downloads to files through one curl: records, resume, limits, coalescing, cancellation.

Against a real HTTP server on 127.0.0.1 and the real curl; a wrapper script around curl counts
the processes where a test is about how many there were.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from mesos_uri import _curl as curl
from mesos_uri._curl import Timeouts
from mesos_uri._transfers import Batcher, Transfer, run_batch
from tests.support.faults import (
    Exchange,
    FaultServer,
    drop_after,
    redirect,
    respond,
    slow_body,
    stall,
)
from tests.support.procs import curl_pids

pytestmark = pytest.mark.anyio

BODY = bytes(range(256)) * 400  # 100 KiB
SECRET = "s3cret-t0ken"
FAST = Timeouts(stall=5, connect=5)
# How far past its limit a file may grow before the follower, which polls, stops curl: far
# below what an endless body would bring in the test's 20 seconds.
FOLLOWER_SLACK = 64 * 1024 * 1024


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


@pytest.fixture
def spawns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run curl through a script that appends one line per process to the returned file, and
    each process's arguments (each followed by a NUL) to :func:`argv_log` of it."""
    log = tmp_path / "spawns.log"
    wrapper = tmp_path / "curl"
    wrapper.write_text(
        f"#!/bin/sh\necho \"$$\" >> '{log}'\nprintf '%s\\0' \"$@\" >> '{argv_log(log)}'\n"
        'exec curl "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv(curl.CURL_ENV, str(wrapper))
    return log


def spawned(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def argv_log(log: Path) -> Path:
    """Where the :func:`spawns` wrapper keeps the arguments of every curl it ran."""
    return log.with_name("argv.log")


def arguments(log: Path) -> list[str]:
    """Every argument of every curl the :func:`spawns` wrapper ran."""
    path = argv_log(log)
    return path.read_text().split("\0")[:-1] if path.exists() else []


def blank(directory: Path, name: str, content: bytes = b"") -> str:
    path = directory / name
    path.write_bytes(content)
    return str(path)


def endless(exchange: Exchange) -> None:
    """A 200 with a chunked body that never ends (until the client goes away)."""
    exchange.head(200, [("Transfer-Encoding", "chunked")])
    piece = b"x" * 65536
    while exchange.connected and not exchange.server.closing.is_set():
        exchange.raw(b"%x\r\n%s\r\n" % (len(piece), piece))


async def test_a_batch_writes_each_body_to_its_file_and_hashes_it(
    server: FaultServer, tmp_path: Path, spawns: Path
) -> None:
    bodies = {f"/b{i}": BODY[i * 1000 :] for i in range(5)}
    for path, body in bodies.items():
        server.route(path, respond(200, body))
    transfers = [
        Transfer(server.url(path), blank(tmp_path, path[1:]), hasher=hashlib.sha256())
        for path in bodies
    ]
    outcomes = await run_batch(transfers, parallel=3, timeouts=FAST)
    assert spawned(spawns) == 1
    for transfer, outcome, body in zip(transfers, outcomes, bodies.values(), strict=True):
        assert (outcome.finished, outcome.exit_code, outcome.code) == (True, 0, 200)
        assert outcome.size == len(body)
        assert Path(transfer.path).read_bytes() == body
        assert transfer.hasher is not None
        assert transfer.hasher.hexdigest() == hashlib.sha256(body).hexdigest()


async def test_each_transfer_sends_its_own_headers_and_no_secret_reaches_argv(
    server: FaultServer, tmp_path: Path, spawns: Path
) -> None:
    server.route("/a", respond(200, b"a"))
    server.route("/b", respond(200, b"b"))
    outcomes = await run_batch(
        [
            Transfer(server.url("/a"), blank(tmp_path, "a"), headers={"Authorization": SECRET}),
            Transfer(server.url("/b"), blank(tmp_path, "b"), headers={"X-Other": "1"}),
        ],
        parallel=2,
        timeouts=FAST,
    )
    assert [outcome.code for outcome in outcomes] == [200, 200]
    [a] = server.requests_for("/a")
    [b] = server.requests_for("/b")
    assert a.header("Authorization") == SECRET
    assert b.header("Authorization") is None
    assert b.header("X-Other") == "1"
    # The one curl that sent them got neither header nor secret in its arguments, which every
    # user of the machine can read.
    assert spawned(spawns) == 1
    argv = arguments(spawns)
    assert argv, "the wrapper recorded no arguments"
    assert not [arg for arg in argv if SECRET in arg or "Authorization" in arg], argv


async def test_an_error_status_is_reported_with_its_body_in_the_file(
    server: FaultServer, tmp_path: Path
) -> None:
    server.route(
        "/e", respond(429, b'{"errors":[]}', [("Retry-After", "7"), ("Content-Type", "x/y")])
    )
    [outcome] = await run_batch(
        [Transfer(server.url("/e"), blank(tmp_path, "e"))], parallel=1, timeouts=FAST
    )
    assert (outcome.code, outcome.status, outcome.exit_code) == (429, "429 Too Many Requests", 0)
    assert outcome.headers.get("Retry-After") == "7"
    assert outcome.headers.get("content-type") == "x/y"
    assert (tmp_path / "e").read_bytes() == b'{"errors":[]}'


async def test_a_redirect_is_reported_and_not_followed(server: FaultServer, tmp_path: Path) -> None:
    server.route("/r", redirect("file:///etc/passwd", 307))
    [outcome] = await run_batch(
        [Transfer(server.url("/r"), blank(tmp_path, "r"))], parallel=1, timeouts=FAST
    )
    assert outcome.code == 307
    assert outcome.redirect_url == "file:///etc/passwd"
    assert (tmp_path / "r").read_bytes() == b""


async def test_a_cut_body_keeps_what_arrived(server: FaultServer, tmp_path: Path) -> None:
    server.route("/c", drop_after(BODY, 5000))
    hasher = hashlib.sha256()
    [outcome] = await run_batch(
        [Transfer(server.url("/c"), blank(tmp_path, "c"), hasher=hasher)],
        parallel=1,
        timeouts=FAST,
    )
    assert (outcome.code, outcome.exit_code, outcome.size) == (200, 18, 5000)
    assert hasher.hexdigest() == hashlib.sha256(BODY[:5000]).hexdigest()


async def test_a_declared_length_past_the_limit_writes_nothing(
    server: FaultServer, tmp_path: Path
) -> None:
    server.route("/big", respond(200, BODY))
    [outcome] = await run_batch(
        [Transfer(server.url("/big"), blank(tmp_path, "big"), limit=100)],
        parallel=1,
        timeouts=FAST,
    )
    assert outcome.oversize
    assert (tmp_path / "big").stat().st_size == 0


async def test_an_endless_body_stops_one_byte_past_the_limit(
    server: FaultServer, tmp_path: Path
) -> None:
    """A chunked body announces no length: the kernel stops curl at the batch's largest limit,
    so the file never holds more than one byte beyond it."""
    server.route("/endless", endless)
    for name in ("a", "b"):
        server.route(f"/{name}", respond(200, b"x" * 4096))
    transfers = [
        Transfer(server.url("/a"), blank(tmp_path, "a"), limit=4096),
        Transfer(server.url("/endless"), blank(tmp_path, "endless"), limit=4096),
        Transfer(server.url("/b"), blank(tmp_path, "b"), limit=4096),
    ]
    with anyio.fail_after(20):
        outcomes = await run_batch(transfers, parallel=3, timeouts=FAST)
    assert outcomes[1].oversize
    assert (tmp_path / "endless").stat().st_size <= 4097
    assert all(Path(transfer.path).stat().st_size <= 4097 for transfer in transfers)


async def test_the_follower_stops_a_file_past_its_own_limit(
    server: FaultServer, tmp_path: Path
) -> None:
    """With no limit beside it, an endless small transfer is stopped by the follower: the
    kernel's backstop is the batch's largest limit, here none at all."""
    server.route("/endless", endless)
    server.route("/big", stall(head=b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n"))
    transfers = [
        Transfer(server.url("/endless"), blank(tmp_path, "endless"), limit=4096),
        Transfer(server.url("/big"), blank(tmp_path, "big"), limit=None),
    ]
    with anyio.fail_after(20):
        outcomes = await run_batch(transfers, parallel=2, timeouts=FAST)
    assert outcomes[0].oversize
    assert not outcomes[1].finished  # curl was stopped before the other transfer ended
    # Stopped soon after it passed 4096 bytes, not by a limit of the kernel's or the server's.
    size = (tmp_path / "endless").stat().st_size
    assert 4096 < size < FOLLOWER_SLACK, f"{size} bytes"


async def test_a_stall_ends_only_the_stalled_transfer(server: FaultServer, tmp_path: Path) -> None:
    server.route("/slow", stall(head=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"))
    server.route("/ok", respond(200, b"fine"))
    started = time.monotonic()
    outcomes = await run_batch(
        [
            Transfer(server.url("/slow"), blank(tmp_path, "slow")),
            Transfer(server.url("/ok"), blank(tmp_path, "ok")),
        ],
        parallel=2,
        timeouts=Timeouts(stall=0.2, connect=5),
    )
    assert time.monotonic() - started < 10
    assert (outcomes[0].exit_code, outcomes[0].size) == (28, 2)
    assert (outcomes[1].exit_code, outcomes[1].code) == (0, 200)


async def test_progress_reports_the_bytes_in_the_file(server: FaultServer, tmp_path: Path) -> None:
    server.route("/p", respond(200, BODY))
    seen: list[int] = []
    await run_batch(
        [Transfer(server.url("/p"), blank(tmp_path, "p"), progress=seen.append)],
        parallel=1,
        timeouts=FAST,
    )
    assert seen == sorted(seen)
    assert seen[-1] == len(BODY)


async def test_control_characters_in_a_path_are_quoted_for_curl(
    server: FaultServer, tmp_path: Path
) -> None:
    server.route("/n", respond(200, b"data"))
    directory = tmp_path / 'a\nb\t"c\\'
    directory.mkdir()
    path = blank(directory, "file")
    await run_batch([Transfer(server.url("/n"), path)], parallel=1, timeouts=FAST)
    assert Path(path).read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == [directory.name]


async def test_concurrent_transfers_share_one_curl(
    server: FaultServer, tmp_path: Path, spawns: Path
) -> None:
    for index in range(10):
        server.route(f"/{index}", respond(200, b"%d" % index))
    batcher = Batcher(parallel=4, timeouts=FAST)
    results: dict[int, int] = {}

    async def one(index: int) -> None:
        outcome = await batcher.transfer(
            Transfer(server.url(f"/{index}"), blank(tmp_path, str(index)))
        )
        results[index] = outcome.code

    async with anyio.create_task_group() as group:
        for index in range(10):
            group.start_soon(one, index)
    assert results == dict.fromkeys(range(10), 200)
    assert spawned(spawns) == 1


async def test_transfers_that_queue_while_every_curl_is_busy_share_the_next_one(
    server: FaultServer, tmp_path: Path, spawns: Path
) -> None:
    # Two slow transfers hold both curls; forty more arrive one by one meanwhile (as redirect
    # answers do): they wait as one batch, not as forty batches of one.
    for index in range(2):
        server.route(f"/slow{index}", slow_body([b"a", b"b"], delay=1.0))
    for index in range(40):
        server.route(f"/{index}", respond(200, b"ok"))
    batcher = Batcher(parallel=4, timeouts=FAST)
    codes: list[int] = []

    async def one(path: str) -> None:
        outcome = await batcher.transfer(Transfer(server.url(path), blank(tmp_path, path[1:])))
        codes.append(outcome.code)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for index in range(2):
                group.start_soon(one, f"/slow{index}")
                await anyio.sleep(0.1)  # past the gathering: a curl each
            for index in range(40):
                group.start_soon(one, f"/{index}")
                await anyio.sleep(0.005)
    assert codes.count(200) == 42
    assert spawned(spawns) <= 5


async def test_a_leader_cancelled_while_gathering_leaves_the_others_served(
    server: FaultServer, tmp_path: Path
) -> None:
    for index in range(3):
        server.route(f"/{index}", respond(200, b"ok"))
    batcher = Batcher(parallel=4, timeouts=FAST)
    codes: list[int] = []

    async def follower(index: int) -> None:
        outcome = await batcher.transfer(Transfer(server.url(f"/{index}"), blank(tmp_path, "f")))
        codes.append(outcome.code)

    # A follower nobody leads any more waits for ever: fail instead of holding the suite.
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            with anyio.CancelScope() as leader_scope:
                leader_scope.cancel()  # the leader is cancelled at its first checkpoint
                group.start_soon(follower, 1)
                group.start_soon(follower, 2)
                await batcher.transfer(Transfer(server.url("/0"), blank(tmp_path, "l")))
    assert codes == [200, 200]


async def test_cancellation_kills_curl_at_once(server: FaultServer, tmp_path: Path) -> None:
    release = threading.Event()
    server.route("/s", stall(release, head=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"))
    try:
        with anyio.move_on_after(0.5):
            await run_batch(
                [Transfer(server.url("/s"), blank(tmp_path, "s"))],
                parallel=1,
                timeouts=Timeouts(stall=None, connect=5),
            )
        # run_batch returns only once its curl is reaped: none may be left at all.
        assert curl_pids([os.getpid()]) == []
    finally:
        release.set()


async def test_the_record_survives_header_values_with_tabs(
    server: FaultServer, tmp_path: Path
) -> None:
    server.route("/t", respond(401, b"", [("WWW-Authenticate", 'Bearer realm="a\tb",x="y"')]))
    [outcome] = await run_batch(
        [Transfer(server.url("/t"), blank(tmp_path, "t"))], parallel=1, timeouts=FAST
    )
    assert outcome.code == 401
    assert outcome.headers.get("www-authenticate") == 'Bearer realm="a\tb",x="y"'


async def test_files_keep_their_private_mode(server: FaultServer, tmp_path: Path) -> None:
    server.route("/m", respond(200, b"m"))
    path = blank(tmp_path, "m")
    os.chmod(path, 0o600)
    await run_batch([Transfer(server.url("/m"), path)], parallel=1, timeouts=FAST)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
