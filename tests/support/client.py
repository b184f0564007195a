"""The harness's registry client: blob uploads and manifest PUTs through the registry API, as
the admin user, answering the registry's 401 challenges (Basic, or Bearer from its token
server). Pushing through the API means a fetch sees what a real push produced."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Protocol

from .common import HTTP_TIMEOUT, HarnessError, opener, sha256_digest

__all__ = ["Client", "Endpoint", "push_blob", "push_manifest"]


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
class _Reply:
    status: int
    headers: Message[str, str]
    body: bytes


class Client:
    """Registry API calls as the admin user, answering 401 challenges (Basic or Bearer).

    One client serves one image's pushes: it keeps the authorization it got per repository, so
    a Bearer token is asked for once, not once per blob.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.base = endpoint.url.rstrip("/")
        self.admin = endpoint.admin
        self._opener = opener(endpoint.ca_bundle, endpoint.client_cert)
        self._authorization: dict[str, str] = {}

    def push_blob(self, repo: str, data: bytes) -> str:
        """Upload ``data`` monolithically (POST, then PUT with the digest); skipped when present."""
        digest = sha256_digest(data)
        head = self._call("HEAD", f"/v2/{repo}/blobs/{digest}", repo=repo, expect=(200, 404))
        if head.status == 200:
            return digest
        started = self._call(
            "POST", f"/v2/{repo}/blobs/uploads/", repo=repo, expect=(202,), body=b""
        )
        location = started.headers.get("Location")
        if not location:
            raise HarnessError(f"upload to {repo} started without a Location")
        separator = "&" if "?" in location else "?"
        done = self._call(
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

    def push_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest (or index) as given; returns the registry's ``Docker-Content-Digest``."""
        reply = self._call(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            repo=repo,
            expect=(201,),
            body=body,
            headers={"Content-Type": media_type},
        )
        return reply.headers.get("Docker-Content-Digest") or sha256_digest(body)

    def _call(
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


def push_blob(registry: Endpoint, repo: str, data: bytes) -> str:
    """Upload ``data`` monolithically (POST, then PUT with the digest); skipped when present."""
    return Client(registry).push_blob(repo, data)


def push_manifest(
    registry: Endpoint, repo: str, reference: str, body: bytes, media_type: str
) -> str:
    """PUT a manifest (or index) as given; returns the registry's ``Docker-Content-Digest``."""
    return Client(registry).push_manifest(repo, reference, body, media_type)
