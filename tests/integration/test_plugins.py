"""The rest of the Mesos URI fetcher: the curl plugin (``http``/``https``) and the copy plugin
(``file``), through the CLI and the library, with the original's tests
(CurlFetcherPluginTest, CopyFetcherPluginTest) and the docker plugin's care: atomic files and no
orphaned curl.

The servers are the tests' own loopback HTTP server; no registry is involved.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from mesos_uri import fetcher
from mesos_uri.errors import FetchError, HTTPStatusError
from tests.support.faults import FaultServer, redirect, respond, stall
from tests.support.procs import curl_pids

from .helpers import REPO_ROOT, run_cli

pytestmark = pytest.mark.anyio

BODY = b"test"
# How long a test waits for a request to reach the server or a process to appear.
WAIT = 30.0


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """``/TestHttpServer/test`` answers ``200 test``, as the original's test server does."""
    with FaultServer() as started:
        started.route("/TestHttpServer/test", respond(200, BODY))
        yield started


def _wait_until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _names(directory: Path) -> list[str]:
    """Every entry of ``directory``, hidden ones (temporary files) included."""
    return sorted(os.listdir(directory))


# -- the curl plugin through the CLI -------------------------------------------------------------


def test_http_uri_is_fetched_to_its_basename(server: FaultServer, tmp_path: Path) -> None:
    done = run_cli(server.url("/TestHttpServer/test"), str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
    assert _names(tmp_path) == ["test"]
    assert (tmp_path / "test").read_bytes() == BODY


def test_http_404_fails_with_the_originals_text_and_leaves_nothing(
    server: FaultServer, tmp_path: Path
) -> None:
    server.route("/missing", respond(404, b"<html>not here</html>"))
    uri = server.url("/missing")
    done = run_cli(uri, str(tmp_path))
    assert done.returncode == 1
    # The original's text: Status::string(404).
    assert done.stderr == (
        f"Failed to fetch '{uri}': Unexpected HTTP response code for '{uri}': 404 Not Found\n"
    )
    assert _names(tmp_path) == []


@pytest.mark.parametrize(
    "hops",
    [
        pytest.param([(301, b"moved permanently")], id="301-with-body"),
        pytest.param([(302, b"")], id="302-without-body"),
        pytest.param([(307, b""), (308, b"again")], id="307-then-308"),
    ],
)
def test_redirects_are_followed_and_the_file_keeps_the_uris_name(
    hops: list[tuple[int, bytes]], server: FaultServer, tmp_path: Path
) -> None:
    target = "/TestHttpServer/test"
    for number, (status, body) in reversed(list(enumerate(hops))):
        path = f"/hop{number}/tool.tar.gz"
        server.route(path, redirect(server.url(target), status, body))
        target = path
    done = run_cli(server.url(target), str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert _names(tmp_path) == ["tool.tar.gz"]
    assert (tmp_path / "tool.tar.gz").read_bytes() == BODY


def test_curl_stall_timeout_aborts_a_transfer_that_stops_moving(
    server: FaultServer, tmp_path: Path
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome"
    server.route("/stalls", stall(head=head))
    uri = server.url("/stalls")
    done = run_cli("--curl_stall_timeout=1secs", uri, str(tmp_path), timeout=WAIT)
    assert done.returncode == 1
    assert done.stderr.startswith(f"Failed to fetch '{uri}': Failed to perform 'curl'")
    assert "curl: (28)" in done.stderr
    assert _names(tmp_path) == []


def test_a_cli_fetch_killed_by_sigterm_leaves_no_temp_file_and_no_curl(
    server: FaultServer, tmp_path: Path
) -> None:
    release = threading.Event()
    server.route("/slow", stall(release, head=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1"))
    cli = subprocess.Popen(
        [sys.executable, "-m", "mesos_uri.fetch", server.url("/slow"), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        _wait_until(lambda: server.requests_for("/slow"), "the request")
        _wait_until(lambda: curl_pids([cli.pid]), "curl")
        curls = curl_pids([cli.pid])
        assert _names(tmp_path) != []  # the download was under way, into a temporary file
        cli.send_signal(signal.SIGTERM)
        _, stderr = cli.communicate(timeout=WAIT)
    finally:
        release.set()
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM" in stderr
    assert _names(tmp_path) == []
    assert not set(curls) & set(curl_pids())


# -- the copy plugin through the CLI -------------------------------------------------------------


def test_file_uri_is_copied_to_its_basename(tmp_path: Path) -> None:
    source = tmp_path / "src" / "tool.tar.gz"
    source.parent.mkdir()
    source.write_bytes(b"abc")
    out = tmp_path / "out"
    done = run_cli(f"file://{source}", str(out))
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
    assert _names(out) == ["tool.tar.gz"]
    assert (out / "tool.tar.gz").read_bytes() == b"abc"


def test_a_missing_file_fails_with_the_originals_text(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/absent"
    out = tmp_path / "out"
    done = run_cli(uri, str(out))
    assert done.returncode == 1
    assert done.stderr.startswith(f"Failed to fetch '{uri}': Failed to perform 'copy': cp: ")
    assert "No such file or directory" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert not out.exists()  # made for the fetch, removed when it failed


# -- the library: the original's tests and cancellation -------------------------------------------


async def test_curl_valid_uri(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CURL_ValidUri: fetched into the current directory as ``test``."""
    monkeypatch.chdir(tmp_path)
    await fetcher.create().fetch(server.url("/TestHttpServer/test"), ".")
    assert (tmp_path / "test").read_bytes() == BODY


async def test_curl_valid_uri_with_output_file_name(server: FaultServer, tmp_path: Path) -> None:
    """CURL_ValidUriWithOutputFileName."""
    await fetcher.create().fetch(
        server.url("/TestHttpServer/test"), tmp_path, output_file_name="file"
    )
    assert _names(tmp_path) == ["file"]
    assert (tmp_path / "file").read_bytes() == BODY


async def test_curl_invalid_uri(server: FaultServer, tmp_path: Path) -> None:
    """CURL_InvalidUri: a 404 fails the fetch."""
    server.route("/TestHttpServer/test", respond(404))
    with pytest.raises(HTTPStatusError) as caught:
        await fetcher.create().fetch(server.url("/TestHttpServer/test"), tmp_path)
    assert caught.value.code == 404
    assert _names(tmp_path) == []


async def test_curl_invoke_fetch_by_name(server: FaultServer, tmp_path: Path) -> None:
    """CURL_InvokeFetchByName."""
    await fetcher.create().fetch(server.url("/TestHttpServer/test"), tmp_path, plugin="curl")
    assert (tmp_path / "test").read_bytes() == BODY


async def test_copy_fetch_existing_file(tmp_path: Path) -> None:
    """CopyFetcherPluginTest.FetchExistingFile."""
    source = tmp_path / "file"
    source.write_text("abc")
    await fetcher.create().fetch(f"file://{source}", tmp_path / "dir")
    assert (tmp_path / "dir" / "file").read_text() == "abc"


async def test_copy_fetch_non_existing_file(tmp_path: Path) -> None:
    """CopyFetcherPluginTest.FetchNonExistingFile."""
    with pytest.raises(FetchError, match="Failed to perform 'copy'"):
        await fetcher.create().fetch(f"file://{tmp_path}/non-exist", tmp_path / "dir")
    assert not (tmp_path / "dir").exists()  # made for the fetch, removed when it failed


async def test_a_cancelled_copy_leaves_nothing_in_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cp that has begun its copy, and then takes its time.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cp = bin_dir / "cp"
    cp.write_text('#!/bin/sh\nmkdir -p "$4" && touch "$4/part" && exec sleep 30\n')
    cp.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    source = tmp_path / "tree"
    source.mkdir()
    target = tmp_path / "dir"

    copying = False
    async with anyio.create_task_group() as group:
        group.start_soon(fetcher.create().fetch, f"file://{source}", target)
        for _ in range(1000):  # until cp has begun, 10 s at most
            copying = any(target.glob(".mesos-uri-*/part"))
            if copying:
                break
            await anyio.sleep(0.01)
        group.cancel_scope.cancel()

    assert copying, "the copy never started"
    assert list(target.iterdir()) == []


async def test_copy_invoke_fetch_by_name(tmp_path: Path) -> None:
    """CopyFetcherPluginTest.InvokeFetchByName."""
    source = tmp_path / "file"
    source.write_text("abc")
    await fetcher.create().fetch(f"file://{source}", tmp_path / "dir", plugin="copy")
    assert (tmp_path / "dir" / "file").read_text() == "abc"


async def test_a_cancelled_curl_fetch_leaves_no_temp_file_and_no_curl(
    server: FaultServer, tmp_path: Path
) -> None:
    release = threading.Event()
    server.route("/slow", stall(release, head=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1"))
    mine = [os.getpid()]
    try:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(fetcher.create().fetch, server.url("/slow"), tmp_path)
                with anyio.fail_after(WAIT):
                    while True:  # polls the process table: nothing to wait on as an event
                        if server.requests_for("/slow") and curl_pids(mine):
                            break
                        await anyio.sleep(0.02)
                assert _names(tmp_path) != []  # the download was under way
                scope.cancel()
    finally:
        release.set()
    assert scope.cancelled_caught
    assert _names(tmp_path) == []
    assert curl_pids(mine) == []
