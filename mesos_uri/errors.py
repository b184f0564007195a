"""The one error family every public call raises.

    FetchError
    ├── UsageError              the caller's input is wrong (URI, flag, reference, directory)
    ├── CurlError               curl could not be run or exited non-zero
    │   └── TransferInterruptedError  curl stopped before a transfer of its batch finished
    ├── DecodeError             curl's output is not the HTTP it should be
    │   ├── TruncatedResponseError   the connection closed inside a header block
    │   └── ResponseTooLargeError    a response passed the limit its caller set
    ├── HTTPStatusError         the server answered with a status we cannot use
    ├── RedirectError           a redirect we refuse to follow (scheme, downgrade)
    │   └── TooManyRedirectsError
    ├── AuthError               the 401 dance failed (challenge, token endpoint, credentials)
    ├── ManifestError           a manifest or index is malformed, unsupported or too large
    ├── DigestError             a digest string is not ``algorithm:encoded`` (the OCI grammar)
    ├── DigestMismatchError     bytes arrived whose digest is not the one asked for
    └── BlobSizeError           a body longer or shorter than its declared size

Each error keeps its context as attributes and builds its text from them; nothing rewrites a
text on the way up. The layers above add context instead: the URI (``uri``), that the failure
ended a parallel fetch of blobs (``collected``), what each retried attempt met (``attempts``).
``str()`` composes the line the CLI prints: ``Failed to fetch 'docker://…': Collect failed: …
(gave up after 5 attempts: …)``.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "AuthError",
    "BlobSizeError",
    "CurlError",
    "DecodeError",
    "DigestError",
    "DigestMismatchError",
    "FetchError",
    "HTTPStatusError",
    "ManifestError",
    "RedirectError",
    "ResponseTooLargeError",
    "TooManyRedirectsError",
    "TransferInterruptedError",
    "TruncatedResponseError",
    "UsageError",
]

# Quoted remote text (a registry's error message, curl's stderr) is cut here.
MAX_EXCERPT: Final = 300
# C0 and C1 controls and DEL: ESC starts terminal sequences, CR/LF break the one-line promise.
_CONTROLS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def excerpt(text: str, limit: int = MAX_EXCERPT) -> str:
    """Text from the network made safe to quote, as it may hold terminal escapes or megabytes:
    each run of controls becomes ``?``, whitespace one space, and ``…`` marks a cut at ``limit``."""
    cleaned = " ".join(_CONTROLS.sub(lambda m: " " if m[0].isspace() else "?", text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


class FetchError(Exception):
    """``hint`` says what to do about it, when we know."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.uri: str | None = None
        self.collected = False
        self.attempts: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        text = self.message
        if self.collected:
            text = f"Collect failed: {text}"  # the original's text for a failed blob fan-out
        if len(self.attempts) > 1:
            text += f" (gave up after {len(self.attempts)} attempts: {', '.join(self.attempts)})"
        if self.hint:
            text += f" ({self.hint})"
        if self.uri is not None:
            text = f"Failed to fetch '{self.uri}': {text}"
        return text


class UsageError(FetchError, ValueError):
    """The caller handed us something malformed; retrying the same input cannot help."""


class CurlError(FetchError):
    """curl failed to run or exited non-zero; ``exit_code`` is None when it never started."""

    def __init__(self, message: str, *, exit_code: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr = stderr


class TransferInterruptedError(CurlError):
    """curl ended before it reported a transfer: killed because another file of its batch
    passed its size, cancelled with another caller, or crashed. Worth another attempt."""


class DecodeError(FetchError): ...


class TruncatedResponseError(DecodeError):
    """The output ended inside a header block: the server hung up mid-response, and curl
    exits 0 for that. A network failure like an empty reply, so worth a retry."""


class ResponseTooLargeError(DecodeError):
    """A response passed ``limit`` bytes; curl was stopped there."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class HTTPStatusError(FetchError):
    def __init__(self, message: str, *, code: int, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class RedirectError(FetchError):
    def __init__(self, *, url: str, reason: str) -> None:
        super().__init__(f"Refusing to follow a redirect from '{url}' {reason}")
        self.url = url
        self.reason = reason


class TooManyRedirectsError(RedirectError):
    def __init__(self, *, url: str, limit: int) -> None:
        FetchError.__init__(self, f"Too many redirects (more than {limit}) when fetching '{url}'")
        self.url = url
        self.reason = f"more than {limit} redirects"
        self.limit = limit


class AuthError(FetchError): ...


class ManifestError(FetchError): ...


class DigestError(FetchError, ValueError): ...


class DigestMismatchError(FetchError):
    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class BlobSizeError(FetchError):
    """A download delivered more (or fewer) bytes than its descriptor declared: never kept."""
