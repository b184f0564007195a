"""Many small blobs go through one curl process; whatever that cannot finish is fetched one by one,
so the user sees the same files and the same errors as with single downloads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mesos_uri._docker.plugin import DockerFetcherPlugin
from mesos_uri._retry import RetryPolicy
from mesos_uri._uri import parse_uri
from mesos_uri.errors import DigestMismatchError, HTTPStatusError
from tests.support.faults import (
    Act,
    Drop,
    FaultServer,
    RateLimited,
    Redirect,
    Serve,
    Status,
    WrongBytes,
    blob_path,
)
from tests.support.procs import curl_pids

from .helpers import assert_verified
from .images import build_image, make_layers, serve

pytestmark = pytest.mark.anyio

REPO = "lab/small"


def _plugin() -> DockerFetcherPlugin:
    plugin = DockerFetcherPlugin(durable=False)
    plugin.retry = RetryPolicy(retries=1, base_delay=0.01, max_delay=0.01)
    return plugin


def _uri(server: FaultServer) -> str:
    return f"docker://127.0.0.1:{server.port}/{REPO}?latest#http"


async def test_small_blobs_are_each_requested_once(tmp_path: Path) -> None:
    image = build_image("linux/amd64", make_layers("batch-once", 12), image_format="schema2")
    with FaultServer() as server:
        serve(server, REPO, image)
        await _plugin().fetch(parse_uri(_uri(server)), tmp_path)
        for digest in image.blobs:
            assert len(server.requests_for(blob_path(REPO, digest))) == 1
    assert {p.name for p in tmp_path.iterdir()} == {"manifest", *image.blobs}
    assert_verified(tmp_path)
    assert curl_pids([os.getpid()]) == []


async def test_a_redirected_small_blob_is_fetched_by_the_single_path(tmp_path: Path) -> None:
    """A registry that sends one blob to storage: the batch leaves it, the redirect is followed."""
    image = build_image("linux/amd64", make_layers("batch-redirect", 6), image_format="schema2")
    moved = sorted(image.blobs)[2]
    with FaultServer() as server, FaultServer() as storage:
        serve(server, REPO, image)
        storage.script("/storage/blob", [Serve(body=image.blobs[moved])])
        server.script(blob_path(REPO, moved), [Redirect(storage.url("/storage/blob"))])
        await _plugin().fetch(parse_uri(_uri(server)), tmp_path)
        assert len(storage.requests_for("/storage/blob")) == 1
    assert (tmp_path / moved).read_bytes() == image.blobs[moved]
    assert_verified(tmp_path)


async def test_wrong_bytes_in_a_batch_fail_with_the_exact_mismatch(tmp_path: Path) -> None:
    image = build_image("linux/amd64", make_layers("batch-wrong", 6), image_format="schema2")
    bad = sorted(image.blobs)[3]
    with FaultServer() as server:
        serve(server, REPO, image)
        server.script(blob_path(REPO, bad), [WrongBytes()])
        with pytest.raises(DigestMismatchError) as caught:
            await _plugin().fetch(parse_uri(_uri(server)), tmp_path)
    assert caught.value.expected == bad
    assert not (tmp_path / bad).exists()
    assert_verified(tmp_path)
    assert curl_pids([os.getpid()]) == []


async def test_a_batched_transfer_cut_short_resumes_where_it_stopped(tmp_path: Path) -> None:
    """The batch's partial body counts as the first attempt: the retry asks only for the rest."""
    layers = make_layers("batch-resume", 5, size=64 * 1024)
    image = build_image("linux/amd64", layers, image_format="schema2")
    cut = sorted(image.blobs)[1]
    with FaultServer() as server:
        serve(server, REPO, image)
        server.script(blob_path(REPO, cut), [Drop(after=10_000), Serve()])
        await _plugin().fetch(parse_uri(_uri(server)), tmp_path)
        ranges = [r.header("Range") for r in server.requests_for(blob_path(REPO, cut))]
    assert ranges == [None, "bytes=10000-"]
    assert (tmp_path / cut).read_bytes() == image.blobs[cut]
    assert_verified(tmp_path)


@pytest.mark.parametrize(
    ("acts", "requests"),
    [
        ([Status(503), Serve()], 2),  # retried once, within the budget of two attempts
        ([RateLimited(retry_after=0), Serve()], 2),
    ],
)
async def test_a_batched_transient_failure_is_the_first_attempt(
    tmp_path: Path, acts: list[Act], requests: int
) -> None:
    image = build_image("linux/amd64", make_layers("batch-budget", 5), image_format="schema2")
    victim = sorted(image.blobs)[0]
    with FaultServer() as server:
        serve(server, REPO, image)
        server.script(blob_path(REPO, victim), acts)
        await _plugin().fetch(parse_uri(_uri(server)), tmp_path)
        assert len(server.requests_for(blob_path(REPO, victim))) == requests
    assert (tmp_path / victim).read_bytes() == image.blobs[victim]
    assert_verified(tmp_path)


async def test_a_batched_404_is_not_asked_again(tmp_path: Path) -> None:
    image = build_image("linux/amd64", make_layers("batch-404", 5), image_format="schema2")
    victim = sorted(image.blobs)[0]
    with FaultServer() as server:
        serve(server, REPO, image)
        server.script(blob_path(REPO, victim), [Status(404)])
        with pytest.raises(HTTPStatusError, match="404 Not Found") as caught:
            await _plugin().fetch(parse_uri(_uri(server)), tmp_path)
        assert len(server.requests_for(blob_path(REPO, victim))) == 1
    assert caught.value.code == 404
    assert not (tmp_path / victim).exists()
    assert_verified(tmp_path)
