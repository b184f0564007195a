"""The fault-injection suite: every fault of a hostile network, against the whole fetch.

Each test serves an image from a :class:`~faults.FaultServer`, scripts one fault on the manifest
or on a blob, fetches through the library (the ``Fetcher`` facade over a
``DockerFetcherPlugin``) or the CLI, and holds the result to the same four promises:

* the fetch succeeds with verified files (``DIR/manifest`` is what the server holds, every other
  file's sha256 is its name, nothing else is there), or fails with a clear one-line error;
* no temporary file (``DIR/.mesos-uri-*``) is left;
* no curl process is left;
* the retry budget holds: with ``retries=R``, at most ``R + 1`` attempts reach the server.

Every fetch is tallied by fault. ``MESOS_URI_WRITE_RELIABILITY=1`` makes a green run write the
tally into RELIABILITY.md, so the figures there come from this suite, not from a hand.

Library fetches use a fast :class:`RetryPolicy` (10 ms backoff) so that the suite stays short;
the CLI runs keep the real one.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import attrs
import pytest

from mesos_uri._docker import manifest as manifests
from mesos_uri._docker.plugin import DockerFetcherPlugin
from mesos_uri._retry import RetryPolicy
from mesos_uri._urls import MAX_REDIRECTS
from mesos_uri.errors import (
    AuthError,
    DigestError,
    DigestMismatchError,
    FetchError,
    HTTPStatusError,
    ManifestError,
)
from mesos_uri.fetcher import Fetcher, Flags, create
from tests.support.faults import (
    Act,
    BadChallenge,
    Drop,
    FaultServer,
    Hangup,
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
    sha256_digest,
)
from tests.support.procs import curl_pids, curl_procs

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
RELIABILITY: Final = REPO_ROOT / "RELIABILITY.md"
WRITE_RELIABILITY: Final = "MESOS_URI_WRITE_RELIABILITY"
FIGURES_START: Final = "<!-- fault-suite figures: start -->"
FIGURES_END: Final = "<!-- fault-suite figures: end -->"

# Retries of every library fetch here, unless a test says otherwise: four attempts in all.
RETRIES: Final = 3
# curl's own limit on the redirects it follows in request mode (curl(1) --max-redirs).
CURL_MAX_REDIRS: Final = 50
# What a temporary file in the target directory is called (mesos_uri._store).
TEMP_GLOB: Final = ".mesos-uri-*"
# Room for a loaded machine over the Retry-After a test asks for, and under it for clock ticks.
TIMING_SLACK: Final = 0.1

# For the tests whose time goes into waiting on curl and the server, not into the event loop:
# one backend is enough, and keeps the file well under a minute.
ONE_BACKEND: Final = pytest.mark.parametrize("anyio_backend", ["asyncio"])

OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"


# -- the images ---------------------------------------------------------------------------------


@attrs.frozen
class Image:
    """An OCI image as a registry holds it: the manifest bytes and every blob by digest."""

    repository: str
    manifest: bytes
    config: str
    layers: tuple[str, ...]
    blobs: dict[str, bytes] = attrs.field(eq=False)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def big(self) -> str:
        """The largest layer: the one worth cutting off mid-way."""
        return max(self.layers, key=lambda digest: len(self.blobs[digest]))

    def uri(self, server: FaultServer, reference: str = "latest") -> str:
        return f"docker://{server.host}/{self.repository}?{reference}#http"

    def manifest_path(self, reference: str = "latest") -> str:
        return manifest_path(self.repository, reference)

    def blob_path(self, digest: str | None = None) -> str:
        return blob_path(self.repository, digest or self.big)


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}


def make_image(repository: str, layer_sizes: Sequence[int], *, seed: int) -> Image:
    rng = random.Random(seed)
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layers = [rng.randbytes(size) for size in layer_sizes]
    document = {
        "schemaVersion": 2,
        "mediaType": manifests.OCI_MANIFEST,
        "config": _descriptor(OCI_CONFIG, config),
        "layers": [_descriptor(OCI_LAYER, layer) for layer in layers],
    }
    blobs = {sha256_digest(data): data for data in [config, *layers]}
    return Image(
        repository,
        json.dumps(document, indent=2).encode(),
        sha256_digest(config),
        tuple(sha256_digest(layer) for layer in layers),
        blobs,
    )


SMALL: Final = make_image("lab/small", [48 * 1024, 5000], seed=1)
# A 2 MiB blob dropped after 1 MiB is completed with a Range request.
LARGE: Final = make_image("lab/large", [2 * 1024 * 1024, 1000], seed=2)
HALF: Final = 1024 * 1024


# -- what is left behind ------------------------------------------------------------------------


def curls_marked(marker: str) -> list[int]:
    """curl processes that inherited ``marker`` in their environment, whoever their parent is
    now: a curl orphaned by an exiting CLI is re-parented, but keeps the CLI's environment."""
    return [p.pid for p in curl_procs() if marker.encode() in p.environ()]


@attrs.frozen
class Directory:
    """What a fetch left in its target directory, judged against the image it fetched."""

    files: dict[str, bytes]
    temps: tuple[str, ...]

    @classmethod
    def read(cls, path: Path) -> Directory:
        if not path.is_dir():
            return cls({}, ())
        files = {entry.name: entry.read_bytes() for entry in path.iterdir() if entry.is_file()}
        temps = tuple(sorted(entry.name for entry in path.glob(TEMP_GLOB)))
        return cls({name: data for name, data in files.items() if name not in temps}, temps)

    def corrupt(self, image: Image) -> list[str]:
        """Files whose bytes are not what their names promise, and files with no business here."""
        bad = []
        for name, data in self.files.items():
            if name == "manifest":
                ok = data == image.manifest
            elif name.startswith("sha256:"):
                ok = name == sha256_digest(data) and name in image.blobs
            else:
                ok = False
            if not ok:
                bad.append(name)
        return sorted(bad)

    def lost(self, image: Image) -> list[str]:
        """Files a complete fetch of ``image`` must have produced but did not."""
        return sorted({"manifest", *image.blobs} - set(self.files))


# -- the tally ----------------------------------------------------------------------------------


@attrs.define
class Row:
    """The figures of one fault, over every fetch that met it."""

    injected: int = 0
    fetches: int = 0
    verified: int = 0
    clean_errors: int = 0
    lost_or_corrupt: int = 0
    temps_left: int = 0
    curls_left: int = 0


@attrs.define
class Tally:
    rows: dict[str, Row] = attrs.Factory(dict)

    def row(self, fault: str) -> Row:
        return self.rows.setdefault(fault, Row())

    def total(self) -> Row:
        total = Row()
        for row in self.rows.values():
            for field in attrs.fields(Row):
                setattr(total, field.name, getattr(total, field.name) + getattr(row, field.name))
        return total

    def table(self) -> str:
        header = (
            "| fault | faults injected | fetches | verified files | clean error "
            "| files lost or corrupt | temp files left | curl processes left |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        )
        lines = []
        for name, row in [*sorted(self.rows.items()), ("**all faults**", self.total())]:
            lines.append(
                f"| {name} | {row.injected} | {row.fetches} | {row.verified} | "
                f"{row.clean_errors} | {row.lost_or_corrupt} | {row.temps_left} | "
                f"{row.curls_left} |"
            )
        return header + "\n".join(lines) + "\n"


def write_figures(tally: Tally, path: Path = RELIABILITY) -> None:
    """Replace the generated section of RELIABILITY.md with ``tally``'s table."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(FIGURES_START), text.index(FIGURES_END)
    total = tally.total()
    summary = (
        f"{total.injected} faults injected into {total.fetches} fetches: "
        f"{total.verified} ended with verified files, {total.clean_errors} with a clean error; "
        f"{total.lost_or_corrupt} files lost or corrupt, {total.curls_left} curl processes "
        f"left, {total.temps_left} temporary files left."
    )
    generated = f"{FIGURES_START}\n{summary}\n\n{tally.table()}"
    path.write_text(text[:start] + generated + text[end:], encoding="utf-8")


@pytest.fixture(scope="session")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    figures = Tally()
    yield figures
    if os.environ.get(WRITE_RELIABILITY) == "1" and request.session.testsfailed == 0:
        write_figures(figures)


# -- one fault, one or more fetches -------------------------------------------------------------


@attrs.frozen
class Outcome:
    """How one fetch ended, and what it left."""

    image: Image
    directory: Directory
    curls_left: tuple[int, ...]
    seconds: float
    error: FetchError | None = None  # library fetches
    exit_code: int | None = None  # CLI fetches
    stderr: str = ""
    # Warnings the event loop logged during a library fetch, e.g. asyncio's child watcher
    # finding a curl already reaped by someone else: the CLI would print them on stderr.
    logged: tuple[str, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.exit_code in (None, 0)

    @property
    def message(self) -> str:
        return self.stderr.strip() if self.exit_code is not None else str(self.error or "")

    @property
    def verified(self) -> bool:
        return (
            self.succeeded
            and not self.logged
            and not self.directory.lost(self.image)
            and not self.directory.corrupt(self.image)
        )

    @property
    def clean_error(self) -> bool:
        if self.succeeded or self.directory.corrupt(self.image) or self.logged:
            return False
        # The CLI's promise: exit 1 and exactly one line; the library's: the family's prefix.
        if self.exit_code is not None:
            return self.exit_code == 1 and len(self.stderr.strip().splitlines()) == 1
        return self.message.startswith("Failed to fetch '")


class Trial:
    """One fault scripted on a fault server, and the fetches that meet it."""

    def __init__(self, server: FaultServer, tally: Tally, fault: str) -> None:
        self.server = server
        self._row = tally.row(fault)
        self._scripts: dict[str, tuple[Act, ...]] = {}
        self._counted: dict[str, int] = {}

    def inject(self, path: str, acts: Sequence[Act]) -> None:
        self.server.script(path, acts)
        self._scripts[path] = tuple(acts)
        self._counted[path] = len(self.server.requests_for(path))

    def requests(self, path: str) -> int:
        return len(self.server.requests_for(path))

    def _injected(self) -> int:
        """Faulty answers given since last asked: every scripted act but a plain ``Serve()``."""
        count = 0
        for path, acts in self._scripts.items():
            seen = self.requests(path)
            for used in range(self._counted[path], seen):
                count += acts[min(used, len(acts) - 1)] != Serve()
            self._counted[path] = seen
        return count

    def _record(self, outcome: Outcome) -> Outcome:
        row = self._row
        row.injected += self._injected()
        row.fetches += 1
        row.verified += outcome.verified
        row.clean_errors += outcome.clean_error
        row.lost_or_corrupt += len(outcome.directory.corrupt(outcome.image))
        if outcome.succeeded:
            row.lost_or_corrupt += len(outcome.directory.lost(outcome.image))
        row.temps_left += len(outcome.directory.temps)
        row.curls_left += len(outcome.curls_left)
        return outcome

    async def fetch(
        self,
        directory: Path,
        *,
        image: Image = SMALL,
        reference: str = "latest",
        fetcher: Fetcher | None = None,
    ) -> Outcome:
        fetcher = fetcher or make_fetcher()
        started = time.monotonic()
        error = None
        with _LoopWarnings() as logged:
            try:
                await fetcher.fetch(image.uri(self.server, reference), directory)
            except FetchError as exc:
                error = exc
        seconds = time.monotonic() - started
        left = tuple(curl_pids([os.getpid()]))
        outcome = Outcome(
            image, Directory.read(directory), left, seconds, error, logged=tuple(logged.messages)
        )
        return self._record(outcome)

    def cli(self, directory: Path, *flags: str, image: Image = SMALL) -> Outcome:
        marker = f"MESOS_URI_FAULT_SUITE={uuid.uuid4().hex}"
        env = {**os.environ, marker.partition("=")[0]: marker.partition("=")[2]}
        argv = [sys.executable, "-m", "mesos_uri.fetch", *flags]
        started = time.monotonic()
        run = subprocess.run(
            [*argv, image.uri(self.server), str(directory)],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            timeout=60,
            check=False,
        )
        seconds = time.monotonic() - started
        left = tuple(curls_marked(marker))
        return self._record(
            Outcome(
                image,
                Directory.read(directory),
                left,
                seconds,
                exit_code=run.returncode,
                stderr=run.stderr,
            )
        )


class _LoopWarnings(logging.Handler):
    """Collects what the event loops log at WARNING and above while it is installed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> _LoopWarnings:
        for name in _LOOP_LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name in _LOOP_LOGGERS:
            logging.getLogger(name).removeHandler(self)


_LOOP_LOGGERS: Final = ("asyncio", "trio")


def make_fetcher(
    *, retries: int = RETRIES, stall_timeout: float | None = None, max_retry_after: float = 1.0
) -> Fetcher:
    """A fetcher whose plugin retries after 10-50 ms instead of seconds."""
    plugin = DockerFetcherPlugin(
        Flags(docker_stall_timeout=stall_timeout, connect_timeout=5.0), durable=False
    )
    plugin.retry = RetryPolicy(
        retries=retries, base_delay=0.01, max_delay=0.05, max_retry_after=max_retry_after
    )
    return Fetcher([plugin])


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        for image in (SMALL, LARGE):
            server.registry(image.repository, image.manifest, manifests.OCI_MANIFEST, image.blobs)
        yield server


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "out"


def assert_verified(outcome: Outcome) -> None:
    assert outcome.error is None, outcome.message
    assert outcome.logged == ()
    assert outcome.exit_code in (None, 0), outcome.stderr
    assert outcome.directory.files.keys() == {"manifest", *outcome.image.blobs}
    assert outcome.directory.corrupt(outcome.image) == []
    assert outcome.directory.temps == ()
    assert outcome.curls_left == ()
    assert outcome.verified


def assert_clean_error(outcome: Outcome, *words: str) -> None:
    """Failed with a one-line error naming ``words``, and left nothing bad behind."""
    assert not outcome.succeeded, "the fetch should have failed"
    assert outcome.logged == ()
    assert outcome.directory.corrupt(outcome.image) == []
    assert outcome.directory.temps == ()
    assert outcome.curls_left == ()
    assert outcome.clean_error, outcome.message
    one_line = " ".join(outcome.message.split())
    for word in words:
        assert word in one_line


def within_budget(trial: Trial, path: str, *, retries: int = RETRIES) -> int:
    """The requests ``path`` got, asserted to fit ``retries + 1`` attempts."""
    count = trial.requests(path)
    assert 1 <= count <= retries + 1
    return count


def _manifest_act_serving(body: bytes) -> Serve:
    """``body`` served as the manifest, under its own digest: so that what trips the client is
    the manifest itself, not the digest check. (An act's own body comes with its own headers.)"""
    headers = [
        ("Content-Type", manifests.OCI_MANIFEST),
        ("Docker-Content-Digest", sha256_digest(body)),
    ]
    return Serve(body=body, headers=headers)


# -- the probes themselves ----------------------------------------------------------------------


def test_the_process_probe_sees_a_running_curl_child(server: FaultServer) -> None:
    # Without this, "no curl process left" could pass because the probe sees nothing at all.
    server.script(SMALL.blob_path(), [Stall(30)])
    marker = f"MESOS_URI_FAULT_SUITE={uuid.uuid4().hex}"
    env = {**os.environ, marker.partition("=")[0]: marker.partition("=")[2]}
    child = subprocess.Popen(
        ["curl", "-q", "-s", "-o", "/dev/null", server.url(SMALL.blob_path())],
        env=env,
    )
    try:
        deadline = time.monotonic() + 10
        while not server.requests_for(SMALL.blob_path()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert curl_pids([os.getpid()]) == [child.pid]
        assert curls_marked(marker) == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert curl_pids([os.getpid()]) == []


def test_the_directory_judge_sees_corrupt_and_lost_files(tmp_path: Path) -> None:
    (tmp_path / "manifest").write_bytes(SMALL.manifest)
    (tmp_path / SMALL.config).write_bytes(b"not the config")
    (tmp_path / ".mesos-uri-x.tmp").write_bytes(b"")
    seen = Directory.read(tmp_path)
    assert seen.corrupt(SMALL) == [SMALL.config]
    assert seen.lost(SMALL) == sorted(SMALL.layers)
    assert seen.temps == (".mesos-uri-x.tmp",)


# -- drop the connection after N bytes ----------------------------------------------------------


@pytest.mark.anyio
async def test_manifest_dropped_mid_body_is_fetched_again(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "drop after N bytes")
    trial.inject(SMALL.manifest_path(), [Drop(after=100), Serve()])
    assert_verified(await trial.fetch(target))
    assert trial.requests(SMALL.manifest_path()) == 2


@pytest.mark.anyio
async def test_blob_dropped_after_1_mib_resumes_with_a_range(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "drop after N bytes")
    trial.inject(LARGE.blob_path(), [Drop(after=HALF), Serve()])
    assert_verified(await trial.fetch(target, image=LARGE))
    ranges = [request.header("Range") for request in server.requests_for(LARGE.blob_path())]
    assert ranges == [None, f"bytes={HALF}-"]


@pytest.mark.anyio
async def test_blob_resumed_from_a_server_that_ignores_range_restarts_cleanly(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "drop after N bytes")
    trial.inject(LARGE.blob_path(), [Drop(after=HALF), Serve(ranges=False)])
    assert_verified(await trial.fetch(target, image=LARGE))
    ranges = [request.header("Range") for request in server.requests_for(LARGE.blob_path())]
    assert ranges == [None, f"bytes={HALF}-"]  # asked for the rest, got (and used) the whole


@pytest.mark.anyio
async def test_blob_resumed_at_the_wrong_offset_is_refused(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    # A 206 that starts anywhere but where we stopped would splice the blob wrongly.
    trial = Trial(server, tally, "drop after N bytes")
    whole = LARGE.blobs[LARGE.big]
    wrong = Serve(206, whole, [("Content-Range", f"bytes 0-{len(whole) - 1}/{len(whole)}")])
    trial.inject(LARGE.blob_path(), [Drop(after=HALF), wrong])
    outcome = await trial.fetch(target, image=LARGE)
    assert_clean_error(outcome, "Content-Range", f"at byte {HALF}")
    assert LARGE.big not in outcome.directory.files


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["manifest", "blob"])
async def test_connection_dropped_every_time_fails_within_the_budget(
    server: FaultServer, tally: Tally, target: Path, where: str
) -> None:
    trial = Trial(server, tally, "drop after N bytes")
    path = LARGE.manifest_path() if where == "manifest" else LARGE.blob_path()
    trial.inject(path, [Drop(after=100)])
    outcome = await trial.fetch(target, image=LARGE)
    assert_clean_error(outcome, "curl: (18)", f"gave up after {RETRIES + 1} attempts")
    assert within_budget(trial, path) == RETRIES + 1


# -- 500 / 503 (and the other transient statuses), then success ---------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("code", [500, 503, 502, 504, 408])
@pytest.mark.parametrize("where", ["manifest", "blob"])
async def test_transient_status_then_success(
    server: FaultServer, tally: Tally, target: Path, code: int, where: str
) -> None:
    trial = Trial(server, tally, f"{code} then success")
    path = SMALL.manifest_path() if where == "manifest" else SMALL.blob_path()
    trial.inject(path, [Status(code), Status(code), Serve()])
    assert_verified(await trial.fetch(target))
    assert trial.requests(path) == 3


@pytest.mark.anyio
async def test_503_on_every_attempt_gives_up_after_the_budget(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "503 then success")
    trial.inject(SMALL.blob_path(), [Status(503)])
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, "503 Service Unavailable", f"gave up after {RETRIES + 1}")
    assert isinstance(outcome.error, HTTPStatusError)
    assert outcome.error.code == 503
    assert within_budget(trial, SMALL.blob_path()) == RETRIES + 1
    assert SMALL.big not in outcome.directory.files


@pytest.mark.anyio
@pytest.mark.parametrize("code", [400, 403, 404, 405, 410])
@pytest.mark.parametrize("where", ["manifest", "blob"])
async def test_other_4xx_are_not_retried(
    server: FaultServer, tally: Tally, target: Path, code: int, where: str
) -> None:
    trial = Trial(server, tally, "4xx (not retried)")
    path = SMALL.manifest_path() if where == "manifest" else SMALL.blob_path()
    trial.inject(path, [Status(code), Serve()])
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, f"'{code} ", f"INJECTED_{code}")
    assert trial.requests(path) == 1
    assert "gave up" not in outcome.message


@pytest.mark.anyio
async def test_the_default_fetcher_retries_a_503(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    # Through mesos_uri.fetcher.create(Flags(...)), with the real backoff.
    trial = Trial(server, tally, "503 then success")
    trial.inject(SMALL.manifest_path(), [Status(503), Serve()])
    fetcher = create(Flags(retries=1, docker_stall_timeout=5.0, connect_timeout=5.0))
    assert_verified(await trial.fetch(target, fetcher=fetcher))
    assert trial.requests(SMALL.manifest_path()) == 2


# -- 429 with Retry-After -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_429_retry_after_seconds_is_waited_for(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "429 with Retry-After")
    trial.inject(SMALL.manifest_path(), [RateLimited(1), Serve()])
    outcome = await trial.fetch(target, fetcher=make_fetcher(max_retry_after=5.0))
    assert_verified(outcome)
    assert trial.requests(SMALL.manifest_path()) == 2
    # The backoff alone is 10 ms: only the Retry-After explains a wait of a second.
    assert outcome.seconds >= 1.0 - TIMING_SLACK


@pytest.mark.anyio
@ONE_BACKEND
async def test_429_retry_after_http_date_is_waited_for(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "429 with Retry-After")
    # Two seconds ahead, truncated to whole seconds by the date format: at least one to wait.
    trial.inject(SMALL.blob_path(), [RateLimited(http_date(time.time() + 2)), Serve()])
    outcome = await trial.fetch(target, fetcher=make_fetcher(max_retry_after=5.0))
    assert_verified(outcome)
    assert trial.requests(SMALL.blob_path()) == 2
    assert outcome.seconds >= 1.0 - TIMING_SLACK


@pytest.mark.anyio
@ONE_BACKEND
async def test_429_retry_after_is_capped(server: FaultServer, tally: Tally, target: Path) -> None:
    # Docker Hub may ask for an hour; the policy's max_retry_after (1 s here) wins.
    trial = Trial(server, tally, "429 with Retry-After")
    trial.inject(SMALL.manifest_path(), [RateLimited(3600), Serve()])
    outcome = await trial.fetch(target, fetcher=make_fetcher(max_retry_after=1.0))
    assert_verified(outcome)
    assert 1.0 - TIMING_SLACK <= outcome.seconds < 10


@pytest.mark.anyio
async def test_429_with_garbage_retry_after_falls_back_to_the_backoff(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "429 with Retry-After")
    trial.inject(SMALL.blob_path(), [RateLimited("soon, maybe"), Serve()])
    outcome = await trial.fetch(target, fetcher=make_fetcher(max_retry_after=5.0))
    assert_verified(outcome)
    assert outcome.seconds < 1.0


@pytest.mark.anyio
async def test_429_on_every_attempt_gives_up_after_the_budget(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "429 with Retry-After")
    trial.inject(SMALL.manifest_path(), [RateLimited(0)])
    outcome = await trial.fetch(target, fetcher=make_fetcher(retries=2))
    assert_clean_error(outcome, "429", "TOOMANYREQUESTS", "gave up after 3 attempts")
    assert within_budget(trial, SMALL.manifest_path(), retries=2) == 3


# -- stall (stall timeout 1 s) ------------------------------------------------------------------


@pytest.mark.anyio
@ONE_BACKEND
async def test_manifest_stalled_before_its_answer_is_retried(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "stall")
    trial.inject(SMALL.manifest_path(), [Stall(30), Serve()])
    outcome = await trial.fetch(target, fetcher=make_fetcher(stall_timeout=1.0))
    assert_verified(outcome)
    assert trial.requests(SMALL.manifest_path()) == 2
    assert outcome.seconds < 15  # the stall timeout cut it, not the server's 30 s


@pytest.mark.anyio
@ONE_BACKEND
async def test_blob_stalled_after_its_headers_is_retried(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "stall")
    trial.inject(SMALL.blob_path(), [Stall(30, after=0), Serve()])
    outcome = await trial.fetch(target, fetcher=make_fetcher(stall_timeout=1.0))
    assert_verified(outcome)
    assert trial.requests(SMALL.blob_path()) == 2
    assert outcome.seconds < 15


@pytest.mark.anyio
@ONE_BACKEND
async def test_blob_stalled_on_every_attempt_gives_up_after_the_budget(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "stall")
    trial.inject(SMALL.blob_path(), [Stall(30)])
    outcome = await trial.fetch(target, fetcher=make_fetcher(retries=1, stall_timeout=1.0))
    assert_clean_error(outcome, "curl: (28)", "gave up after 2 attempts")
    assert within_budget(trial, SMALL.blob_path(), retries=1) == 2


# -- wrong bytes --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_blob_with_wrong_bytes_fails_naming_both_digests(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "wrong bytes")
    trial.inject(SMALL.blob_path(), [WrongBytes()])
    outcome = await trial.fetch(target)
    body = SMALL.blobs[SMALL.big]
    flipped = body[:-1] + bytes([body[-1] ^ 0xFF])
    assert_clean_error(outcome, "Digest mismatch", SMALL.big, sha256_digest(flipped))
    assert isinstance(outcome.error, DigestMismatchError)
    assert (outcome.error.expected, outcome.error.actual) == (SMALL.big, sha256_digest(flipped))
    assert SMALL.big not in outcome.directory.files
    # The same bytes would come again: a mismatch is not retried.
    assert trial.requests(SMALL.blob_path()) == 1


@pytest.mark.anyio
@ONE_BACKEND
async def test_blobs_cancelled_by_a_failure_are_reaped_by_the_event_loop_alone(
    server: FaultServer, tally: Tally, tmp_path: Path
) -> None:
    # One blob fails, the others are cancelled and their curls killed, some of them just as
    # they exit. Whatever kills them must not reap them behind asyncio's child watcher, which
    # would log "Unknown child process pid N" (and the CLI print it). A race: hence the rounds.
    trial = Trial(server, tally, "wrong bytes")
    trial.inject(SMALL.blob_path(), [WrongBytes()])
    logged: list[str] = []
    for round_ in range(30):
        outcome = await trial.fetch(tmp_path / str(round_))
        assert outcome.error is not None
        assert outcome.curls_left == ()
        logged += outcome.logged
    assert logged == []


@pytest.mark.anyio
@pytest.mark.parametrize("by", ["tag", "digest"])
async def test_manifest_with_wrong_bytes_fails_and_is_not_written(
    server: FaultServer, tally: Tally, target: Path, by: str
) -> None:
    trial = Trial(server, tally, "wrong bytes")
    reference = "latest" if by == "tag" else SMALL.digest
    trial.inject(SMALL.manifest_path(reference), [WrongBytes()])
    outcome = await trial.fetch(target, reference=reference)
    assert_clean_error(outcome, "Digest mismatch", SMALL.digest)
    assert outcome.directory.files == {}
    assert trial.requests(SMALL.manifest_path(reference)) == 1


# -- oversized manifest (and an overlong blob) --------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("size", "words"),
    [
        # Just over the limit: read whole, then refused by size.
        (manifests.MAX_MANIFEST_BYTES + 1, ("4 MiB limit",)),
        # Far over it: curl is stopped before the body has all arrived.
        (manifests.MAX_MANIFEST_BYTES + 1024 * 1024, ("larger than the", "limit")),
    ],
)
async def test_oversized_manifest_is_refused(
    server: FaultServer, tally: Tally, target: Path, size: int, words: tuple[str, ...]
) -> None:
    trial = Trial(server, tally, "oversized manifest")
    trial.inject(SMALL.manifest_path(), [Oversized(size)])
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, *words)
    assert outcome.directory.files == {}
    assert trial.requests(SMALL.manifest_path()) == 1


@pytest.mark.anyio
async def test_blob_longer_than_its_descriptor_is_stopped(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "oversized blob")
    trial.inject(SMALL.blob_path(), [Oversized(len(SMALL.blobs[SMALL.big]) + 4096)])
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, SMALL.big, "larger than the")
    assert SMALL.big not in outcome.directory.files


# -- malformed manifest -------------------------------------------------------------------------


def _hostile_manifest(layer_digest: str) -> bytes:
    document = json.loads(SMALL.manifest)
    document["layers"][0]["digest"] = layer_digest
    return json.dumps(document).encode()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "words"),
    [
        (SMALL.manifest[: len(SMALL.manifest) // 2], ("OCI image manifest",)),
        (b"\x00\xffnot json at all", ("OCI image manifest",)),
        (b"[1, 2, 3]", ("OCI image manifest",)),
        (b'{"schemaVersion": 2, "layers": []}', ("config",)),
        (_hostile_manifest("../../etc/passwd"), ("../../etc/passwd",)),
        (_hostile_manifest("sha256:../x"), ("sha256:../x",)),
        (_hostile_manifest("sha256:" + "A" * 64), ("lowercase hex",)),
        (_hostile_manifest(""), ("Invalid digest",)),
        (_hostile_manifest("sha256:" + "0" * 300), ("longer than",)),
    ],
    ids=[
        "truncated",
        "binary",
        "array",
        "no-config",
        "path-traversal",
        "digest-traversal",
        "uppercase-hex",
        "empty-digest",
        "oversized-digest",
    ],
)
async def test_malformed_manifest_is_refused_and_nothing_is_written(
    server: FaultServer, tally: Tally, target: Path, body: bytes, words: tuple[str, ...]
) -> None:
    trial = Trial(server, tally, "malformed manifest")
    trial.inject(SMALL.manifest_path(), [_manifest_act_serving(body)])
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, *words)
    assert isinstance(outcome.error, ManifestError | DigestError)
    assert outcome.directory.files == {}
    assert trial.requests(SMALL.manifest_path()) == 1
    # Nothing escaped the target directory either.
    assert sorted(entry.name for entry in target.parent.iterdir()) == []  # it made DIR: gone


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["manifest", "blob"])
async def test_malformed_header_block_fails_cleanly(
    server: FaultServer, tally: Tally, target: Path, where: str
) -> None:
    trial = Trial(server, tally, "malformed header block")
    path = SMALL.manifest_path() if where == "manifest" else SMALL.blob_path()
    trial.inject(path, [MalformedHeader()])
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, "Header without colon")
    within_budget(trial, path)


# JSON nested deeper than Python's json module can follow (its limit is about 1000 levels).
DEEP_JSON: Final = b"[" * 50_000


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["manifest", "blob"])
async def test_deeply_nested_error_body_fails_cleanly(
    server: FaultServer, tally: Tally, target: Path, where: str
) -> None:
    # The registry's JSON error body is read for its code and message; a hostile one must not
    # turn a 404 into a RecursionError that escapes the error family.
    trial = Trial(server, tally, "hostile JSON in an error or token body")
    path = SMALL.manifest_path() if where == "manifest" else SMALL.blob_path()
    trial.inject(path, [Status(404, body=DEEP_JSON)])
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, "404 Not Found")
    assert trial.requests(path) == 1


@pytest.mark.anyio
async def test_deeply_nested_token_response_fails_cleanly(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "hostile JSON in an error or token body")
    trial.inject(SMALL.manifest_path(), [_challenge(server, SMALL.repository), Serve()])
    trial.inject(
        TOKEN_PATH, [Serve(body=DEEP_JSON, headers=[("Content-Type", "application/json")])]
    )
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, "Parsing the JSON object failed")
    assert isinstance(outcome.error, AuthError)
    assert trial.requests(TOKEN_PATH) == 1


# -- malformed WWW-Authenticate -----------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("challenge", "words"),
    [
        (BadChallenge(), ("WWW-Authenticate", "Unexpected auth-param format")),
        (BadChallenge("Bearer"), ("WWW-Authenticate",)),
        (BadChallenge('Bearer service="registry",scope="x"'), ("'realm' is not defined",)),
        (BadChallenge(""), ("empty WWW-Authenticate",)),
        (
            BadChallenge('Bearer realm="ftp://127.0.0.1/token",service="s",scope="x"'),
            ("Unsupported token realm",),
        ),
        (BadChallenge('Negotiate abc=="'), ("WWW-Authenticate",)),
    ],
    ids=["unterminated", "bare", "no-realm", "empty", "ftp-realm", "garbage"],
)
@pytest.mark.parametrize("where", ["manifest", "blob"])
async def test_malformed_challenge_is_an_auth_error_not_retried(
    server: FaultServer,
    tally: Tally,
    target: Path,
    challenge: BadChallenge,
    words: tuple[str, ...],
    where: str,
) -> None:
    trial = Trial(server, tally, "malformed WWW-Authenticate")
    path = SMALL.manifest_path() if where == "manifest" else SMALL.blob_path()
    trial.inject(path, [challenge, Serve()])
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, *words)
    assert isinstance(outcome.error, AuthError)
    assert trial.requests(path) == 1


# -- redirect loops -----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("hops", [1, 2])
async def test_manifest_redirect_loop_fails_cleanly(
    server: FaultServer, tally: Tally, target: Path, hops: int
) -> None:
    trial = Trial(server, tally, "redirect loop")
    path = SMALL.manifest_path()
    if hops == 1:
        trial.inject(path, [Redirect(path)])
    else:
        trial.inject(path, [Redirect("/elsewhere")])
        trial.inject("/elsewhere", [Redirect(path)])
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, "redirects")
    # curl follows its own limit of redirects, once: a loop is not a transient failure.
    assert trial.requests(path) <= CURL_MAX_REDIRS + 1


@pytest.mark.anyio
@pytest.mark.parametrize("hops", [1, 2])
async def test_blob_redirect_loop_fails_cleanly(
    server: FaultServer, tally: Tally, target: Path, hops: int
) -> None:
    trial = Trial(server, tally, "redirect loop")
    path = SMALL.blob_path()
    if hops == 1:
        trial.inject(path, [Redirect(path)])
    else:
        trial.inject(path, [Redirect("/elsewhere")])
        trial.inject("/elsewhere", [Redirect(path)])
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, "Too many redirects")
    total = trial.requests(path) + trial.requests("/elsewhere")
    assert total == MAX_REDIRECTS + 1
    assert SMALL.big not in outcome.directory.files


# -- close before headers -----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["manifest", "blob"])
async def test_hang_up_before_any_byte_is_retried(
    server: FaultServer, tally: Tally, target: Path, where: str
) -> None:
    trial = Trial(server, tally, "close before headers")
    path = SMALL.manifest_path() if where == "manifest" else SMALL.blob_path()
    trial.inject(path, [Hangup(), Hangup(), Serve()])
    assert_verified(await trial.fetch(target))
    assert trial.requests(path) == 3


@pytest.mark.anyio
async def test_hang_up_on_every_attempt_gives_up_after_the_budget(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "close before headers")
    trial.inject(SMALL.manifest_path(), [Hangup()])
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, "Empty reply from server", f"gave up after {RETRIES + 1}")
    assert within_budget(trial, SMALL.manifest_path()) == RETRIES + 1


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["manifest", "blob"])
async def test_hang_up_inside_the_header_block_is_retried(
    server: FaultServer, tally: Tally, target: Path, where: str
) -> None:
    # curl 7.88 exits 0 when the server closes mid-header-block: the cut must still count as
    # the transient network failure it is, like the empty reply above.
    trial = Trial(server, tally, "close before headers")
    path = SMALL.manifest_path() if where == "manifest" else SMALL.blob_path()
    trial.inject(path, [Raw(b"HTTP/1.1 200 OK\r\nContent-Le"), Serve()])
    assert_verified(await trial.fetch(target))
    assert trial.requests(path) == 2


# -- an expired or rejected token ---------------------------------------------------------------

TOKEN_PATH: Final = "/token"


def _challenge(server: FaultServer, repository: str) -> Status:
    value = (
        f'Bearer realm="{server.url(TOKEN_PATH)}",service="faults",'
        f'scope="repository:{repository}:pull"'
    )
    return Status(401, [("WWW-Authenticate", value)])


def _token(value: str) -> Serve:
    body = json.dumps({"token": value, "expires_in": 300}).encode()
    return Serve(body=body, headers=[("Content-Type", "application/json")])


def _authorizations(server: FaultServer, path: str) -> list[str | None]:
    return [request.header("Authorization") for request in server.requests_for(path)]


@pytest.mark.anyio
async def test_blob_rejecting_a_token_gets_it_renewed_once(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "401 after a token was sent")
    challenge = _challenge(server, SMALL.repository)
    trial.inject(SMALL.manifest_path(), [challenge, Serve()])
    trial.inject(SMALL.blob_path(), [challenge, Serve()])
    trial.inject(TOKEN_PATH, [_token("first"), _token("second"), _token("third")])
    assert_verified(await trial.fetch(target))
    assert trial.requests(TOKEN_PATH) == 2
    assert _authorizations(server, SMALL.manifest_path()) == [None, "Bearer first"]
    # Sent up front from the cache, refused, renewed once.
    assert _authorizations(server, SMALL.blob_path()) == ["Bearer first", "Bearer second"]


@pytest.mark.anyio
async def test_blob_rejecting_every_token_fails_after_one_renewal(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "401 after a token was sent")
    challenge = _challenge(server, SMALL.repository)
    trial.inject(SMALL.manifest_path(), [challenge, Serve()])
    trial.inject(SMALL.blob_path(), [challenge])
    trial.inject(TOKEN_PATH, [_token("first"), _token("second"), _token("third")])
    outcome = await trial.fetch(target)
    assert_clean_error(outcome, "401 Unauthorized", "the blob")
    assert trial.requests(TOKEN_PATH) == 2
    assert _authorizations(server, SMALL.blob_path()) == ["Bearer first", "Bearer second"]


@pytest.mark.anyio
async def test_manifest_rejecting_a_cached_token_gets_it_renewed_once(
    server: FaultServer, tally: Tally, tmp_path: Path
) -> None:
    trial = Trial(server, tally, "401 after a token was sent")
    challenge = _challenge(server, SMALL.repository)
    trial.inject(SMALL.manifest_path(), [challenge, Serve(), challenge, Serve()])
    trial.inject(TOKEN_PATH, [_token("first"), _token("second"), _token("third")])
    fetcher = make_fetcher()
    assert_verified(await trial.fetch(tmp_path / "one", fetcher=fetcher))
    # The same plugin again: its cached token goes up front, is refused, and is renewed once.
    assert_verified(await trial.fetch(tmp_path / "two", fetcher=fetcher))
    assert trial.requests(TOKEN_PATH) == 2
    assert _authorizations(server, SMALL.manifest_path()) == [
        None,
        "Bearer first",
        "Bearer first",
        "Bearer second",
    ]


@pytest.mark.anyio
async def test_token_endpoint_failing_transiently_is_retried(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "503 then success")
    trial.inject(SMALL.manifest_path(), [_challenge(server, SMALL.repository), Serve()])
    trial.inject(TOKEN_PATH, [Status(503), Hangup(), _token("first")])
    assert_verified(await trial.fetch(target))
    assert trial.requests(TOKEN_PATH) == 3


# -- through the CLI ----------------------------------------------------------------------------


def test_cli_resumes_a_dropped_blob_with_a_range(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "drop after N bytes")
    trial.inject(LARGE.blob_path(), [Drop(after=HALF), Serve()])
    outcome = trial.cli(target, "--retries=2", image=LARGE)
    assert_verified(outcome)
    ranges = [request.header("Range") for request in server.requests_for(LARGE.blob_path())]
    assert ranges == [None, f"bytes={HALF}-"]


def test_cli_stall_timeout_cuts_a_stalled_blob_and_resumes_it(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    # curl measures its speed over a few seconds, so a transfer that stops after 1 MiB is
    # found stalled some seconds later, not one: this is the slowest test of the file.
    trial = Trial(server, tally, "stall")
    trial.inject(LARGE.blob_path(), [Stall(60, after=HALF), Serve()])
    outcome = trial.cli(target, "--docker_stall_timeout=1secs", "--retries=1", image=LARGE)
    assert_verified(outcome)
    ranges = [request.header("Range") for request in server.requests_for(LARGE.blob_path())]
    assert ranges == [None, f"bytes={HALF}-"]
    assert outcome.seconds < 30  # cut by the stall timeout, not by the server's 60 s


def test_cli_503_every_time_exits_1_after_the_budget(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "503 then success")
    trial.inject(SMALL.manifest_path(), [Status(503)])
    outcome = trial.cli(target, "--retries=1")
    assert_clean_error(outcome, "Failed to fetch", "503", "gave up after 2 attempts")
    assert within_budget(trial, SMALL.manifest_path(), retries=1) == 2


def test_cli_wrong_bytes_exit_1_with_one_line(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "wrong bytes")
    trial.inject(SMALL.blob_path(), [WrongBytes()])
    outcome = trial.cli(target)
    assert_clean_error(outcome, "Digest mismatch", SMALL.big)
    assert SMALL.big not in outcome.directory.files
    assert trial.requests(SMALL.blob_path()) == 1


def test_cli_404_is_one_request_and_exit_1(server: FaultServer, tally: Tally, target: Path) -> None:
    trial = Trial(server, tally, "4xx (not retried)")
    trial.inject(SMALL.manifest_path(), [Status(404)])
    outcome = trial.cli(target)
    assert_clean_error(outcome, "404 Not Found")
    assert trial.requests(SMALL.manifest_path()) == 1


def test_cli_redirect_loop_exit_1(server: FaultServer, tally: Tally, target: Path) -> None:
    trial = Trial(server, tally, "redirect loop")
    trial.inject(SMALL.blob_path(), [Redirect(SMALL.blob_path())])
    outcome = trial.cli(target)
    assert_clean_error(outcome, "Too many redirects")
    assert trial.requests(SMALL.blob_path()) == MAX_REDIRECTS + 1


def test_cli_malformed_challenge_exit_1(server: FaultServer, tally: Tally, target: Path) -> None:
    trial = Trial(server, tally, "malformed WWW-Authenticate")
    trial.inject(SMALL.manifest_path(), [BadChallenge()])
    outcome = trial.cli(target)
    assert_clean_error(outcome, "WWW-Authenticate")
    assert trial.requests(SMALL.manifest_path()) == 1


def test_cli_deeply_nested_error_body_exit_1_without_a_traceback(
    server: FaultServer, tally: Tally, target: Path
) -> None:
    trial = Trial(server, tally, "hostile JSON in an error or token body")
    trial.inject(SMALL.manifest_path(), [Status(404, body=DEEP_JSON)])
    outcome = trial.cli(target)
    assert "Traceback" not in outcome.stderr
    assert_clean_error(outcome, "404 Not Found")


# -- the generated figures ----------------------------------------------------------------------


def test_figures_replace_only_the_generated_section(tmp_path: Path) -> None:
    page = tmp_path / "RELIABILITY.md"
    page.write_text(f"# Title\n\nprose\n\n{FIGURES_START}\nold\n{FIGURES_END}\n\nmore prose\n")
    figures = Tally()
    row = figures.row("stall")
    row.injected, row.fetches, row.verified, row.clean_errors = 3, 2, 1, 1
    write_figures(figures, page)
    text = page.read_text()
    assert text.startswith("# Title\n\nprose\n\n")
    assert text.endswith(f"{FIGURES_END}\n\nmore prose\n")
    assert "old" not in text
    assert "| stall | 3 | 2 | 1 | 1 | 0 | 0 | 0 |" in text
    assert "| **all faults** | 3 | 2 | 1 | 1 | 0 | 0 | 0 |" in text
    assert "3 faults injected into 2 fetches: 1 ended with verified files, 1 with a clean" in text


def test_reliability_page_has_its_generated_section() -> None:
    text = RELIABILITY.read_text(encoding="utf-8")
    assert text.index(FIGURES_START) < text.index(FIGURES_END)
