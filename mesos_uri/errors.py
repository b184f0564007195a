"""The one error family every public call raises.

    FetchError
    ├── UsageError            the caller's input is wrong (URI, flag, reference, directory)
    ├── CurlError             curl could not be run or exited non-zero
    ├── DecodeError           curl's output is not the HTTP it should be
    │   └── TruncatedResponseError  the connection closed inside a header block
    ├── HTTPStatusError       the server answered with a status we cannot use
    ├── AuthError             the 401 dance failed (challenge, token endpoint, credentials)
    ├── ManifestError         a manifest or index is malformed, unsupported or too large
    ├── DigestError           a digest string is not in the OCI grammar
    └── DigestMismatchError   bytes arrived whose digest is not the one asked for

Messages follow the original's texts (SPEC.md §8.2) so that logs read the same; callers that
need more than the text get it from the attributes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = [
    "AuthError",
    "CurlError",
    "DecodeError",
    "DigestError",
    "DigestMismatchError",
    "FetchError",
    "HTTPStatusError",
    "ManifestError",
    "TruncatedResponseError",
    "UsageError",
    "failing_fetch_of",
]


class FetchError(Exception):
    """Base of every error a public call of this package raises."""

    @property
    def message(self) -> str:
        return str(self)


class UsageError(FetchError, ValueError):
    """The caller handed us something malformed; retrying the same input cannot help."""


class CurlError(FetchError):
    """curl failed to run or exited non-zero; ``exit_code`` is None when it never started."""

    def __init__(self, message: str, *, exit_code: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr = stderr


class DecodeError(FetchError):
    """curl's stdout did not decode as the HTTP/1.x response stream we asked for."""


class TruncatedResponseError(DecodeError):
    """The output ended inside a header block: the server hung up mid-response, and curl
    (7.88) exits 0 for that. A network failure like an empty reply, so worth a retry."""


class HTTPStatusError(FetchError):
    """A server answered with a status code the step cannot use (404, 500, ...)."""

    def __init__(self, message: str, *, code: int, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class AuthError(FetchError):
    """Authorisation failed: a bad challenge, a token endpoint error, or rejected credentials."""


class ManifestError(FetchError):
    """A manifest or index cannot be used: malformed, unsupported media type, or too large."""


class DigestError(FetchError, ValueError):
    """A digest string is not ``algorithm:encoded`` as the OCI image spec defines it."""


class DigestMismatchError(FetchError):
    """Bytes were received whose digest differs from the one they were fetched by."""

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


@contextlib.contextmanager
def failing_fetch_of(uri: str) -> Iterator[None]:
    """Prefix any error with ``Failed to fetch '<uri>': `` (the CLI's one line), keeping the
    error's type and attributes so that callers can still tell the failures apart."""
    try:
        yield
    except FetchError as exc:
        exc.args = (f"Failed to fetch '{uri}': {exc}",)
        raise
