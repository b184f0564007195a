"""The registry is not trusted: what a registry under an attacker's control (or anyone who answers
in its place on a plain-HTTP network) can and cannot make this fetcher do.

Each test plays one attack through the public surface (``python -m mesos_uri.fetch``,
``mesos_uri.fetcher.create()`` and ``Fetcher.fetch``) and checks what an operator would check:

* no byte reaches another local service through any redirect or URL (a :class:`~faults.Canary`
  listens on another loopback port and must see no connection at all);
* no error text holds a file's content, an escape sequence or any other control character, and
  every error stays short (one line on the CLI);
* DIR never holds more bytes than the manifest declares while the fetch runs, and afterwards
  only verified final names, after failures and cancellation too;
* nothing hangs, and a second signal cannot interrupt the cleanup the first one started;
* credentials go only where they belong, and a password is never printed.

The hostile registry is tests.support.faults' server (loopback only); the real docker-registry of
the integration harness plays the part where a real registry can show the case.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

import anyio
import attrs
import pytest

from mesos_uri.errors import (
    BlobSizeError,
    FetchError,
    ManifestError,
    RedirectError,
    ResponseTooLargeError,
)
from mesos_uri.fetcher import Fetcher, Flags, create
from tests.integration.conftest import PRIVATE, USERS, TokenRegistry, start_registry
from tests.support import push_image
from tests.support.faults import (
    OCI_MANIFEST,
    Blackhole,
    Canary,
    Endless,
    FaultServer,
    Huge,
    Image,
    Oversized,
    Raw,
    Redirect,
    Serve,
    Stall,
    Status,
    descriptor,
    error_body,
    oci_image,
    respond,
    sha256_digest,
    stall,
    tls_context,
)
from tests.support.procs import curl_pids, processes

REPO_ROOT: Final = Path(__file__).resolve().parents[1]

# What an operator reads: one error line, short enough to read and to store in a task status.
MAX_ERROR_CHARS: Final = 1000
# Control characters a terminal acts on: C0 (ESC, BEL, CR, LF, NUL, ...), DEL and C1.
CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The file a redirect to file:// would read: none of its lines may show up in an error.
PASSWD: Final = Path("/etc/passwd")
PASSWD_LINES: Final = tuple(line for line in PASSWD.read_text().splitlines() if line.strip())
# What the store names its temporary files: none may outlive a fetch.
TEMP_PREFIX: Final = ".mesos-uri-"
# How long a test waits for a fetch that should end within a second or two: a fetch still
# running then is a hang, and fails the test instead of holding the suite.
FETCH_DEADLINE: Final = 15.0
# The same for a CLI run, which adds the interpreter's start-up.
CLI_DEADLINE: Final = 25.0
# Library fetches: one attempt, and a stall or a dead connection found within a second or so.
FAST: Final = Flags(
    docker_stall_timeout=1.0, curl_stall_timeout=1.0, connect_timeout=5.0, retries=0
)
CLI_FAST: Final = ("--docker_stall_timeout=1secs", "--curl_stall_timeout=1secs", "--retries=0")
# curl checks the transfer speed once a second: a stall is found up to this long after the
# stall timeout (a body that sent bytes first takes longer: curl averages over five seconds).
STALL_SLACK: Final = 2.0
# The CLI's own start-up and a retry's backoff, on a loaded machine.
START_SLACK: Final = 3.0
# A redirect, every status that means one.
REDIRECTS: Final = (301, 302, 303, 307, 308)
# Bytes a generated answer may push into the kernel's socket buffers before a client that hangs
# up can stop it: far below the 1 GiB on offer, far above any buffer.
SOCKET_SLACK: Final = 64 * 1024 * 1024
# Memory the CLI may use for a fetch of small blobs, whatever the registry answers.
MAX_CLI_RSS: Final = 200 * 1024 * 1024
GIB: Final = 1024 * 1024 * 1024
USER: Final = "alice"
PASSWORD: Final = "s3cr3t-pw"
REFRESH_TOKEN: Final = "refresh-t0ken-secret"
# A registry's error message as an attacker writes it: retitle the terminal, clear it, colour
# it, ring, then controls, a CSI as a C1 byte, a right-to-left override and 10 KiB of text.
HOSTILE_MESSAGE: Final = (
    "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\nnext line\x00\x08\x7f\x9b31m\u202e" + "A" * 10 * 1024
)


@pytest.fixture
def anyio_backend() -> str:
    """Library fetches here wait on curl and the server, not on the event loop: one backend.
    Cancellation, which is the event loop's business, asks for both."""
    return "asyncio"


# -- what is left behind ------------------------------------------------------------------------


def unverified(directory: Path) -> list[str]:
    """The names in ``directory`` that are not verified final names: temporary files, files
    whose bytes are not what their digest name says, and anything but manifest and index."""
    if not directory.is_dir():
        return []
    bad = []
    for entry in sorted(directory.iterdir()):
        if entry.name in ("manifest", "index") and entry.is_file():
            continue
        verified = entry.name.startswith("sha256:") and entry.is_file()
        if not (verified and sha256_digest(entry.read_bytes()) == entry.name):
            bad.append(entry.name)
    return bad


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob(TEMP_PREFIX + "*")) if directory.is_dir() else []


def files_outside(root: Path, inside: Path) -> list[str]:
    """Files under ``root`` that are not under ``inside``."""
    return sorted(
        str(path)
        for path in root.rglob("*")
        if path.is_file() and inside not in path.parents and path != inside
    )


class DirectoryWatch:
    """Polls the total size of the files in a directory from a thread while a fetch runs; the
    largest total seen is ``peak``. Bytes past a declared size show up here whether the fetch
    later deletes them or not."""

    INTERVAL: Final = 0.002

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="directory-watch")

    def _total(self) -> int:
        total = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue  # renamed or removed since the listing
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            self._stop.wait(self.INTERVAL)
        self.peak = max(self.peak, self._total())

    def __enter__(self) -> DirectoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def group_members(pgid: int) -> list[int]:
    """Every process (zombies included) of process group ``pgid``."""
    return [p.pid for p in processes() if p.pgrp == pgid]


def wait_until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


# -- what is said -------------------------------------------------------------------------------


def assert_harmless(text: str) -> None:
    """An error text a terminal and a task status can take: short, no control character (so
    one line, no escape sequence), and nothing of /etc/passwd."""
    assert len(text) <= MAX_ERROR_CHARS, f"{len(text)} characters: {text[:200]!r}..."
    found = CONTROL.search(text)
    assert found is None, f"control character {found[0]!r} in {text[:300]!r}"
    assert "root:" not in text, text
    for line in PASSWD_LINES:
        assert line not in text, f"a line of {PASSWD} in {text!r}"


def assert_one_harmless_line(stderr: str) -> str:
    """The CLI's stderr is exactly one harmless line; that line."""
    assert stderr.endswith("\n"), f"not one line: {stderr[:500]!r}"
    assert stderr.count("\n") == 1, f"not one line: {stderr[:500]!r}"
    assert "Traceback" not in stderr
    line = stderr[:-1]
    assert_harmless(line)
    return line


# -- fetching -----------------------------------------------------------------------------------


async def fetch_error(
    uri: str,
    directory: Path,
    *,
    flags: Flags = FAST,
    fetcher: Fetcher | None = None,
    output_file_name: str | None = None,
) -> FetchError | None:
    """Fetch through the library; the error it raised, or None. A fetch still running after
    :data:`FETCH_DEADLINE` fails the test."""
    fetcher = fetcher or create(flags)
    try:
        with anyio.fail_after(FETCH_DEADLINE):
            await fetcher.fetch(uri, directory, output_file_name=output_file_name)
    except FetchError as exc:
        return exc
    except TimeoutError:
        pytest.fail(f"the fetch of {uri} was still running after {FETCH_DEADLINE} s")
    return None


@attrs.frozen
class Run:
    """How one CLI run ended."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    pid: int
    peak_rss: int = 0  # bytes: the process's high-water mark as last seen


def start_cli(
    *args: str, cwd: Path = REPO_ROOT, env: Mapping[str, str] = {}, prefix: Sequence[str] = ()
) -> subprocess.Popen[str]:
    """``python -m mesos_uri.fetch ARGS`` in a process group of its own (so that a test can
    signal it as a terminal does, and find every process it left)."""
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "mesos_uri.fetch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        start_new_session=True,
    )


def _peak_rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found[1]) * 1024 if found else 0


def finish(process: subprocess.Popen[str], started: float, timeout: float = CLI_DEADLINE) -> Run:
    """Wait for a CLI run (watching its peak memory); one still running after ``timeout`` is
    killed with its whole group and fails the test."""
    peak = 0
    deadline = started + timeout
    while process.poll() is None:
        peak = max(peak, _peak_rss(process.pid))
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"the CLI was still running after {timeout} s: {process.args!r}")
        time.sleep(0.005)
    stdout, stderr = process.communicate()
    seconds = time.monotonic() - started
    return Run(process.returncode, stdout, stderr, seconds, process.pid, peak)


def cli(
    *args: str,
    cwd: Path = REPO_ROOT,
    env: Mapping[str, str] = {},
    prefix: Sequence[str] = (),
    timeout: float = CLI_DEADLINE,
) -> Run:
    started = time.monotonic()
    return finish(start_cli(*args, cwd=cwd, env=env, prefix=prefix), started, timeout)


def assert_group_gone(pgid: int) -> None:
    """No process of the CLI's group survives it (a killed curl may take a moment to go)."""
    wait_until(lambda: not group_members(pgid), f"the processes of group {pgid} to end", 3.0)


# -- images and servers -------------------------------------------------------------------------

# One layer: a blob downloaded on its own. Five: small blobs, which may go through one curl.
SHAPES: Final = ("one-layer", "five-small-layers")


def make_image(shape: str, repository: str = "lab/app") -> Image:
    if shape == "one-layer":
        return oci_image(repository, [os.urandom(64 * 1024)])
    return oci_image(repository, [os.urandom(4096 + n) for n in range(5)])


def first_layer(image: Image) -> str:
    """The digest of the image's first layer: the one the attack is played on."""
    return str(json.loads(image.manifest)["layers"][0]["digest"])


def docker_config(host: str, *, auth: str | None = None, identitytoken: str | None = None) -> str:
    entry: dict[str, str] = {}
    if auth is not None:
        entry["auth"] = base64.b64encode(auth.encode()).decode()
    if identitytoken is not None:
        entry["identitytoken"] = identitytoken
    return json.dumps({"auths": {host: entry}})


def challenge(realm: str, repository: str) -> Status:
    value = f'Bearer realm="{realm}",service="hostile",scope="repository:{repository}:pull"'
    return Status(401, [("WWW-Authenticate", value)])


def token_answer(value: str = "t0ken") -> Serve:
    body = json.dumps({"token": value, "expires_in": 300}).encode()
    return Serve(body=body, headers=[("Content-Type", "application/json")])


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


@pytest.fixture
def other() -> Iterator[FaultServer]:
    """A second HTTP server: another origin, that must hear from us only where allowed."""
    with FaultServer() as running:
        yield running


@pytest.fixture
def canary() -> Iterator[Canary]:
    with Canary() as listening:
        yield listening


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "out"


def hostile_urls(canary: Canary) -> dict[str, str]:
    """Where an attacker points a redirect or a URL: a local file, and another service on
    loopback through protocols curl speaks besides HTTP (gopher and dict deliver the bytes an
    attacker chooses, here a Redis command; ftp and telnet wait for a greeting)."""
    return {
        "file": f"file://{PASSWD}",
        "gopher": canary.url("gopher", "/_SET%20pwned%201%0D%0AQUIT"),
        "dict": canary.url("dict", "/SET:pwned:1"),
        "ftp": canary.url("ftp", "/pub/x"),
        "telnet": canary.url("telnet"),
    }


HOSTILE_SCHEMES: Final = ("file", "gopher", "dict", "ftp", "telnet")
# Every redirect status to a local file, and one of them to every other protocol.
HOSTILE_REDIRECTS: Final = (
    *((status, "file") for status in REDIRECTS),
    *((302, scheme) for scheme in HOSTILE_SCHEMES if scheme != "file"),
)


def assert_redirect_refused(error: FetchError | None, source: str, scheme: str) -> None:
    """The fetch failed because the redirect from ``source`` was refused, not for what following
    it brought: the check that holds where no canary can hear anything (a local file)."""
    assert error is not None, "a redirect to another protocol was accepted"
    assert isinstance(error, RedirectError), f"{type(error).__name__}: {error}"
    assert f"redirect from '{source}' to a '{scheme}:' URL" in str(error), str(error)


# -- redirects: no other protocol, no other service, no local file ------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "scheme"), HOSTILE_REDIRECTS)
async def test_blob_redirect_to_another_protocol_is_not_followed(
    server: FaultServer, canary: Canary, target: Path, scheme: str, status: int
) -> None:
    image = make_image("one-layer")
    server.serve(image)
    layer = first_layer(image)
    server.script(image.blob_path(layer), [Redirect(hostile_urls(canary)[scheme], status)])

    error = await fetch_error(image.uri(server.host), target)

    assert error is not None, "a blob redirected to another protocol was accepted"
    assert_redirect_refused(error, server.url(image.blob_path(layer)), scheme)
    assert (canary.connections, canary.received) == (0, b"")
    assert unverified(target) == []
    assert not (target / layer).exists()
    assert_harmless(str(error))


@pytest.mark.anyio
@pytest.mark.parametrize("scheme", HOSTILE_SCHEMES)
async def test_batched_small_blob_redirect_to_another_protocol_is_not_followed(
    server: FaultServer, canary: Canary, target: Path, scheme: str
) -> None:
    image = make_image("five-small-layers")
    server.serve(image)
    layer = first_layer(image)
    server.script(image.blob_path(layer), [Redirect(hostile_urls(canary)[scheme], 302)])

    error = await fetch_error(image.uri(server.host), target)

    assert error is not None, "a blob redirected to another protocol was accepted"
    assert_redirect_refused(error, server.url(image.blob_path(layer)), scheme)
    assert (canary.connections, canary.received) == (0, b"")
    assert unverified(target) == []
    assert not (target / layer).exists()
    assert_harmless(str(error))


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "scheme"), HOSTILE_REDIRECTS)
async def test_manifest_redirect_to_another_protocol_is_not_followed(
    server: FaultServer, canary: Canary, target: Path, scheme: str, status: int
) -> None:
    image = make_image("one-layer")
    server.serve(image)
    server.script(image.manifest_path(), [Redirect(hostile_urls(canary)[scheme], status)])

    error = await fetch_error(image.uri(server.host), target)

    assert error is not None, "a manifest redirected to another protocol was accepted"
    assert_redirect_refused(error, server.url(image.manifest_path()), scheme)
    assert (canary.connections, canary.received) == (0, b"")
    assert unverified(target) == []
    assert not target.exists() or os.listdir(target) == []
    assert_harmless(str(error))


@pytest.mark.anyio
@pytest.mark.parametrize("scheme", HOSTILE_SCHEMES)
async def test_http_uri_redirect_to_another_protocol_is_not_followed(
    other: FaultServer, canary: Canary, target: Path, scheme: str
) -> None:
    # The curl plugin: a redirect to file:///etc/passwd would otherwise become DIR/tool.tgz.
    other.route("/tool.tgz", respond(302, headers=[("Location", hostile_urls(canary)[scheme])]))

    error = await fetch_error(other.url("/tool.tgz"), target)

    assert error is not None, "an http:// URI redirected to another protocol was fetched"
    assert (canary.connections, canary.received) == (0, b"")
    assert not target.exists() or os.listdir(target) == []
    assert_harmless(str(error))


@pytest.mark.anyio
@pytest.mark.parametrize("scheme", ["file", "gopher", "dict", "ftp"])
async def test_foreign_layer_urls_of_another_protocol_are_never_opened(
    server: FaultServer, other: FaultServer, canary: Canary, target: Path, scheme: str
) -> None:
    # A layer the registry does not hold, with a hostile URL first and a good http one last:
    # only the http one may be used, and the layer arrives verified from it.
    foreign = os.urandom(2048)
    urls = [hostile_urls(canary)[scheme], other.url("/layers/foreign.tar")]
    other.route("/layers/foreign.tar", respond(200, foreign))
    image = oci_image("lab/foreign", [], descriptors=[descriptor(foreign, urls=urls)])
    server.serve(image)

    error = await fetch_error(image.uri(server.host), target)

    assert error is None, str(error)
    assert (canary.connections, canary.received) == (0, b"")
    assert (target / sha256_digest(foreign)).read_bytes() == foreign
    assert unverified(target) == []


@pytest.mark.anyio
async def test_foreign_layer_host_redirect_to_another_protocol_is_not_followed(
    server: FaultServer, other: FaultServer, canary: Canary, target: Path
) -> None:
    foreign = os.urandom(2048)
    gopher = hostile_urls(canary)["gopher"]
    other.route("/layers/foreign.tar", respond(302, headers=[("Location", gopher)]))
    urls = [other.url("/layers/foreign.tar")]
    image = oci_image("lab/foreign", [], descriptors=[descriptor(foreign, urls=urls)])
    server.serve(image)

    error = await fetch_error(image.uri(server.host), target)

    assert error is not None
    assert (canary.connections, canary.received) == (0, b"")
    assert unverified(target) == []
    assert_harmless(str(error))


# -- tokens: no redirect to another origin, no body sent twice ----------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("credential", "secret"),
    [
        # A password, sent as Basic auth to the token endpoint.
        ({"auth": f"{USER}:{PASSWORD}"}, PASSWORD),
        # A refresh token, POSTed: curl -L would re-send the POST, token and all, after a 307.
        ({"identitytoken": REFRESH_TOKEN}, REFRESH_TOKEN),
    ],
    ids=["password", "refresh-token"],
)
async def test_token_request_redirected_to_another_host_over_http_sends_it_nothing(
    server: FaultServer, other: FaultServer, target: Path, credential: dict[str, str], secret: str
) -> None:
    image = make_image("one-layer")
    server.serve(image)
    server.script(image.manifest_path(), [challenge(server.url("/token"), image.repository)])
    server.script("/token", [Redirect(other.url("/token", host="localhost"), 307)])
    other.script("/token", [token_answer()])
    config = docker_config(server.host, **credential)

    error = await fetch_error(
        image.uri(server.host), target, flags=attrs.evolve(FAST, docker_config=config)
    )

    assert error is not None
    assert other.requests == []
    assert secret not in str(error)
    assert_harmless(str(error))


@pytest.mark.registry
def test_two_private_repositories_through_one_fetcher_get_a_token_each_for_their_own_scope(
    real_registry: TokenRegistry, tmp_path: Path
) -> None:
    # A token cache keyed without the scope would send repository one's token to two, which
    # the registry refuses.
    registry = real_registry.registry
    images = {
        repo: push_image(registry, repo, "v1", [os.urandom(3000), os.urandom(5000)])
        for repo in ("private/one", "private/two")
    }
    host = f"{registry.host}:{registry.port}"
    fetcher = create(attrs.evolve(FAST, docker_config=docker_config(host, auth="alice:wonderland")))
    real_registry.token_server.reset_counts()

    async def both() -> list[FetchError | None]:
        return [
            await fetch_error(registry.docker_uri(repo, "v1"), tmp_path / repo, fetcher=fetcher)
            for repo in images
        ]

    assert anyio.run(both) == [None, None]
    for repo, image in images.items():
        assert {p.name for p in (tmp_path / repo).iterdir()} == {"manifest", *image.blobs}
        assert unverified(tmp_path / repo) == []
    scopes = [request.repositories for request in real_registry.token_server.requests]
    assert frozenset({"private/one"}) in scopes
    assert frozenset({"private/two"}) in scopes


@pytest.fixture(scope="module")
def real_registry() -> Iterator[TokenRegistry]:
    """A real docker-registry with token auth: anonymous pulls, but ``private/*`` only for its
    users (``alice``)."""
    registry = start_registry(auth="token", users=USERS, private=PRIVATE)
    try:
        assert registry.token_server is not None
        yield TokenRegistry(registry=registry, token_server=registry.token_server)
    finally:
        registry.stop()


# -- credentials stay with the registry's origin ------------------------------------------------


ORIGINS: Final = ("other-host", "other-port", "other-scheme")


@pytest.fixture
def registry_and_elsewhere(
    request: pytest.FixtureRequest, other: FaultServer, tmp_path: Path
) -> Iterator[tuple[FaultServer, FaultServer, str, tuple[str, ...]]]:
    """(registry, where its redirect goes, the redirect's origin, CLI flags) for an origin that
    differs from the registry's in the host name only, in the port only or in the scheme only
    (an insecure https registry that may send its client to plain http on its own port)."""
    origin: str = request.param
    if origin == "other-scheme":
        context, _ = tls_context(tmp_path / "tls")
        with FaultServer(tls=context, plain=True) as mixed:
            yield mixed, mixed, mixed.url("", scheme="http"), ("--insecure_registry", mixed.host)
        return
    with FaultServer() as registry:
        if origin == "other-host":
            yield registry, registry, registry.url("", host="localhost"), ()
        else:
            yield registry, other, other.url(""), ()


@pytest.mark.parametrize("registry_and_elsewhere", ORIGINS, indirect=True)
@pytest.mark.parametrize("what", ["blob", "manifest"])
def test_redirect_to_another_origin_carries_no_authorization(
    registry_and_elsewhere: tuple[FaultServer, FaultServer, str, tuple[str, ...]],
    target: Path,
    what: str,
) -> None:
    registry, elsewhere, origin, flags = registry_and_elsewhere
    image = make_image("one-layer")
    registry.serve(image)
    path = image.blob_path(first_layer(image)) if what == "blob" else image.manifest_path()
    stored = f"/storage{path}"
    registry.script(path, [Redirect(origin + stored, 307)])
    if what == "blob":
        elsewhere.script(stored, [Serve(body=image.blobs[first_layer(image)])])
    else:
        headers = [("Content-Type", OCI_MANIFEST)]
        elsewhere.script(stored, [Serve(body=image.manifest, headers=headers)])
    config = docker_config(registry.host, auth=f"{USER}:{PASSWORD}")
    transport = registry.scheme

    run = cli(
        *CLI_FAST,
        *flags,
        f"--docker_config={config}",
        image.uri(registry.host, transport=transport),
        str(target),
    )

    assert run.returncode == 0, run.stderr
    # The registry got the credentials; the other origin got the request, and none of them.
    asked = registry.requests_for(path)
    assert asked
    assert all(r.header("Authorization") for r in asked)
    followed = elsewhere.requests_for(stored)
    assert followed, "the redirect was not followed"
    assert [r.header("Authorization") for r in followed] == [None] * len(followed)
    if origin.startswith("http://") and registry.tls is not None:
        assert not any(r.tls for r in followed)
    assert unverified(target) == []


@pytest.mark.parametrize("what", ["blob", "manifest"])
def test_https_registry_redirect_to_plain_http_is_refused(
    other: FaultServer, tmp_path: Path, what: str
) -> None:
    context, ca_bundle = tls_context(tmp_path / "tls")
    target = tmp_path / "out"
    with FaultServer(tls=context) as registry:
        image = make_image("one-layer")
        registry.serve(image)
        path = image.blob_path(first_layer(image)) if what == "blob" else image.manifest_path()
        registry.script(path, [Redirect(other.url(f"/storage{path}"), 302)])
        other.script(f"/storage{path}", [Serve(body=b"downgraded")])

        run = cli(
            *CLI_FAST,
            f"--cacert={ca_bundle}",
            image.uri(registry.host, transport="https"),
            str(target),
        )

    assert run.returncode == 1
    assert_one_harmless_line(run.stderr)
    assert other.requests == []
    assert unverified(target) == []


# -- every byte bounded -------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("framing", ["chunked", "close"])
@pytest.mark.parametrize("shape", SHAPES)
async def test_blob_with_an_endless_body_never_grows_dir_past_the_declared_sizes(
    server: FaultServer, target: Path, shape: str, framing: str
) -> None:
    image = make_image(shape)
    server.serve(image)
    layer = first_layer(image)
    server.script(image.blob_path(layer), [Endless("chunked" if framing == "chunked" else "close")])

    with DirectoryWatch(target) as watch:
        error = await fetch_error(image.uri(server.host), target)

    assert error is not None
    # Each blob may be one byte over its size before the fetch can tell.
    assert watch.peak <= image.declared + len(image.blobs)
    assert unverified(target) == []
    assert_harmless(str(error))


@pytest.mark.anyio
async def test_batched_small_blob_longer_than_declared_stops_at_the_declared_size(
    server: FaultServer, target: Path
) -> None:
    image = make_image("five-small-layers")
    server.serve(image)
    layer = first_layer(image)
    overlong = len(image.blobs[layer]) + 32 * 1024 * 1024
    server.script(image.blob_path(layer), [Oversized(overlong)])

    with DirectoryWatch(target) as watch:
        error = await fetch_error(image.uri(server.host), target)

    assert error is not None
    assert watch.peak <= image.declared + len(image.blobs)
    assert not (target / layer).exists()
    assert unverified(target) == []
    assert_harmless(str(error))


@pytest.mark.anyio
@pytest.mark.parametrize("framing", ["chunked", "close"])
@pytest.mark.parametrize("what", ["manifest", "token"])
async def test_manifest_or_token_with_an_endless_body_is_cut_off(
    server: FaultServer, target: Path, what: str, framing: str
) -> None:
    image = make_image("one-layer")
    server.serve(image)
    # 1 GiB on offer: only the client's own limit can keep what it reads far below that.
    endless = Endless("chunked" if framing == "chunked" else "close", limit=GIB)
    if what == "manifest":
        path = image.manifest_path()
        server.script(path, [endless])
    else:
        path = "/token"
        server.script(image.manifest_path(), [challenge(server.url(path), image.repository)])
        server.script(path, [endless])

    error = await fetch_error(image.uri(server.host), target)

    assert error is not None
    # Cut off for its size, not for a stall or a dropped connection.
    too_large = r"is larger than the \d+(-byte| MiB) limit"
    if what == "manifest":
        assert isinstance(error, ManifestError), f"{type(error).__name__}: {error}"
        too_large = rf"Manifest from '{re.escape(server.url(path))}' {too_large}"
    else:
        assert isinstance(error, ResponseTooLargeError), f"{type(error).__name__}: {error}"
        too_large = rf"Response from '{re.escape(server.url(path))}[^']*' {too_large}"
    assert re.search(too_large, str(error)), str(error)
    assert server.requests_for(path), f"{path} was never asked for"
    assert server.sent_for(path) < SOCKET_SLACK
    assert unverified(target) == []
    assert not (target / "manifest").exists()
    assert_harmless(str(error))


# --max_blob_size in these tests: a docker-blob URI names no size, so this is all that bounds it.
MAX_BLOB_SIZE: Final = 100_000
# What the registry sends for a blob of undeclared size past --max_blob_size: an endless body in
# either framing (nothing but the limit stops it), or a real blob one byte too large, honestly
# framed (its Content-Length already says so).
PAST_MAX_BLOB_SIZE: Final = ("endless-chunked", "endless-close", "one-byte-over")


def blob_uri(image: Image, host: str, digest: str) -> str:
    """``docker-blob://HOST/REPO?DIGEST#http``: one blob, of a size nobody declares."""
    return f"docker-blob://{host}/{image.repository}?{digest}#http"


def past_max_blob_size(server: FaultServer, answer: str) -> tuple[Image, str]:
    """An image whose first layer's answer is ``answer`` (of :data:`PAST_MAX_BLOB_SIZE`); the
    image and that layer's digest."""
    size = MAX_BLOB_SIZE + 1 if answer == "one-byte-over" else MAX_BLOB_SIZE
    image = oci_image("lab/app", [os.urandom(size)])
    server.serve(image)
    layer = first_layer(image)
    if answer != "one-byte-over":
        endless = Endless("chunked" if answer == "endless-chunked" else "close", limit=GIB)
        server.script(image.blob_path(layer), [endless])
    return image, layer


@pytest.mark.anyio
@pytest.mark.parametrize("answer", PAST_MAX_BLOB_SIZE)
async def test_blob_of_undeclared_size_is_stopped_at_max_blob_size(
    server: FaultServer, target: Path, answer: str
) -> None:
    image, layer = past_max_blob_size(server, answer)
    flags = attrs.evolve(FAST, max_blob_size=MAX_BLOB_SIZE)

    with DirectoryWatch(target) as watch:
        error = await fetch_error(blob_uri(image, server.host, layer), target, flags=flags)

    assert isinstance(error, BlobSizeError), f"{type(error).__name__}: {error}"
    assert f"blob '{layer}' is larger than --max_blob_size={MAX_BLOB_SIZE}" in str(error)
    # At most one byte past the limit before the fetch can tell, and none of it kept.
    assert watch.peak <= MAX_BLOB_SIZE + 1, f"DIR grew to {watch.peak} bytes"
    assert server.sent_for(image.blob_path(layer)) < SOCKET_SLACK
    assert not (target / layer).exists()
    assert temp_files(target) == []
    assert unverified(target) == []
    assert_harmless(str(error))


def test_max_blob_size_on_the_command_line_stops_an_endless_blob(
    server: FaultServer, target: Path
) -> None:
    image, layer = past_max_blob_size(server, "endless-chunked")

    started = time.monotonic()
    process = start_cli(
        *CLI_FAST,
        f"--max_blob_size={MAX_BLOB_SIZE}",
        blob_uri(image, server.host, layer),
        str(target),
    )
    with DirectoryWatch(target) as watch:
        run = finish(process, started)

    assert run.returncode == 1, run.stderr
    line = assert_one_harmless_line(run.stderr)
    assert f"blob '{layer}' is larger than --max_blob_size={MAX_BLOB_SIZE}" in line, line
    assert watch.peak <= MAX_BLOB_SIZE + 1, f"DIR grew to {watch.peak} bytes"
    assert not (target / layer).exists()
    assert temp_files(target) == []
    assert unverified(target) == []


@pytest.mark.anyio
@pytest.mark.parametrize("size", [0, MAX_BLOB_SIZE - 1, MAX_BLOB_SIZE])
async def test_blob_of_undeclared_size_within_max_blob_size_is_fetched(
    server: FaultServer, target: Path, size: int
) -> None:
    blob = os.urandom(size)
    image = oci_image("lab/app", [blob])
    server.serve(image)
    layer = first_layer(image)
    flags = attrs.evolve(FAST, max_blob_size=MAX_BLOB_SIZE)

    error = await fetch_error(blob_uri(image, server.host, layer), target, flags=flags)

    assert error is None, str(error)
    assert os.listdir(target) == [layer]
    assert (target / layer).read_bytes() == blob


HUGE_ANSWERS: Final = (
    ("blob", 404),
    ("blob", 500),
    ("batched-blob", 500),
    ("manifest", 404),
    ("token", 500),
)


@pytest.mark.parametrize(("where", "status"), HUGE_ANSWERS)
def test_error_answer_with_a_1_gib_body_is_neither_stored_nor_held_in_memory(
    server: FaultServer, target: Path, where: str, status: int
) -> None:
    image = make_image("five-small-layers" if where == "batched-blob" else "one-layer")
    server.serve(image)
    huge = Huge(GIB, status=status)
    if where in ("blob", "batched-blob"):
        path = image.blob_path(first_layer(image))
    elif where == "manifest":
        path = image.manifest_path()
    else:
        path = "/token"
        server.script(image.manifest_path(), [challenge(server.url(path), image.repository)])
    server.script(path, [huge])

    started = time.monotonic()
    process = start_cli(*CLI_FAST, image.uri(server.host), str(target))
    with DirectoryWatch(target) as watch:
        run = finish(process, started)

    assert run.returncode == 1
    assert_one_harmless_line(run.stderr)
    assert run.peak_rss < MAX_CLI_RSS, f"the CLI grew to {run.peak_rss >> 20} MiB"
    assert watch.peak <= image.declared + len(image.blobs)
    assert server.sent_for(path) < SOCKET_SLACK, "the whole error body was read"
    assert unverified(target) == []


# -- nothing hangs by default -------------------------------------------------------------------


def _help_of(flag: str) -> str:
    """The help text of ``flag`` in ``--help``, unwrapped."""
    done = subprocess.run(
        [sys.executable, "-m", "mesos_uri.fetch", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=CLI_DEADLINE,
        check=True,
    )
    found = re.search(rf"^  {flag} \S+\s+(.*?)(?=^  -|\Z)", done.stdout, re.MULTILINE | re.DOTALL)
    assert found is not None, f"{flag} is not in --help"
    return " ".join(found[1].split())


@pytest.mark.parametrize("flag", ["--docker_stall_timeout", "--curl_stall_timeout"])
def test_help_documents_a_one_minute_stall_timeout_by_default(flag: str) -> None:
    text = _help_of(flag)
    assert re.search(r"\(default:? 1mins\b", text), text


def _recording_curl(directory: Path) -> dict[str, str]:
    """The environment that runs curl through a script keeping a copy of each config curl
    reads on stdin (where the URL, headers and options go, never in argv) in ``directory``."""
    script = directory / "curl"
    script.write_text(
        f'#!/bin/sh\nconfig=$(mktemp "{directory}/config.XXXXXX")\ntee "$config" | exec curl "$@"\n'
    )
    script.chmod(0o755)
    return {"MESOS_URI_CURL": str(script)}


def _stall_seconds(config: str) -> list[str]:
    """The stall timeouts a curl config sets, one per request or transfer in it."""
    return re.findall(r"^speed-time = (\S+)$", config, re.MULTILINE)


@pytest.mark.parametrize("what", ["docker", "http"])
def test_without_stall_flags_every_curl_gets_a_one_minute_stall_timeout(
    server: FaultServer, target: Path, what: str, tmp_path: Path
) -> None:
    image = make_image("one-layer")
    server.serve(image)
    if what == "docker":
        server.script(image.blob_path(first_layer(image)), [Stall(FETCH_DEADLINE, after=10)])
        uri = image.uri(server.host)
    else:
        server.route("/tool.tgz", stall(head=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1"))
        uri = server.url("/tool.tgz")
    stalled_path = image.blob_path(first_layer(image)) if what == "docker" else "/tool.tgz"
    configs = tmp_path / "configs"
    configs.mkdir()
    process = start_cli("--retries=0", uri, str(target), env=_recording_curl(configs))
    try:
        wait_until(lambda: server.requests_for(stalled_path), "the request that stalls")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    texts = [path.read_text() for path in sorted(configs.glob("config.*"))]
    # The manifest's request and the stalled blob's batch (docker), or the one download (http).
    assert len(texts) == (2 if what == "docker" else 1), texts
    for text in texts:
        urls = re.findall(r"^url = ", text, re.MULTILINE)
        assert _stall_seconds(text) == ["60"] * len(urls), text


@pytest.mark.parametrize("timeout", ["1secs", "500ms"])
@pytest.mark.parametrize("what", ["docker", "http"])
def test_stalled_body_ends_the_fetch_with_one_line_within_the_stall_timeout(
    server: FaultServer, target: Path, what: str, timeout: str
) -> None:
    # 500ms must act as a second, not as curl's "-y 0", which turns the check off.
    image = make_image("one-layer")
    server.serve(image)
    if what == "docker":
        server.script(image.blob_path(first_layer(image)), [Stall(60, after=0)])
        flags, uri = (f"--docker_stall_timeout={timeout}",), image.uri(server.host)
    else:
        server.route("/tool.tgz", stall(head=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"))
        flags, uri = (f"--curl_stall_timeout={timeout}",), server.url("/tool.tgz")

    run = cli(*flags, "--retries=1", uri, str(target))

    assert run.returncode == 1
    assert run.seconds < 2 * (1 + STALL_SLACK) + START_SLACK, f"{run.seconds:.1f} s for 2 attempts"
    assert unverified(target) == []
    assert temp_files(target) == []
    assert_one_harmless_line(run.stderr)


@pytest.mark.parametrize("scheme", ["docker", "http", "ftp"])
def test_server_that_accepts_and_never_answers_ends_the_fetch_with_one_line(
    canary: Canary, target: Path, scheme: str
) -> None:
    # An FTP server that never sends its greeting included.
    uri = {
        "docker": f"docker://{canary.host}/lab/app?latest#http",
        "http": canary.url("http", "/tool.tgz"),
        "ftp": canary.url("ftp", "/pub/tool.tgz"),
    }[scheme]

    run = cli(*CLI_FAST, uri, str(target))

    assert run.returncode == 1
    assert_one_harmless_line(run.stderr)
    assert run.seconds < 10, f"{run.seconds:.1f} s"


@pytest.mark.parametrize("timeout", ["1secs", "1ns"])
@pytest.mark.parametrize("scheme", ["docker", "http", "ftp"])
def test_connect_timeout_reaches_every_plugin(target: Path, scheme: str, timeout: str) -> None:
    # 1ns must not become curl's "--connect-timeout 0", which means its default of 300 s.
    with Blackhole() as hole:
        uri = {
            "docker": f"docker://{hole.host}/lab/app?latest#http",
            "http": f"http://{hole.host}/tool.tgz",
            "ftp": f"ftp://{hole.host}/pub/tool.tgz",
        }[scheme]

        run = cli(f"--connect_timeout={timeout}", "--retries=0", uri, str(target))

    assert run.returncode == 1, run.stderr
    line = assert_one_harmless_line(run.stderr)
    # curl's own verdict, exit 28: the connect timeout it was given ran out.
    assert "curl: (28) " in line, line
    assert run.seconds < 10, f"{run.seconds:.1f} s"


# -- signals: the first one stops the fetch, later ones cannot stop its cleanup -----------------


def stalled(server: FaultServer, shape: str) -> Image:
    """An image whose blobs all send half their bytes, then stall: temporary files hold bytes
    (past any stdio buffer of curl's) and curls run until someone stops the fetch."""
    count = 1 if shape == "one-layer" else 5
    image = oci_image("lab/stalled", [os.urandom(64 * 1024 + n) for n in range(count)])
    server.serve(image)
    for digest, blob in image.blobs.items():
        server.script(image.blob_path(digest), [Stall(60, after=len(blob) // 2)])
    return image


def _fetching(process: subprocess.Popen[str], target: Path) -> bool:
    """Whether the CLI is downloading: a curl of its own runs, temporary files are there."""
    return bool(curl_pids([process.pid])) and bool(temp_files(target))


# Signals sent to a process with threads reach it in an order that is certain only so far apart:
# a second signal of another kind waits this long, so that which one came first is not in doubt.
SIGNAL_ORDER: Final = 0.02
SIGNAL_PAIRS: Final = (
    (signal.SIGINT, signal.SIGINT),
    (signal.SIGTERM, signal.SIGTERM),
    (signal.SIGTERM, signal.SIGINT),
)


@pytest.mark.parametrize("to", ["process", "group"])
@pytest.mark.parametrize(("first", "then"), SIGNAL_PAIRS, ids=lambda s: signal.Signals(s).name)
def test_second_signal_during_cleanup_is_absorbed(
    server: FaultServer, target: Path, first: int, then: int, to: str
) -> None:
    # "group" is a terminal's Ctrl-C, which reaches curl as well; "process" is timeout(1) or a
    # supervisor, which signal the CLI alone, often more than once.
    image = stalled(server, "five-small-layers")
    started = time.monotonic()
    process = start_cli(*CLI_FAST, image.uri(server.host), str(target))
    send = os.killpg if to == "group" else os.kill
    try:
        wait_until(lambda: _fetching(process, target), "the download to be under way")
        send(process.pid, first)
        if then != first:
            time.sleep(SIGNAL_ORDER)
        for _ in range(20):  # while the cleanup runs: at once, then for about 50 ms
            send(process.pid, then)
            time.sleep(0.0025)
    except ProcessLookupError:
        pass  # gone already: what it left is checked below
    run = finish(process, started)

    assert run.returncode == 128 + first, run.stderr
    assert temp_files(target) == []
    assert unverified(target) == []
    assert_group_gone(run.pid)
    line = assert_one_harmless_line(run.stderr)
    assert f"interrupted by {signal.Signals(first).name}" in line


def _handles_sigterm(pid: int) -> bool:
    """Whether the process has a handler of its own for SIGTERM (Python has none by default):
    the CLI's signal handling is in place."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    found = re.search(r"^SigCgt:\s+([0-9a-f]+)", status, re.MULTILINE)
    return found is not None and bool(int(found[1], 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.02, 0.05, 0.1, 0.2])
def test_double_ctrl_c_at_any_moment_from_start_up_on_exits_130_without_a_traceback(
    server: FaultServer, target: Path, delay: float
) -> None:
    image = stalled(server, "five-small-layers")
    started = time.monotonic()
    process = start_cli(*CLI_FAST, image.uri(server.host), str(target))
    try:
        wait_until(lambda: _handles_sigterm(process.pid), "the CLI's signal handlers")
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGINT)
        os.killpg(process.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    run = finish(process, started)

    assert run.returncode == 130, run.stderr
    assert unverified(target) == []
    assert_group_gone(run.pid)
    line = assert_one_harmless_line(run.stderr)
    assert "interrupted by SIGINT" in line


def test_signals_while_a_refresh_token_is_posted_leave_no_secret_file(
    server: FaultServer, tmp_path: Path
) -> None:
    # The refresh token goes to curl in a file of the temporary directory: it must not survive.
    image = make_image("one-layer")
    server.serve(image)
    server.script(image.manifest_path(), [challenge(server.url("/token"), image.repository)])
    server.route("/token", stall())
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    target = tmp_path / "out"
    config = docker_config(server.host, identitytoken=REFRESH_TOKEN)
    started = time.monotonic()
    process = start_cli(
        *CLI_FAST,
        f"--docker_config={config}",
        image.uri(server.host),
        str(target),
        env={"TMPDIR": str(temporary)},
    )
    try:
        wait_until(lambda: server.requests_for("/token"), "the refresh-token POST")
        assert list(temporary.iterdir()) != []  # the token file this test is about
        os.kill(process.pid, signal.SIGTERM)
        os.kill(process.pid, signal.SIGTERM)
        time.sleep(SIGNAL_ORDER)
        os.kill(process.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    run = finish(process, started)

    assert run.returncode == 128 + signal.SIGTERM, run.stderr
    assert list(temporary.iterdir()) == []
    assert_group_gone(run.pid)
    assert_one_harmless_line(run.stderr)


# -- cancellation -------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("shape", SHAPES)
async def test_cancelled_fetch_leaves_no_curl_within_3_seconds_and_no_temp_file(
    server: FaultServer, target: Path, shape: str
) -> None:
    image = stalled(server, shape)
    me = os.getpid()
    seen: list[bool] = []

    async def watch() -> None:
        while not seen:
            if curl_pids([me]) and temp_files(target):
                seen.append(True)
            await anyio.sleep(0.005)

    with anyio.move_on_after(1.0) as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            await create(FAST).fetch(image.uri(server.host), target)

    assert scope.cancelled_caught
    assert seen, "the download never got under way"
    wait_until(lambda: not curl_pids([me]), "curl to end after the cancellation", 3.0)
    assert temp_files(target) == []
    assert unverified(target) == []


# -- no temporary file survives a failure -------------------------------------------------------


@pytest.mark.registry
@pytest.mark.anyio
async def test_failed_image_of_40_small_layers_leaves_only_verified_files(
    real_registry: TokenRegistry, target: Path
) -> None:
    # A real registry serves what its disk holds: one byte of one layer is changed there.
    registry = real_registry.registry
    layers = [os.urandom(1000 + n) for n in range(40)]
    push_image(registry, "lab/forty", "v1", layers)
    data = registry.blob_data_path(sha256_digest(layers[7]))
    stored = data.read_bytes()
    data.write_bytes(stored[:-1] + bytes([stored[-1] ^ 0xFF]))

    error = await fetch_error(registry.docker_uri("lab/forty", "v1"), target)

    assert error is not None
    assert temp_files(target) == []
    assert unverified(target) == []
    assert_harmless(str(error))


@pytest.mark.anyio
async def test_layer_digest_of_an_unknown_algorithm_leaves_no_temp_file(
    server: FaultServer, target: Path
) -> None:
    layer = os.urandom(100)
    md5 = "md5:" + hashlib.md5(layer).hexdigest()
    image = oci_image("lab/md5", [], descriptors=[descriptor(layer, digest=md5)])
    server.serve(image)

    error = await fetch_error(image.uri(server.host), target)

    assert error is not None
    assert temp_files(target) == []
    assert unverified(target) == []
    assert_harmless(str(error))


def test_write_failure_mid_image_leaves_only_verified_files(
    server: FaultServer, target: Path
) -> None:
    # RLIMIT_FSIZE stands in for a full disk: no file of the CLI (or of its curls) may grow past
    # 256 KiB, so the 1 MiB layer fails to be written while the small ones fit.
    image = oci_image(
        "lab/full", [os.urandom(1024 * 1024), *(os.urandom(999 + n) for n in range(4))]
    )
    server.serve(image)
    limit = 256 * 1024
    setlimit = (
        "import os, resource, sys;"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}));"
        "os.execv(sys.argv[1], sys.argv[1:])"
    )

    run = cli(
        *CLI_FAST, image.uri(server.host), str(target), prefix=(sys.executable, "-c", setlimit)
    )

    assert run.returncode == 1
    assert_one_harmless_line(run.stderr)
    assert temp_files(target) == []
    assert unverified(target) == []
    assert_group_gone(run.pid)


# -- error texts ----------------------------------------------------------------------------------


def _hostile_error(server: FaultServer, image: Image, carrier: str) -> None:
    """Script the manifest to fail with ``HOSTILE_MESSAGE`` in ``carrier``: a field of the
    registry's JSON error, or a header line (which cannot hold CR, LF or NUL: curl refuses them
    there, so those stay out of it)."""
    path = image.manifest_path()
    in_header = re.sub(rb'[\r\n\0"]', b"", HOSTILE_MESSAGE.encode("utf-8"))
    if carrier == "json-message":
        server.script(path, [Status(404, body=error_body("MANIFEST_UNKNOWN", HOSTILE_MESSAGE))])
    elif carrier == "json-code":
        server.script(path, [Status(404, body=error_body(HOSTILE_MESSAGE, "unknown"))])
    elif carrier == "reason-phrase":
        head = b"HTTP/1.1 404 " + in_header + b"\r\nContent-Length: 0\r\n\r\n"
        server.script(path, [Raw(head)])
    else:
        realm = b'Bearer realm="' + in_header + b'",service="s",scope="x"'
        head = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: " + realm
        server.script(path, [Raw(head + b"\r\nContent-Length: 0\r\n\r\n")])


CARRIERS: Final = ("json-message", "json-code", "reason-phrase", "challenge")


@pytest.mark.anyio
@pytest.mark.parametrize("carrier", CARRIERS)
async def test_registry_error_text_in_a_library_error_is_short_and_printable(
    server: FaultServer, target: Path, carrier: str
) -> None:
    image = make_image("one-layer")
    server.serve(image)
    _hostile_error(server, image, carrier)

    error = await fetch_error(image.uri(server.host), target)

    assert error is not None
    assert_harmless(str(error))


@pytest.mark.parametrize("carrier", CARRIERS)
def test_registry_error_text_reaches_the_terminal_as_one_short_printable_line(
    server: FaultServer, target: Path, carrier: str
) -> None:
    image = make_image("one-layer")
    server.serve(image)
    _hostile_error(server, image, carrier)

    run = cli(*CLI_FAST, image.uri(server.host), str(target))

    assert run.returncode == 1
    line = assert_one_harmless_line(run.stderr)
    assert line.startswith(f"Failed to fetch '{image.uri(server.host)}'")


# -- passwords ----------------------------------------------------------------------------------


FAILURES: Final = ("not-found", "stall", "refused")


def _with_password(uri: str) -> str:
    scheme, _, rest = uri.partition("://")
    return f"{scheme}://{USER}:{PASSWORD}@{rest}"


@pytest.mark.parametrize(
    ("outcome", "flags"),
    [
        ("fetched", ("-v",)),
        ("fetched", ("-vv",)),
        ("fetched", ("--json",)),
        ("failed", ("-vv",)),
    ],
)
@pytest.mark.parametrize("scheme", ["docker", "http"])
def test_uri_password_is_never_printed(
    server: FaultServer, target: Path, scheme: str, outcome: str, flags: tuple[str, ...]
) -> None:
    image = make_image("one-layer")
    server.serve(image)
    server.route("/tool.tgz", respond(200, b"tool"))
    if outcome == "failed":
        server.script(image.manifest_path(), [Status(404)])
        server.route("/tool.tgz", respond(404, b"gone"))
    uri = image.uri(server.host) if scheme == "docker" else server.url("/tool.tgz")

    run = cli(*CLI_FAST, *flags, _with_password(uri), str(target))

    assert run.returncode == (0 if outcome == "fetched" else 1), run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    if "--json" in flags:
        assert json.loads(run.stdout)["uri"] == _with_password(uri).replace(PASSWORD, "***")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("scheme", "failure"),
    [
        *((scheme, failure) for scheme in ("docker", "http") for failure in FAILURES),
        ("ftp", "refused"),
    ],
)
async def test_uri_password_is_in_no_plugin_error(
    server: FaultServer, target: Path, scheme: str, failure: str
) -> None:
    image = make_image("one-layer")
    server.serve(image)
    manifest, tool = image.manifest_path(), "/tool.tgz"
    if failure == "not-found":
        server.script(manifest, [Status(404)])
        server.route(tool, respond(404, b"gone"))
    elif failure == "stall":
        server.script(manifest, [Stall(60, after=None)])
        server.route(tool, stall())
    uri = {
        "docker": image.uri(server.host),
        "http": server.url(tool),
        "ftp": f"ftp://{server.host}/pub/tool.tgz",
    }[scheme]
    if failure == "refused":
        with Blackhole() as hole:
            pass  # closed: nothing listens on its port any more
        uri = uri.replace(server.host, hole.host)

    error = await fetch_error(_with_password(uri), target)

    assert error is not None
    assert PASSWORD not in str(error)
    assert_harmless(str(error))


# -- untrusted names and odd input ----------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("shape", SHAPES)
async def test_directory_with_a_newline_gets_nothing_written_outside_it(
    server: FaultServer, tmp_path: Path, shape: str
) -> None:
    # The line after the newline reads as a curl option that names a file outside DIR.
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "in" / f"x\noutput = {outside}" / "y"
    image = make_image(shape)
    server.serve(image)

    error = await fetch_error(image.uri(server.host), target)

    assert files_outside(tmp_path, target) == []
    if error is None:
        assert {p.name for p in target.iterdir()} == {"manifest", *image.blobs}
    else:
        assert_harmless(str(error))
    assert unverified(target) == []


def test_empty_directory_argument_is_a_usage_error(server: FaultServer, tmp_path: Path) -> None:
    image = make_image("one-layer")
    server.serve(image)
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    run = cli(*CLI_FAST, image.uri(server.host), "", cwd=cwd)

    assert run.returncode == 2
    assert_one_harmless_line(run.stderr)
    assert os.listdir(cwd) == []
    assert server.requests == []


@pytest.mark.anyio
async def test_output_file_name_with_a_nul_is_a_one_line_error(
    server: FaultServer, target: Path
) -> None:
    server.route("/tool.tgz", respond(200, b"tool"))

    error = await fetch_error(server.url("/tool.tgz"), target, output_file_name="to\0ol.tgz")

    assert error is not None
    assert temp_files(target) == []
    assert_harmless(str(error))


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "missing"])
def test_file_uri_ending_in_dotdot_is_a_one_line_error(tmp_path: Path, exists: bool) -> None:
    # Its basename is "..": the copy cannot be named after it. (The source is a small directory
    # of this test: never a real one, which cp -a would copy whole.)
    source = tmp_path / "src"
    if exists:
        (source / "x").mkdir(parents=True)
        (source / "file").write_bytes(b"data")
    target = tmp_path / "out"

    run = cli(f"file://{source}/x/..", str(target))

    assert run.returncode in (1, 2)
    assert_one_harmless_line(run.stderr)
    assert files_outside(tmp_path, target) == ([str(source / "file")] if exists else [])
    assert temp_files(target) == []
    assert not target.exists() or os.listdir(target) == []


# The time from the manifest's arrival to the first blob request: parsing 25,000 descriptors and
# planning their fetch takes a fraction of a second when linear, about 50 s when quadratic.
PLANNING_BUDGET: Final = 2.0


def test_manifest_of_25000_layers_is_planned_within_the_planning_budget(
    server: FaultServer, target: Path
) -> None:
    descriptors = [descriptor(n.to_bytes(4, "big")) for n in range(25_000)]
    image = oci_image("lab/wide", [], descriptors=descriptors)  # the registry holds no blob
    server.serve(image)

    process = start_cli(*CLI_FAST, image.uri(server.host), str(target))
    try:
        wait_until(
            lambda: any("/blobs/" in r.path for r in server.requests),
            "the first blob request",
            timeout=PLANNING_BUDGET + 10,
        )
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    (manifest,) = [r for r in server.requests if "/manifests/" in r.path]
    first_blob = next(r for r in server.requests if "/blobs/" in r.path)
    assert first_blob.at - manifest.at < PLANNING_BUDGET, (
        f"{first_blob.at - manifest.at:.1f} s from the manifest to the first blob request"
    )
