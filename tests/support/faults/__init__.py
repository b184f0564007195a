"""The tests' HTTP server: a loopback registry that fails on cue, and a hostile one on demand.

A :class:`FaultServer` is a threaded HTTP/1.1 server on 127.0.0.1 (a free port), plain or TLS. It
can serve images the way the distribution registry does (``/v2/``, manifests by tag and by digest
with ``Docker-Content-Digest``, blobs with ``Range`` support), and any path can be given its
answers in one of two styles:

* a *script*: a list of acts, one consumed per request, the last one repeating. An act with no
  body of its own (``Serve()``, ``Drop(after=...)``, ``WrongBytes()``, ...) works on what the
  registry holds for that path, so a script reads as "fail this way, then behave"::

      with FaultServer() as server:
          server.registry("lab/app", manifest, MEDIA_TYPE, {digest: blob})
          server.script(blob_path("lab/app", digest), [Status(503), Drop(after=100), Serve()])

* a *route*: a handler, a function that answers every request for the path through its
  :class:`Exchange` (``respond``, ``redirect``, ``stall``, ``sequence`` of handlers, ...)::

      server.route("/blob", sequence(respond(503), respond(200, b"data")))

The hostile acts answer as a registry under an attacker's control would: redirects anywhere
(``Redirect``), bodies that never end (``Endless``), huge error answers generated on the fly
(``Huge``). Beside the server stand a :class:`Canary`, a listener on another port that records
every byte anyone sends it and answers none, and a :class:`Blackhole`, a port no connection
attempt gets through to.

Every request is recorded with the time it arrived, and every byte sent back is counted per
path. :meth:`FaultServer.close` returns only when every handler thread has ended, stalled ones
included, and the port is free again.

Its parts: the server (:mod:`.server`), the scripted acts (:mod:`.acts`), the route handlers
(:mod:`.routes`), what both write through (:mod:`.exchange`), OCI images built for it
(:mod:`.images`), and the canary and the blackhole (:mod:`.listeners`).
"""

from ..common import sha256_digest
from .acts import (
    Act,
    BadChallenge,
    Drop,
    Endless,
    Hangup,
    Huge,
    MalformedHeader,
    Oversized,
    RateLimited,
    Raw,
    Redirect,
    Serve,
    Stall,
    Status,
    WrongBytes,
)
from .exchange import (
    Content,
    Exchange,
    Handler,
    RecordedRequest,
    blob_path,
    error_body,
    http_date,
    manifest_path,
)
from .images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Image, descriptor, oci_image
from .listeners import Blackhole, Canary
from .routes import drop_after, echo_headers, raw, redirect, respond, sequence, slow_body, stall
from .server import FaultServer, tls_context

__all__ = [
    "OCI_CONFIG",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "Act",
    "BadChallenge",
    "Blackhole",
    "Canary",
    "Content",
    "Drop",
    "Endless",
    "Exchange",
    "FaultServer",
    "Handler",
    "Hangup",
    "Huge",
    "Image",
    "MalformedHeader",
    "Oversized",
    "RateLimited",
    "Raw",
    "RecordedRequest",
    "Redirect",
    "Serve",
    "Stall",
    "Status",
    "WrongBytes",
    "blob_path",
    "descriptor",
    "drop_after",
    "echo_headers",
    "error_body",
    "http_date",
    "manifest_path",
    "oci_image",
    "raw",
    "redirect",
    "respond",
    "sequence",
    "sha256_digest",
    "slow_body",
    "stall",
    "tls_context",
]
