"""Content digests: the OCI grammar, and hashing bytes to compare against one.

A digest names a file, so it is validated before it becomes a path (the original used whatever
followed the last ``/`` of a URL). Grammar (OCI image spec, descriptor.md "Digests")::

    digest    ::= algorithm ":" encoded
    algorithm ::= [a-z0-9]+ ([+._-] [a-z0-9]+)*
    encoded   ::= [a-zA-Z0-9=_-]+
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Final

import attrs

from mesos_uri.errors import DigestError, DigestMismatchError

if TYPE_CHECKING:
    from mesos_uri._transfers import Hasher

__all__ = ["MAX_DIGEST_LENGTH", "Digest", "digest_of", "parse_digest"]

_ALGORITHM: Final = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_ENCODED: Final = re.compile(r"[a-zA-Z0-9=_-]+")

# The algorithms the OCI image spec registers pin the encoded part (sha512 is rare but legal).
_REGISTERED: Final = {"sha256": re.compile("[a-f0-9]{64}"), "sha512": re.compile("[a-f0-9]{128}")}

# Long enough for sha512 with room for a longer algorithm name; anything longer is hostile.
MAX_DIGEST_LENGTH: Final = 256


@attrs.frozen
class Digest:
    """A validated digest; ``str()`` gives the canonical ``algorithm:encoded`` form."""

    algorithm: str
    encoded: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    def hasher(self, data: bytes = b"") -> Hasher:
        if self.algorithm not in _REGISTERED:
            raise DigestError(f"Unsupported digest algorithm '{self.algorithm}' in '{self}'")
        return hashlib.new(self.algorithm, data)

    def verify(self, actual: Hasher, *, what: str) -> None:
        """Raise unless ``actual`` (fed with the received bytes) equals this digest."""
        got = f"{self.algorithm}:{actual.hexdigest()}"
        if got != str(self):
            raise DigestMismatchError(
                f"Digest mismatch for {what}: expected '{self}', got '{got}'",
                expected=str(self),
                actual=got,
            )


def parse_digest(text: str) -> Digest:
    """Validate ``text`` against the OCI digest grammar before it is used as a name or a path."""
    algorithm, sep, encoded = text.partition(":")
    pattern = _REGISTERED.get(algorithm)
    if not text:
        reason = "empty"
    elif len(text) > MAX_DIGEST_LENGTH:
        text, reason = f"{text[:64]}...", f"longer than {MAX_DIGEST_LENGTH} characters"
    elif not sep:
        reason = "expected 'algorithm:encoded'"
    elif not _ALGORITHM.fullmatch(algorithm):
        reason = f"malformed algorithm '{algorithm}'"
    elif not _ENCODED.fullmatch(encoded):
        reason = "malformed encoded part"
    elif pattern is not None and not pattern.fullmatch(encoded):
        reason = f"{algorithm} needs {pattern.pattern} (lowercase hex)"
    else:
        return Digest(algorithm, encoded)
    raise DigestError(f"Invalid digest '{text}': {reason}")


def digest_of(data: bytes, algorithm: str = "sha256") -> Digest:
    """The digest of ``data``, e.g. for a manifest fetched by tag."""
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
