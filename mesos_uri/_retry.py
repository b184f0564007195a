"""When to try an exchange again, and how long to wait first.

The original never retried: one refused connection, 503 or dropped connection failed the whole
fetch. Here a *transient* failure is retried: a curl exit that means the network failed us, or a
status curl's own ``--retry`` calls transient. Anything else (404, 401, a bad manifest, a digest
mismatch) would get the same answer again, and fails at once.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any, Final, TypeVar

import attrs

from mesos_uri.errors import (
    CurlError,
    FetchError,
    HTTPStatusError,
    TransferInterruptedError,
    TruncatedResponseError,
    UsageError,
)

__all__ = ["DEFAULT_RETRIES", "RetryPolicy", "run_with_retries", "transient_status"]

T = TypeVar("T")

_log = logging.getLogger(__name__)

# Five attempts, as dockerd (the puller a Mesos agent replaces) gives a layer download.
DEFAULT_RETRIES: Final = 4

# curl exits (libcurl-errors(3)) that mean the transfer broke, with the words the error lists per
# attempt. Not 6 (a name that does not resolve is nearly always wrong) nor 35 (a TLS handshake that
# fails, fails again: most often the server speaks plain HTTP).
_TRANSIENT_CURL_EXITS: Final = {
    7: "could not connect",  # refused or unreachable: a registry restarting, no healthy backend
    16: "HTTP/2 framing error",  # a proxy or server resetting the session
    18: "partial transfer",  # closed before the announced Content-Length arrived
    28: "timed out",  # the connect timeout or the -y stall timeout
    52: "empty reply",  # closed without a byte of response
    55: "send error",  # connection reset while sending
    56: "receive error",  # connection reset mid-body
    92: "HTTP/2 stream error",  # RST_STREAM, e.g. while shedding load
}

# curl --retry's transient statuses; other 4xx are the request's fault, 401 the auth flow's.
_TRANSIENT_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})

# delay-seconds = 1*DIGIT (RFC 9110); a sign and a fraction are read leniently.
_DELAY_SECONDS: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# 2 ** 64 times any base delay is past every cap; beyond it the exponent would only overflow.
_MAX_EXPONENT: Final = 64


def transient_status(code: int) -> bool:
    return code in _TRANSIENT_STATUSES


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds, or an HTTP-date (in any of
    the three forms RFC 9110 makes recipients accept) measured from ``now`` (default the current
    time). The past is 0; None, when there is nothing to honour, leaves the caller's backoff."""
    text = (value or "").strip()
    if not text:
        return None
    if _DELAY_SECONDS.fullmatch(text):
        return max(0.0, float(text))
    try:
        # Imported here: only a server that sends an HTTP-date pays for email's import.
        import email.utils

        when = email.utils.parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # an HTTP-date is always GMT
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _between(low: float, high: float) -> Callable[[object, attrs.Attribute[Any], float], None]:
    def check(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
        if not low <= value <= high:  # also refuses NaN
            raise UsageError(f"RetryPolicy.{attribute.name} must be in {low}..{high}, got {value}")

    return check


@attrs.frozen
class RetryPolicy:
    """Before retry ``n`` the wait is ``base_delay * 2 ** (n - 1)``, capped at ``max_delay``,
    with equal jitter; a server's ``Retry-After`` lengthens it, up to ``max_retry_after``."""

    retries: int = DEFAULT_RETRIES  # after the first attempt; validated as the fetcher's option
    base_delay: float = attrs.field(default=0.5, validator=_between(0, math.inf))
    max_delay: float = attrs.field(default=30.0, validator=_between(0, math.inf))
    max_retry_after: float = attrs.field(default=60.0, validator=_between(0, math.inf))
    jitter: float = attrs.field(default=0.5, validator=_between(0, 1))
    rng: random.Random = attrs.field(factory=random.Random, eq=False, repr=False, kw_only=True)

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (from 1). Equal jitter draws from
        ``[d * (1 - jitter), d]``: like full jitter it spreads the downloads that fail together,
        but a struggling server is never retried almost at once. ``Retry-After`` is a floor too,
        capped at ``max_retry_after`` (Docker Hub may ask for hours)."""
        if attempt < 1:
            raise UsageError(f"Attempts are numbered from 1, got {attempt}")
        backoff = min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
        wait = backoff * (1.0 - self.jitter * self.rng.random())
        if retry_after is not None:
            wait = max(wait, min(max(retry_after, 0.0), self.max_retry_after))
        return wait


def classify_error(exc: BaseException) -> tuple[bool, float | None]:
    """The judge of :func:`run_with_retries`: (transient?, Retry-After seconds). Not a
    digest mismatch: the registry would serve the same bytes, and a corrupting proxy is a fault
    to surface."""
    if isinstance(exc, TransferInterruptedError | TruncatedResponseError):
        # A truncated header block: the server hung up, which curl 7.88 calls success.
        return True, None
    if isinstance(exc, CurlError):
        return exc.exit_code in _TRANSIENT_CURL_EXITS, None
    if isinstance(exc, HTTPStatusError) and transient_status(exc.code):
        return True, parse_retry_after(exc.retry_after)
    return False, None


def _summary(exc: BaseException) -> str:
    """A few words on one failed attempt, for the list in the final message."""
    if isinstance(exc, TransferInterruptedError):
        return "curl stopped"
    if isinstance(exc, CurlError):
        if exc.exit_code is None:
            return "curl did not start"
        meaning = _TRANSIENT_CURL_EXITS.get(exc.exit_code)
        return f"curl exit {exc.exit_code}" + (f" ({meaning})" if meaning else "")
    if isinstance(exc, HTTPStatusError):
        return f"HTTP {exc.code}"
    if isinstance(exc, TruncatedResponseError):
        return "connection closed inside the header block"
    return type(exc).__name__


async def run_with_retries(
    operation: Callable[[int], Awaitable[T]],
    *,
    policy: RetryPolicy,
    describe: str,
    sleep: Callable[[float], Awaitable[object]] | None = None,
) -> T:
    """Await ``operation(attempt)`` (from 1) until it succeeds, or :func:`classify_error` or the
    policy gives up; the last error is raised with what each attempt met when there were several
    (so ``--retries=0`` keeps the original's texts). Cancellation, a BaseException, is never
    retried. ``describe`` names the exchange in the log (never a credential)."""
    if sleep is None:
        import anyio

        sleep = anyio.sleep
    failures: list[str] = []
    attempt = 1
    while True:
        try:
            return await operation(attempt)
        except Exception as exc:
            failures.append(_summary(exc))
            transient, retry_after = classify_error(exc)
            if not transient or attempt >= policy.attempts:
                if len(failures) > 1 and isinstance(exc, FetchError):
                    exc.attempts = tuple(failures)
                raise
            wait = policy.delay(attempt, retry_after)
            _log.info(
                "%s: attempt %d of %d failed (%s); retrying in %.2f s",
                describe,
                attempt,
                policy.attempts,
                failures[-1],
                wait,
            )
        await sleep(wait)
        attempt += 1
