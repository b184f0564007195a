"""TLS and proxies end to end: CA bundles, Docker's certs.d, mutual TLS, insecure registries, and a
real forward proxy (Debian's ``tinyproxy``) in front of the registries.

No test here relies on ``CURL_CA_BUNDLE``: trust comes from the flags, as on a node.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import PushedImage, Registry

from .conftest import Pusher, start_registry
from .helpers import assert_image, run_cli

# What curl says when it cannot verify a server's certificate (curl exit 60).
CERTIFICATE_PROBLEM = "curl: (60) SSL certificate problem"
TINYPROXY = "tinyproxy"
TINYPROXY_HINT = "tinyproxy is not installed: apt-get install -y tinyproxy"
# How long a started proxy gets to listen, and a log line to appear.
READY_TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def _no_ambient_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust must come from the flags under test, not from the environment of the test run."""
    for name in ("CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_HOME"):
        monkeypatch.delenv(name, raising=False)


def _hostport(registry: Registry) -> str:
    return f"{registry.host}:{registry.port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ca(registry: Registry) -> Path:
    assert registry.ca_bundle is not None
    return registry.ca_bundle


@pytest.fixture
def tls_image(tls_registry: Registry, pushed: Pusher) -> PushedImage:
    return pushed(tls_registry, "lab/tls", "v1", layers=2)


def _assert_fetched(done: subprocess.CompletedProcess[str], out: Path, image: PushedImage) -> None:
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert_image(out, image)


def _assert_refused_certificate(done: subprocess.CompletedProcess[str], out: Path) -> None:
    assert done.returncode == 1
    assert CERTIFICATE_PROBLEM in done.stderr
    assert done.stderr.startswith("Failed to fetch '")
    assert len(done.stderr.splitlines()) == 1
    # What to do, instead of curl's paragraph on configuring curl itself.
    assert "--cacert=" in done.stderr
    assert "--certs_dir" in done.stderr
    assert "curl.se" not in done.stderr
    assert not (out / "manifest").exists()


# -- CA bundles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["global", "per-registry"])
def test_cacert_flag_verifies_the_registry(
    scope: str, tls_registry: Registry, tls_image: PushedImage, tmp_path: Path
) -> None:
    ca = _ca(tls_registry)
    flag = f"--cacert={ca}" if scope == "global" else f"--cacert={_hostport(tls_registry)}={ca}"
    done = run_cli(flag, tls_registry.docker_uri("lab/tls", "v1"), str(tmp_path))
    _assert_fetched(done, tmp_path, tls_image)


def test_an_image_reference_reaches_a_tls_registry_on_a_local_port_with_https_registry(
    tls_registry: Registry, tls_image: PushedImage, tmp_path: Path
) -> None:
    """A reference on a loopback port means plain http, as the agent decides, unless the
    registry is named for https."""
    reference = f"{_hostport(tls_registry)}/lab/tls:v1"
    ca = f"--cacert={_ca(tls_registry)}"
    plain = run_cli("--retries=0", ca, reference, str(tmp_path / "plain"))
    assert plain.returncode == 1
    assert f"pass --https_registry={_hostport(tls_registry)})" in plain.stderr
    out = tmp_path / "out"
    done = run_cli(f"--https_registry={_hostport(tls_registry)}", ca, reference, str(out))
    _assert_fetched(done, out, tls_image)


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param([], id="no-ca"),
        pytest.param(["--cacert=127.0.0.1:1={ca}"], id="ca-for-another-port"),
        pytest.param(["--cacert=localhost={ca}"], id="ca-for-another-host"),
    ],
)
def test_without_a_ca_for_the_registry_its_certificate_is_refused(
    flags: list[str], tls_registry: Registry, tls_image: PushedImage, tmp_path: Path
) -> None:
    given = [flag.format(ca=_ca(tls_registry)) for flag in flags]
    done = run_cli(*given, tls_registry.docker_uri("lab/tls", "v1"), str(tmp_path))
    _assert_refused_certificate(done, tmp_path)


def test_certs_dir_ca_verifies_the_registry(
    tls_registry: Registry, tls_image: PushedImage, tmp_path: Path
) -> None:
    """Docker's layout: ``DIR/<host:port>/ca.crt``."""
    certs = tmp_path / "certs.d"
    (certs / _hostport(tls_registry)).mkdir(parents=True)
    shutil.copy(_ca(tls_registry), certs / _hostport(tls_registry) / "ca.crt")
    out = tmp_path / "out"
    done = run_cli(f"--certs_dir={certs}", tls_registry.docker_uri("lab/tls", "v1"), str(out))
    _assert_fetched(done, out, tls_image)


def test_a_plain_http_registry_asked_over_https_says_to_add_the_http_fragment(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """The usual slip: ``#http`` forgotten. One attempt (a handshake that failed fails again),
    and one line that says what to do."""
    pushed(registry, "lab/forgotten", "v1", layers=1)
    uri = registry.docker_uri("lab/forgotten", "v1").removesuffix("#http")
    started = time.monotonic()
    done = run_cli(uri, str(tmp_path))
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert "curl: (35)" in done.stderr
    assert f"add '#http' to the URI, or pass --insecure_registry={_hostport(registry)}" in (
        done.stderr
    )
    assert "gave up" not in done.stderr
    assert time.monotonic() - started < 10


def test_plain_http_to_a_tls_registry_says_it_speaks_https(
    tls_registry: Registry, tls_image: PushedImage, tmp_path: Path
) -> None:
    uri = tls_registry.docker_uri("lab/tls", "v1").replace("#https", "#http")
    done = run_cli(uri, str(tmp_path))
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert "'400 Bad Request'" in done.stderr
    assert "(Client sent an HTTP request to an HTTPS server.)" in done.stderr
    assert "speaks https: drop '#http' from the URI" in done.stderr


# -- mutual TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_registry() -> Iterator[Registry]:
    """A TLS registry that refuses clients without a certificate from its CA."""
    registry = start_registry(tls=True, mutual_tls=True)
    try:
        yield registry
    finally:
        registry.stop()


def _certs_dir(root: Path, registry: Registry, *, client: bool) -> Path:
    """``root/<host:port>/`` with ``ca.crt`` and, if ``client``, ``client.cert`` + ``client.key``
    (Docker's names: ``*.crt`` is a CA, ``*.cert`` a client certificate)."""
    directory = root / _hostport(registry)
    directory.mkdir(parents=True)
    shutil.copy(_ca(registry), directory / "ca.crt")
    if client:
        assert registry.client_cert is not None
        cert, key = registry.client_cert
        shutil.copy(cert, directory / "client.cert")
        shutil.copy(key, directory / "client.key")
    return root


def test_mutual_tls_with_the_client_certificate_from_certs_dir(
    mtls_registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    image = pushed(mtls_registry, "lab/mtls", "v1", layers=2)
    certs = _certs_dir(tmp_path / "certs.d", mtls_registry, client=True)
    out = tmp_path / "out"
    done = run_cli(f"--certs_dir={certs}", mtls_registry.docker_uri("lab/mtls", "v1"), str(out))
    _assert_fetched(done, out, image)


def test_mutual_tls_without_a_client_certificate_fails(
    mtls_registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    pushed(mtls_registry, "lab/mtls", "v1", layers=2)
    certs = _certs_dir(tmp_path / "certs.d", mtls_registry, client=False)
    out = tmp_path / "out"
    uri = mtls_registry.docker_uri("lab/mtls", "v1")
    done = run_cli("--retries=0", f"--certs_dir={certs}", uri, str(out))
    assert done.returncode == 1
    assert done.stderr.startswith(f"Failed to fetch '{uri}': Failed to perform 'curl'")
    # The server's TLS alert, as OpenSSL names it for TLS 1.2 or 1.3.
    assert re.search(r"alert (bad certificate|certificate required)", done.stderr)
    assert not (out / "manifest").exists()


# -- insecure registries --------------------------------------------------------------------------


def test_insecure_registry_is_reached_over_unverified_tls(
    tls_registry: Registry, tls_image: PushedImage, tmp_path: Path
) -> None:
    flag = f"--insecure_registry={_hostport(tls_registry)}"
    done = run_cli(flag, tls_registry.docker_uri("lab/tls", "v1"), str(tmp_path))
    _assert_fetched(done, tmp_path, tls_image)


@pytest.mark.parametrize("other", ["localhost:{port}", "127.0.0.1:1", "127.0.0.2"])
def test_insecure_registry_names_one_host_and_port_only(
    other: str, tls_registry: Registry, tls_image: PushedImage, tmp_path: Path
) -> None:
    flag = "--insecure_registry=" + other.format(port=tls_registry.port)
    done = run_cli(flag, tls_registry.docker_uri("lab/tls", "v1"), str(tmp_path))
    _assert_refused_certificate(done, tmp_path)


def test_insecure_plain_http_registry_is_reached_by_falling_back_to_http(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """No ``#http`` in the URI: https is tried first, then plain HTTP, as dockerd does for an
    insecure registry; the fallback is not worth a word on stderr."""
    image = pushed(registry, "lab/plain", "v1", layers=2)
    uri = f"docker://{_hostport(registry)}/lab/plain?v1"
    done = run_cli(f"--insecure_registry={_hostport(registry)}", uri, str(tmp_path))
    _assert_fetched(done, tmp_path, image)


def test_plain_http_is_not_used_for_a_registry_that_is_not_insecure(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    pushed(registry, "lab/plain", "v1", layers=2)
    uri = f"docker://{_hostport(registry)}/lab/plain?v1"
    done = run_cli("--retries=0", "--insecure_registry=127.0.0.1:1", uri, str(tmp_path))
    assert done.returncode == 1
    assert f"for 'https://{_hostport(registry)}/v2/lab/plain/manifests/v1'" in done.stderr
    assert not (tmp_path / "manifest").exists()


# -- a real forward proxy -------------------------------------------------------------------------


class TinyProxy:
    """``tinyproxy -d`` on a free loopback port; what it logs is what it forwarded."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.log_path = directory / "tinyproxy.log"
        config = directory / "tinyproxy.conf"
        # No ConnectPort line: CONNECT is allowed to every port (the registries' are random).
        config.write_text(
            f"Port {self.port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 60\nLogLevel Connect\n"
        )
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [TINYPROXY, "-d", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_listening()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tinyproxy exited: {self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"tinyproxy did not listen within {READY_TIMEOUT} s")

    def requests(self) -> list[str]:
        """``METHOD TARGET`` of every request the proxy received, in order."""
        text = self.log_path.read_text(errors="replace")
        return re.findall(r"Request \(file descriptor \d+\): (\S+ \S+) HTTP", text)

    def wait_for(self, fragment: str) -> list[str]:
        """The requests, once one of them contains ``fragment`` (the log is written as it goes)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not any(fragment in request for request in self.requests()):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the proxy never saw {fragment!r}; its log:\n{self.log_path.read_text()}"
                )
            time.sleep(0.05)
        return self.requests()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyProxy]:
    if shutil.which(TINYPROXY) is None:
        pytest.fail(TINYPROXY_HINT, pytrace=False)
    started = TinyProxy(tmp_path_factory.mktemp("tinyproxy"))
    try:
        yield started
    finally:
        started.stop()


def _proxy_env(proxy: TinyProxy, *, no_proxy: str = "") -> dict[str, str]:
    """Both proxies set, upper-case variants cleared, ``no_proxy`` as given (curl reads both)."""
    return {
        "http_proxy": proxy.url,
        "https_proxy": proxy.url,
        "HTTPS_PROXY": "",
        "ALL_PROXY": "",
        "all_proxy": "",
        "no_proxy": no_proxy,
        "NO_PROXY": no_proxy,
    }


def test_https_registry_through_a_connect_proxy(
    proxy: TinyProxy, tls_registry: Registry, tls_image: PushedImage, tmp_path: Path
) -> None:
    done = run_cli(
        f"--cacert={_ca(tls_registry)}",
        tls_registry.docker_uri("lab/tls", "v1"),
        str(tmp_path),
        env=_proxy_env(proxy),
    )
    _assert_fetched(done, tmp_path, tls_image)
    assert f"CONNECT {_hostport(tls_registry)}" in proxy.wait_for(_hostport(tls_registry))


def test_plain_http_registry_through_the_proxy(
    proxy: TinyProxy, registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    image = pushed(registry, "lab/proxied", "v1", layers=2)
    done = run_cli(registry.docker_uri("lab/proxied", "v1"), str(tmp_path), env=_proxy_env(proxy))
    _assert_fetched(done, tmp_path, image)
    seen = proxy.wait_for("/v2/lab/proxied/manifests/v1")
    assert f"GET {registry.url}/v2/lab/proxied/manifests/v1" in seen
    for digest in image.blobs:
        assert f"GET {registry.url}/v2/lab/proxied/blobs/{digest}" in seen


def test_no_proxy_bypasses_the_proxy(
    proxy: TinyProxy, registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    image = pushed(registry, "lab/direct", "v1", layers=2)
    marker = pushed(registry, "lab/marker", "v1", layers=1)
    done = run_cli(
        registry.docker_uri("lab/direct", "v1"),
        str(tmp_path / "direct"),
        env=_proxy_env(proxy, no_proxy="127.0.0.1"),
    )
    _assert_fetched(done, tmp_path / "direct", image)
    # A proxied fetch after it: once the proxy has logged that one, it would have logged the
    # first one too.
    done = run_cli(
        registry.docker_uri("lab/marker", "v1"), str(tmp_path / "marker"), env=_proxy_env(proxy)
    )
    _assert_fetched(done, tmp_path / "marker", marker)
    seen = proxy.wait_for("/v2/lab/marker/")
    assert not [request for request in seen if "/lab/direct/" in request]


def test_a_client_certificate_that_cannot_be_used_says_to_check_its_pair(
    mtls_registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    """Not the server's certificate: the hint names the client's pair, not --cacert."""
    pushed(mtls_registry, "lab/mtls", "v1", layers=2)
    certs = _certs_dir(tmp_path / "certs.d", mtls_registry, client=True)
    (certs / _hostport(mtls_registry) / "client.key").write_text("not a key\n")
    out = tmp_path / "out"
    uri = mtls_registry.docker_uri("lab/mtls", "v1")
    done = run_cli("--retries=0", f"--certs_dir={certs}", uri, str(out))
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert "curl: (58)" in done.stderr
    assert f"check its .cert and .key pair in --certs_dir's {_hostport(mtls_registry)}/" in (
        done.stderr
    )
    assert "--cacert" not in done.stderr
