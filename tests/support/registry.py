"""The registry itself: ``docker-registry serve`` (the CNCF distribution registry, Debian's
package, 2.8) as a child process on a free loopback port, with a throw-away config and storage,
optionally behind TLS from a test CA, with htpasswd or token auth."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import weakref
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

from .common import DEFAULT_ADMIN, LOOPBACK, HarnessError, opener
from .tls import CertificateAuthority
from .tokens import TokenServer

__all__ = ["INSTALL_HINT", "AuthMode", "Registry", "RegistryNotInstalledError"]

REGISTRY_BINARY: Final = "docker-registry"
INSTALL_HINT: Final = "docker-registry is not installed: apt-get install -y docker-registry"
# A cold start of distribution 2.8 takes ~0.1 s; a loaded CI machine gets a hundred times that.
START_TIMEOUT: Final = 20.0
# How long the registry gets to exit on SIGTERM before it is killed (Go exits at once).
STOP_GRACE: Final = 5.0
# Free ports are picked by binding port 0 and closing it; another process may take one meanwhile.
PORT_ATTEMPTS: Final = 3
LOG_TAIL_LINES: Final = 30

AuthMode = Literal["none", "token", "htpasswd"]


class RegistryNotInstalledError(HarnessError):
    """The ``docker-registry`` binary is not on PATH."""


class Registry:
    """``docker-registry serve`` on a free loopback port, with its own config and storage.

    Use it as a context manager (or ``start()``/``stop()``): the process is terminated, then
    killed after a grace period, and its directory removed, however the block exits. With
    ``mutual_tls`` it refuses clients without a certificate from its CA (distribution's
    ``http.tls.clientcas``); the harness presents ``client_cert`` itself.
    """

    host: Final = LOOPBACK

    def __init__(
        self,
        *,
        auth: AuthMode = "none",
        tls: bool = False,
        mutual_tls: bool = False,
        schema1: bool = False,
        proxy_remote: str | None = None,
        proxy_credentials: tuple[str, str] | None = None,
        proxy_ca_bundle: Path | None = None,
        users: Mapping[str, str] | None = None,
        admin: tuple[str, str] = DEFAULT_ADMIN,
        private: Collection[str] = (),
        token_server: TokenServer | None = None,
        binary: str = REGISTRY_BINARY,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        if auth not in ("none", "token", "htpasswd"):
            raise ValueError(f"auth must be none, token or htpasswd, not {auth!r}")
        if mutual_tls and not tls:
            raise ValueError("mutual_tls needs tls")
        self.auth: AuthMode = auth
        self.tls = tls
        self.mutual_tls = mutual_tls
        self.schema1 = schema1
        self.proxy_remote = proxy_remote
        self.proxy_credentials = proxy_credentials
        self.proxy_ca_bundle = proxy_ca_bundle
        self.admin: tuple[str, str] | None = admin if auth != "none" else None
        self.users = {**(users or {}), admin[0]: admin[1]}
        self.private = tuple(private)
        self.binary = binary
        self.start_timeout = start_timeout
        self.token_server = token_server
        self._owns_token_server = token_server is None
        self.ca: CertificateAuthority | None = None
        # With mutual_tls: the certificate and key a client presents, issued by the test CA.
        self.client_cert: tuple[Path, Path] | None = None
        self._workdir: Path | None = None
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Registry] | None = None

    # lifecycle

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Registry:
        if self._process is not None:
            return self
        executable = shutil.which(self.binary)
        if executable is None:
            raise RegistryNotInstalledError(INSTALL_HINT)
        try:
            self._workdir = Path(tempfile.mkdtemp(prefix="localregistry-"))
            self.storage_dir.mkdir()
            auth = self._prepare_auth()
            for attempt in range(1, PORT_ATTEMPTS + 1):
                self._port = _free_port()
                self._spawn(executable, auth)
                if self._wait_ready(last_attempt=attempt == PORT_ATTEMPTS):
                    return self
                self._terminate()
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable: the last attempt raises")

    def stop(self) -> None:
        self._terminate()
        if self.token_server is not None and self._owns_token_server:
            self.token_server.stop()
            self.token_server = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # what tests and scripts use

    @property
    def port(self) -> int:
        if self._port is None or self._process is None:
            raise HarnessError("the registry is not running")
        return self._port

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise HarnessError("the registry is not running")
        return self._process.pid

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise HarnessError("the registry is not running")
        return self._workdir

    @property
    def storage_dir(self) -> Path:
        """The filesystem driver's ``rootdirectory``."""
        return self.workdir / "storage"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    @property
    def log_path(self) -> Path:
        """The registry's own log (stderr), at level warn."""
        return self.workdir / "registry.log"

    @property
    def access_log_path(self) -> Path:
        """One line per request served (distribution writes its access log to stdout)."""
        return self.workdir / "access.log"

    @property
    def ca_bundle(self) -> Path | None:
        return self.ca.ca_bundle if self.ca is not None else None

    def blob_data_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes, so a test can corrupt them."""
        algorithm, _, encoded = digest.partition(":")
        if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", encoded):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.storage_dir / (f"docker/registry/v2/blobs/sha256/{encoded[:2]}/{encoded}/data")

    def docker_uri(self, repo: str, ref: str, scheme: str = "docker") -> str:
        """``docker://127.0.0.1:PORT/repo?ref#http`` (or ``docker-manifest``, ``docker-blob``)."""
        return f"{scheme}://{self.host}:{self.port}/{repo}?{ref}#{self.scheme}"

    def manifest_url(self, repo: str, ref: str) -> str:
        return f"{self.url}/v2/{repo}/manifests/{ref}"

    def blob_url(self, repo: str, digest: str) -> str:
        return f"{self.url}/v2/{repo}/blobs/{digest}"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # internals

    def _prepare_auth(self) -> dict[str, object] | None:
        if self.tls:
            self.ca = CertificateAuthority(self.workdir)
            if self.mutual_tls:
                self.client_cert = self.ca.issue("client", client=True)
        if self.auth == "htpasswd":
            import bcrypt

            lines = [
                f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
                for user, pw in self.users.items()
            ]
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text("".join(lines))
            return {"htpasswd": {"realm": "mesos-uri-test-basic", "path": str(htpasswd)}}
        if self.auth == "token":
            if self.token_server is None:
                self.token_server = TokenServer(
                    users=self.users,
                    private=self.private,
                    push_users=[self.admin[0]] if self.admin else (),
                    tls=self.ca,
                    directory=self.workdir,
                )
            self.token_server.start()
            return {
                "token": {
                    "realm": self.token_server.realm,
                    "service": self.token_server.service,
                    "issuer": self.token_server.issuer,
                    "rootcertbundle": str(self.token_server.rootcertbundle),
                }
            }
        return None

    def _config(self, auth: dict[str, object] | None) -> dict[str, object]:
        http: dict[str, object] = {
            "addr": f"{self.host}:{self._port}",
            "secret": secrets.token_hex(16),
        }
        if self.ca is not None:
            cert, key = self.ca.issue("registry")
            tls: dict[str, object] = {"certificate": str(cert), "key": str(key)}
            if self.mutual_tls:
                tls["clientcas"] = [str(self.ca.ca_bundle)]
            http["tls"] = tls
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "warn", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                # no background sweeps while tests look at the storage directory
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
            "health": {"storagedriver": {"enabled": False}},
        }
        if auth is not None:
            config["auth"] = auth
        if self.schema1:
            config["compatibility"] = {"schema1": {"enabled": True}}
        if self.proxy_remote is not None:
            proxy: dict[str, str] = {"remoteurl": self.proxy_remote}
            if self.proxy_credentials is not None:
                proxy["username"], proxy["password"] = self.proxy_credentials
            config["proxy"] = proxy
        return config

    def _spawn(self, executable: str, auth: dict[str, object] | None) -> None:
        # JSON is YAML: the registry's config parser (go-yaml) reads it as written.
        self.config_path.write_text(json.dumps(self._config(auth), indent=2))
        env = dict(os.environ)
        if self.proxy_ca_bundle is not None:
            env["SSL_CERT_FILE"] = str(self.proxy_ca_bundle)  # Go's trust store override
        with open(self.access_log_path, "ab") as out, open(self.log_path, "ab") as err:
            self._process = subprocess.Popen(
                [executable, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
            )
        self._finalizer = weakref.finalize(self, _kill, self._process)

    def _wait_ready(self, *, last_attempt: bool) -> bool:
        """True once ``GET /v2/`` answers 200 or 401; False if the port was taken meanwhile."""
        assert self._process is not None
        client = opener(self.ca_bundle, self.client_cert)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                tail = self.log_tail()
                if "address already in use" in tail and not last_attempt:
                    return False
                raise HarnessError(
                    f"docker-registry exited with status {code} before answering; its log:\n{tail}"
                )
            try:
                with client.open(f"{self.url}/v2/", timeout=1.0) as response:
                    if response.status == 200:
                        return True
            except urllib.error.HTTPError as error:
                error.close()
                if error.code == 401:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        raise HarnessError(
            f"docker-registry did not answer GET {self.url}/v2/ within {self.start_timeout} s; "
            f"its log:\n{self.log_tail()}"
        )

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process is not None:
            _kill(process)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after the grace period; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port
