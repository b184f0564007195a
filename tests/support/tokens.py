"""The token server: issues the JWTs a registry with ``auth: token`` accepts, and records every
request it answers so that tests can count tokens.

It follows the Docker token spec (GET with Basic credentials, and the OAuth2 POST with a
password or refresh token) and distribution's ``auth.token`` (ES256, the signer's certificate
in ``x5c``). The decisions (who gets which actions) are kept apart from HTTP.
"""

from __future__ import annotations

import base64
import datetime
import fnmatch
import json
import secrets
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from .common import DEFAULT_ADMIN, LOOPBACK, HarnessError
from .jws import TokenSigner
from .tls import CertificateAuthority

__all__ = ["TokenRequest", "TokenServer"]

# What the token server says in expires_in unless told otherwise; Docker Hub says 300.
TOKEN_EXPIRES_IN: Final = 300


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
        self._signer: TokenSigner | None = None

    # lifecycle

    def start(self) -> TokenServer:
        if self._server is not None:
            return self
        directory = self._directory
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="localregistry-token-")
            directory = Path(self._tmp.name)
        self._signer = TokenSigner(directory)
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
