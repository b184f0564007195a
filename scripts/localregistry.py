"""A real Docker registry on loopback for the tests, the demo and the benchmark.

It runs the CNCF distribution registry (Debian's ``docker-registry``, 2.8) as a child process with
a throw-away config and storage, optionally behind TLS from a test CA, with htpasswd or token
auth; the token server is a small stdlib HTTP server issuing ES256 JWTs as the Docker token spec
describes. Images are pushed through the registry API itself, so what a fetch sees is what a
real push produced.

Library::

    with Registry(auth="token", tls=True) as reg:
        image = push_image(reg, "lab/app", "latest", [make_layer(1, 4096)])
        reg.docker_uri("lab/app", "latest")  # docker://127.0.0.1:PORT/lab/app?latest#https

``cryptography`` (TLS, tokens) and ``bcrypt`` (htpasswd) are imported only by the modes that
need them, so an anonymous plain-HTTP registry needs nothing beyond the standard library.
"""

from __future__ import annotations

import base64
import datetime
import fnmatch
import gzip
import hashlib
import io
import json
import os
import random
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import weakref
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

__all__ = [
    "DEFAULT_ADMIN",
    "INSTALL_HINT",
    "MEDIA_TYPES",
    "SCHEMA1_SIGNED",
    "SCHEMA2",
    "AuthMode",
    "CertificateAuthority",
    "Endpoint",
    "HarnessError",
    "ImageFormat",
    "PushedImage",
    "PushedSchema1",
    "Registry",
    "RegistryNotInstalledError",
    "TokenRequest",
    "TokenServer",
    "make_layer",
    "push_blob",
    "push_image",
    "push_manifest",
    "push_schema1_image",
    "sign_schema1",
]

REGISTRY_BINARY: Final = "docker-registry"
INSTALL_HINT: Final = "docker-registry is not installed: apt-get install -y docker-registry"
LOOPBACK: Final = "127.0.0.1"
# The user every push authenticates as; the token server grants push to it alone.
DEFAULT_ADMIN: Final = ("admin", "admin-secret")
# A cold start of distribution 2.8 takes ~0.1 s; a loaded CI machine gets a hundred times that.
START_TIMEOUT: Final = 20.0
# How long the registry gets to exit on SIGTERM before it is killed (Go exits at once).
STOP_GRACE: Final = 5.0
# Free ports are picked by binding port 0 and closing it; another process may take one meanwhile.
PORT_ATTEMPTS: Final = 3
LOG_TAIL_LINES: Final = 30
# Validity of the test CA's and the token signer's certificates, back-dated for clock skew.
CERT_DAYS: Final = 30
# What the token server says in expires_in unless told otherwise; Docker Hub says 300.
TOKEN_EXPIRES_IN: Final = 300
HTTP_TIMEOUT: Final = 60.0
# make_layer draws its bytes in pieces of this size, a multiple of 4 (see there).
_RANDOM_PIECE: Final = 64 * 1024 * 1024
# A fixed creation time keeps configs, and so digests, the same from run to run.
_EPOCH: Final = "1970-01-01T00:00:00Z"

SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA2: Final = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
# manifest, config and layer media types of the two image formats push_image builds
MEDIA_TYPES: Final = {
    "schema2": (
        SCHEMA2,
        "application/vnd.docker.container.image.v1+json",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ),
    "oci": (
        OCI_MANIFEST,
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ),
}

AuthMode = Literal["none", "token", "htpasswd"]
ImageFormat = Literal["schema2", "oci"]


class HarnessError(RuntimeError):
    """The local registry could not be started, or talking to it failed."""


class RegistryNotInstalledError(HarnessError):
    """The ``docker-registry`` binary is not on PATH."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# Keys and certificates


def _new_key() -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write_pem(path: Path, *, key: EllipticCurvePrivateKey | None = None, certs: Any = ()) -> Path:
    from cryptography.hazmat.primitives import serialization

    parts = [cert.public_bytes(serialization.Encoding.PEM) for cert in certs]
    if key is not None:
        parts.append(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    path.write_bytes(b"".join(parts))
    return path


def _certificate(
    subject: str,
    key: EllipticCurvePrivateKey,
    *,
    issuer: tuple[str, EllipticCurvePrivateKey] | None = None,
    ca: bool = False,
    hosts: Sequence[str] = (),
    usage: str | None = None,
) -> Any:
    """An X.509 certificate for ``key``, self-signed unless ``issuer`` (name, key) is given."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    issuer_name, signing_key = issuer if issuer is not None else (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if hosts:
        alt: list[x509.GeneralName] = []
        for host in hosts:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    if usage is not None:
        purpose = {
            "server": ExtendedKeyUsageOID.SERVER_AUTH,
            "client": ExtendedKeyUsageOID.CLIENT_AUTH,
        }
        builder = builder.add_extension(x509.ExtendedKeyUsage([purpose[usage]]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


class CertificateAuthority:
    """A throw-away CA whose ``ca_bundle`` a client passes to ``curl --cacert``."""

    def __init__(self, directory: Path, *, name: str = "mesos_uri test CA") -> None:
        self.directory = directory
        self.name = name
        self._key = _new_key()
        self._cert = _certificate(name, self._key, ca=True)
        self.ca_bundle = _write_pem(directory / "ca.pem", certs=[self._cert])

    def issue(
        self,
        name: str,
        *,
        hosts: Sequence[str] = (LOOPBACK, "localhost"),
        client: bool = False,
    ) -> tuple[Path, Path]:
        """Write ``NAME.crt`` and ``NAME.key`` (PKCS#8 PEM) for a server, or a client for mTLS."""
        key = _new_key()
        cert = _certificate(
            name,
            key,
            issuer=(self.name, self._key),
            hosts=() if client else hosts,
            usage="client" if client else "server",
        )
        return (
            _write_pem(self.directory / f"{name}.crt", certs=[cert]),
            _write_pem(self.directory / f"{name}.key", key=key),
        )


class _TokenSigner:
    """The key the registry trusts: its self-signed certificate is the ``rootcertbundle``."""

    def __init__(self, directory: Path) -> None:
        from cryptography.hazmat.primitives import serialization

        self._key = _new_key()
        cert = _certificate("mesos_uri test token signer", self._key)
        self.rootcertbundle = _write_pem(directory / "token-signer.pem", certs=[cert])
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    def sign(self, claims: Mapping[str, object]) -> str:
        """A compact JWS with the certificate in ``x5c``, as distribution verifies it."""
        header = {"alg": "ES256", "typ": "JWT", "x5c": [self._x5c]}
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        return signing_input + "." + _b64url(_es256(self._key, signing_input.encode("ascii")))


def _es256(key: EllipticCurvePrivateKey, data: bytes) -> bytes:
    """JWS ES256 (RFC 7518 §3.4) wants raw r||s, 32 bytes each, not the DER OpenSSL gives."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _libtrust_jwk(key: EllipticCurvePrivateKey) -> dict[str, str]:
    """The public key as libtrust writes it in a schema 1 signature, ``kid`` included.

    libtrust's key ID: sha256 of the DER SubjectPublicKeyInfo, cut to 240 bits, base32, in
    groups of four joined by ``:``; the registry refuses a ``kid`` that does not match.
    """
    from cryptography.hazmat.primitives import serialization

    public = key.public_key()
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode()
    numbers = public.public_numbers()
    return {
        "crv": "P-256",
        "kid": ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4)),
        "kty": "EC",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }


def sign_schema1(manifest: Mapping[str, object]) -> bytes:
    """A schema 1 manifest signed the way libtrust's ``PrettySignature`` lays it out.

    The payload is the manifest indented by three spaces; the signature's protected header
    records where the ``signatures`` key was spliced in (``formatLength``, ``formatTail``).
    """
    indent = "   "
    payload = json.dumps(manifest, indent=len(indent)).encode()
    format_length = len(payload) - 2  # everything before the closing "\n}"
    protected = _b64url(
        json.dumps(
            {
                "formatLength": format_length,
                "formatTail": _b64url(payload[format_length:]),
                "time": _EPOCH,
            }
        ).encode()
    )
    key = _new_key()
    signature = _es256(key, f"{protected}.{_b64url(payload)}".encode("ascii"))
    block = [
        {
            "header": {"jwk": _libtrust_jwk(key), "alg": "ES256"},
            "signature": _b64url(signature),
            "protected": protected,
        }
    ]
    signatures = json.dumps(block, indent=len(indent)).replace("\n", "\n" + indent)
    pretty = f',\n{indent}"signatures": {signatures}\n}}'
    return payload[:format_length] + pretty.encode()


# --------------------------------------------------------------------------------------------
# Token server


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One request the token server answered, as tests count them."""

    method: str
    path: str
    query: Mapping[str, tuple[str, ...]]
    had_credentials: bool
    user: str | None
    status: int

    @property
    def scopes(self) -> tuple[str, ...]:
        # Scopes may repeat as parameters or be space-separated in one (Docker token spec).
        return tuple(s for value in self.query.get("scope", ()) for s in value.split())

    @property
    def repositories(self) -> frozenset[str]:
        return frozenset(_parse_scope(s)[1] for s in self.scopes if s.startswith("repository:"))


class _Denied(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _parse_scope(scope: str) -> tuple[str, str, tuple[str, ...]]:
    """``type:name:actions``; the name may itself hold ``:`` (a registry host with a port)."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return kind, name, tuple(a for a in actions.split(",") if a)


class TokenServer:
    """Issues registry tokens as the Docker token spec and distribution's ``auth.token`` expect.

    Repositories are public (anonymous pull) unless they match a ``private`` glob; those need
    valid Basic credentials, and wrong credentials are refused even for public ones. Push is
    granted to ``push_users`` only. ``expires_in`` (None: left out) and ``fields`` (which of
    ``token``/``access_token`` the JSON carries) may be changed while the server runs.
    """

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        private: Collection[str] = (),
        push_users: Collection[str] = (DEFAULT_ADMIN[0],),
        service: str = "mesos-uri-test-registry",
        issuer: str = "mesos-uri-test-token-issuer",
        expires_in: int | None = TOKEN_EXPIRES_IN,
        fields: Sequence[str] = ("token", "access_token"),
        realm_path: str = "/token",
        tls: CertificateAuthority | None = None,
        directory: Path | None = None,
    ) -> None:
        self.users = dict(users if users is not None else {})
        self.private = tuple(private)
        self.push_users = frozenset(push_users)
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.fields = tuple(fields)
        self.realm_path = realm_path
        self.refresh_tokens: dict[str, str] = {}
        self._tls = tls
        self._directory = directory
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self._server: _TokenHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._signer: _TokenSigner | None = None

    # lifecycle

    def start(self) -> TokenServer:
        if self._server is not None:
            return self
        directory = self._directory
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="localregistry-token-")
            directory = Path(self._tmp.name)
        self._signer = _TokenSigner(directory)
        server = _TokenHTTPServer((LOOPBACK, 0), _TokenHandler, owner=self)
        if self._tls is not None:
            cert, key = self._tls.issue("token-server")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            # The handshake then runs in the handler's thread, not the accepting one.
            server.socket = context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="token-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # what the registry's config and the tests need

    @property
    def port(self) -> int:
        if self._server is None:
            raise HarnessError("the token server is not running")
        return self._server.server_address[1]

    @property
    def realm(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}{self.realm_path}"

    @property
    def rootcertbundle(self) -> Path:
        if self._signer is None:
            raise HarnessError("the token server is not running")
        return self._signer.rootcertbundle

    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, repository: str | None = None) -> int:
        """Token requests so far, or those whose scope names ``repository``."""
        return sum(1 for r in self.requests if repository is None or repository in r.repositories)

    def reset_counts(self) -> None:
        with self._lock:
            self._requests.clear()

    def issue_refresh_token(self, user: str) -> str:
        """An OAuth2 refresh token for ``user`` (Docker's ``identitytoken``)."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens[token] = user
        return token

    # the decisions, kept apart from HTTP

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _user(self, username: str, password: str) -> str:
        if self.users.get(username) != password:
            raise _Denied(401, "UNAUTHORIZED", "authentication failed")
        return username

    def _grant(self, user: str | None, scopes: Sequence[str]) -> list[dict[str, object]]:
        access: list[dict[str, object]] = []
        for scope in scopes:
            kind, name, actions = _parse_scope(scope)
            if kind != "repository":
                continue
            if user is None and any(fnmatch.fnmatchcase(name, p) for p in self.private):
                raise _Denied(401, "UNAUTHORIZED", f"authentication required for {name}")
            allowed = {"pull"}
            if user in self.push_users:
                allowed |= {"push", "delete", "*"}
            access.append(
                {"type": kind, "name": name, "actions": [a for a in actions if a in allowed]}
            )
        return access

    def _token(self, user: str | None, scopes: Sequence[str]) -> dict[str, object]:
        assert self._signer is not None
        access = self._grant(user, scopes)
        now = int(time.time())
        lifetime = self.expires_in if self.expires_in is not None else TOKEN_EXPIRES_IN
        jwt = self._signer.sign(
            {
                "iss": self.issuer,
                "sub": user or "",
                "aud": self.service,
                "exp": now + lifetime,
                "nbf": now,
                "iat": now,
                "jti": uuid.uuid4().hex,
                "access": access,
            }
        )
        body: dict[str, object] = {name: jwt for name in self.fields}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        body["issued_at"] = datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat()
        return body


class _TokenHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, owner: TokenServer
    ) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up or rejects our certificate is a test's business, not noise."""
        if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError)):
            super().handle_error(request, client_address)


class _TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read ``TokenServer.requests`` instead."""

    def _owner(self) -> TokenServer:
        assert isinstance(self.server, _TokenHTTPServer)
        return self.server.owner

    def _basic(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return ("", "\0")  # malformed: a credential that matches no user
        return user, password

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        self._answer(url.path, query, self._basic(), oauth=False)

    def do_POST(self) -> None:
        """OAuth2 form: ``grant_type=password`` or ``refresh_token`` (Docker token spec)."""
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
        grant = form.get("grant_type", [""])[0]
        credentials: tuple[str, str] | None = None
        if grant == "password":
            credentials = (form.get("username", [""])[0], form.get("password", [""])[0])
        elif grant == "refresh_token":
            token = form.get("refresh_token", [""])[0]
            user = self._owner().refresh_tokens.get(token)
            credentials = (user, self._owner().users.get(user, "")) if user else ("", "\0")
        self._answer(url.path, form, credentials, oauth=True)

    def _answer(
        self,
        path: str,
        query: dict[str, list[str]],
        credentials: tuple[str, str] | None,
        *,
        oauth: bool,
    ) -> None:
        owner = self._owner()
        user: str | None = None
        status = 200
        try:
            if path != owner.realm_path:
                raise _Denied(404, "NOT_FOUND", f"no token endpoint at {path}")
            if oauth and credentials is None:
                raise _Denied(400, "UNSUPPORTED", "unsupported grant_type")
            if credentials is not None:
                user = owner._user(*credentials)
            scopes = [s for value in query.get("scope", []) for s in value.split()]
            body = owner._token(user, scopes)
            if oauth and user is not None and query.get("access_type") == ["offline"]:
                body["refresh_token"] = owner.issue_refresh_token(user)
        except _Denied as denied:
            status = denied.status
            body = {"errors": [{"code": denied.code, "message": str(denied)}]}
        owner._record(
            TokenRequest(
                method=self.command,
                path=path,
                query={k: tuple(v) for k, v in query.items() if k not in ("password",)},
                had_credentials=credentials is not None,
                user=user,
                status=status,
            )
        )
        self._send_json(status, body)

    def _send_json(self, status: int, body: Mapping[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="mesos-uri-test-token-server"')
        self.end_headers()
        self.wfile.write(data)


# --------------------------------------------------------------------------------------------
# The registry process


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
        opener = _opener(self.ca_bundle, self.client_cert)
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
                with opener.open(f"{self.url}/v2/", timeout=1.0) as response:
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


# --------------------------------------------------------------------------------------------
# Pushing through the registry API


class Endpoint(Protocol):
    """Where to push: what a running ``Registry`` offers, as the push functions need it."""

    @property
    def url(self) -> str: ...

    @property
    def admin(self) -> tuple[str, str] | None: ...

    @property
    def ca_bundle(self) -> Path | None: ...

    @property
    def client_cert(self) -> tuple[Path, Path] | None: ...


@dataclass(frozen=True, slots=True)
class PushedImage:
    """What ``push_image`` put in the registry; bytes are left out of the repr."""

    repo: str
    tag: str
    media_type: str
    platform: str
    manifest: bytes = field(repr=False)
    manifest_digest: str
    config: bytes = field(repr=False)
    config_digest: str
    layer_digests: tuple[str, ...]
    layers: tuple[bytes, ...] = field(repr=False)

    @property
    def blobs(self) -> dict[str, bytes]:
        """Every blob by digest, config first: what a fetch of the image should leave."""
        return {
            self.config_digest: self.config,
            **dict(zip(self.layer_digests, self.layers, strict=True)),
        }


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: Message[str, str]
    body: bytes


def _opener(
    ca_bundle: Path | None, client_cert: tuple[Path, Path] | None = None
) -> urllib.request.OpenerDirector:
    # No proxy handler from the environment: tests set http_proxy for the code under test, and
    # the harness must still reach loopback directly.
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    if client_cert is not None:
        context.load_cert_chain(*client_cert)
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )


class _Client:
    """Registry API calls as the admin user, answering 401 challenges (Basic or Bearer)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.base = endpoint.url.rstrip("/")
        self.admin = endpoint.admin
        self._opener = _opener(endpoint.ca_bundle, endpoint.client_cert)
        self._authorization: dict[str, str] = {}

    def call(
        self,
        method: str,
        url: str,
        *,
        repo: str,
        expect: Collection[int],
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Reply:
        url = urllib.parse.urljoin(self.base + "/", url)  # Location may be relative
        reply = self._send(method, url, body, headers, self._authorization.get(repo))
        challenge = reply.headers.get("WWW-Authenticate")
        if reply.status == 401 and challenge:
            self._authorization[repo] = self._authorize(challenge, repo)
            reply = self._send(method, url, body, headers, self._authorization[repo])
        if reply.status not in expect:
            raise HarnessError(f"{method} {url} answered {reply.status}: {reply.body[:500]!r}")
        return reply

    def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        authorization: str | None,
    ) -> _Reply:
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        if authorization is not None:
            request.add_header("Authorization", authorization)
        try:
            with self._opener.open(request, timeout=HTTP_TIMEOUT) as response:
                return _Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            with error:
                return _Reply(error.code, error.headers, error.read())
        except OSError as exc:
            raise HarnessError(f"{method} {url} failed: {exc}") from exc

    def _authorize(self, challenge: str, repo: str) -> str:
        scheme, _, rest = challenge.partition(" ")
        params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if self.admin is None:
            raise HarnessError(f"the registry asks for credentials ({challenge}); no admin given")
        user, password = self.admin
        basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if scheme.lower() == "basic":
            return basic
        if scheme.lower() != "bearer" or "realm" not in params:
            raise HarnessError(f"cannot answer the challenge {challenge!r}")
        # Ask for push as well as pull at once, whatever this request's challenge named.
        scope = f"repository:{repo}:pull,push" if repo else params.get("scope", "")
        query = urllib.parse.urlencode({"service": params.get("service", ""), "scope": scope})
        reply = self._send("GET", f"{params['realm']}?{query}", None, None, basic)
        if reply.status != 200:
            raise HarnessError(f"token request answered {reply.status}: {reply.body[:500]!r}")
        answer = json.loads(reply.body)
        return "Bearer " + str(answer.get("token") or answer["access_token"])


def _push_blob(client: _Client, repo: str, data: bytes) -> str:
    digest = _sha256(data)
    head = client.call("HEAD", f"/v2/{repo}/blobs/{digest}", repo=repo, expect=(200, 404))
    if head.status == 200:
        return digest
    started = client.call("POST", f"/v2/{repo}/blobs/uploads/", repo=repo, expect=(202,), body=b"")
    location = started.headers.get("Location")
    if not location:
        raise HarnessError(f"upload to {repo} started without a Location")
    separator = "&" if "?" in location else "?"
    done = client.call(
        "PUT",
        location + separator + urllib.parse.urlencode({"digest": digest}),
        repo=repo,
        expect=(201,),
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    served = done.headers.get("Docker-Content-Digest", digest)
    if served != digest:
        raise HarnessError(f"the registry stored {served} for a blob of digest {digest}")
    return digest


def _push_manifest(client: _Client, repo: str, reference: str, body: bytes, media_type: str) -> str:
    reply = client.call(
        "PUT",
        f"/v2/{repo}/manifests/{reference}",
        repo=repo,
        expect=(201,),
        body=body,
        headers={"Content-Type": media_type},
    )
    return reply.headers.get("Docker-Content-Digest") or _sha256(body)


def push_blob(registry: Endpoint, repo: str, data: bytes) -> str:
    """Upload ``data`` monolithically (POST, then PUT with the digest); skipped when present."""
    return _push_blob(_Client(registry), repo, data)


def push_manifest(
    registry: Endpoint, repo: str, reference: str, body: bytes, media_type: str
) -> str:
    """PUT a manifest (or index) as given; returns the registry's ``Docker-Content-Digest``."""
    return _push_manifest(_Client(registry), repo, reference, body, media_type)


def push_image(
    registry: Endpoint,
    repo: str,
    tag: str,
    layers: Sequence[bytes],
    *,
    media_type: ImageFormat = "schema2",
    platform: str = "linux/amd64",
) -> PushedImage:
    """Push the layers, a config describing them, and a schema 2 or OCI manifest under ``tag``."""
    manifest_type, config_type, layer_type = MEDIA_TYPES[media_type]
    client = _Client(registry)
    layer_digests = tuple(_push_blob(client, repo, layer) for layer in layers)
    config = _image_config(layers, platform)
    config_digest = _push_blob(client, repo, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "size": len(config), "digest": config_digest},
            "layers": [
                {"mediaType": layer_type, "size": len(layer), "digest": digest}
                for layer, digest in zip(layers, layer_digests, strict=True)
            ],
        },
        indent=3,
    ).encode()
    return PushedImage(
        repo=repo,
        tag=tag,
        media_type=manifest_type,
        platform=platform,
        manifest=manifest,
        manifest_digest=_push_manifest(client, repo, tag, manifest, manifest_type),
        config=config,
        config_digest=config_digest,
        layer_digests=layer_digests,
        layers=tuple(layers),
    )


@dataclass(frozen=True, slots=True)
class PushedSchema1:
    """A signed schema 1 image as ``push_schema1_image`` stored it."""

    repo: str
    tag: str
    manifest: bytes = field(repr=False)
    manifest_digest: str
    layer_digests: tuple[str, ...]
    layers: tuple[bytes, ...] = field(repr=False)

    @property
    def blobs(self) -> dict[str, bytes]:
        return dict(zip(self.layer_digests, self.layers, strict=True))


def push_schema1_image(
    registry: Endpoint, repo: str, tag: str, layers: Sequence[bytes], *, architecture: str = "amd64"
) -> PushedSchema1:
    """Push the layers and a signed schema 1 manifest (needs ``Registry(schema1=True)``).

    ``manifest_digest`` is what the registry names it by: the sha256 of the payload without
    its signatures, never the sha256 of the bytes served (those are re-signed on every GET).
    """
    client = _Client(registry)
    layer_digests = tuple(_push_blob(client, repo, layer) for layer in layers)
    ids = [
        hashlib.sha256(f"{repo}:{tag}:{i}:{d}".encode()).hexdigest()
        for i, d in enumerate(layer_digests)
    ]
    history: list[dict[str, str]] = []
    # fsLayers and history run from the top layer down (image manifest v2 schema 1)
    for i in reversed(range(len(layers))):
        v1: dict[str, object] = {"id": ids[i], "created": _EPOCH}
        if i > 0:
            v1["parent"] = ids[i - 1]
        if i == len(layers) - 1:
            v1 |= {"architecture": architecture, "os": "linux", "config": {}}
        history.append({"v1Compatibility": json.dumps(v1, separators=(",", ":"))})
    manifest = sign_schema1(
        {
            "schemaVersion": 1,
            "name": repo,
            "tag": tag,
            "architecture": architecture,
            "fsLayers": [{"blobSum": digest} for digest in reversed(layer_digests)],
            "history": history,
        }
    )
    return PushedSchema1(
        repo=repo,
        tag=tag,
        manifest=manifest,
        manifest_digest=_push_manifest(client, repo, tag, manifest, SCHEMA1_SIGNED),
        layer_digests=layer_digests,
        layers=tuple(layers),
    )


def _image_config(layers: Sequence[bytes], platform: str) -> bytes:
    os_name, _, rest = platform.partition("/")
    architecture, _, variant = rest.partition("/")
    config: dict[str, object] = {
        "architecture": architecture or "amd64",
        "os": os_name or "linux",
        "created": _EPOCH,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [_diff_id(layer) for layer in layers]},
        "history": [
            {"created": _EPOCH, "created_by": f"localregistry layer {i}"}
            for i in range(len(layers))
        ],
    }
    if variant:
        config["variant"] = variant
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _diff_id(layer: bytes) -> str:
    """sha256 of the uncompressed tar; a layer that is not gzip is taken as the tar itself."""
    if not layer.startswith(b"\x1f\x8b"):
        return _sha256(layer)
    digest = hashlib.sha256()
    with gzip.GzipFile(fileobj=io.BytesIO(layer)) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def make_layer(seed: int, size: int) -> bytes:
    """A gzip'd tar holding one file of ``size`` incompressible bytes, the same for each seed.

    gzip level 0 (stored blocks): random bytes do not compress anyway, and level 1 would take
    eight times as long on 64 MiB. The blob is a little larger than ``size``: tar pads the
    archive to its 10 KiB record.
    """
    generator = random.Random(seed)
    # randbytes() of 256 MiB or more overflows; pieces whose size is a multiple of 4 bytes
    # concatenate to exactly the bytes one call would give.
    data = b"".join(
        generator.randbytes(min(_RANDOM_PIECE, size - start))
        for start in range(0, size, _RANDOM_PIECE)
    )
    info = tarfile.TarInfo(f"layer-{seed}.bin")
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(data))
    return gzip.compress(tar.getbuffer(), compresslevel=0, mtime=0)
