"""When to try an exchange again, and how long to wait first.

The original never retries (SPEC.md §9 row 8): one refused connection, one 503 from a storage
backend or one dropped connection fails the whole fetch. Here a failure is retried when it is
*transient* — the same request, sent again a little later, may well succeed — and only then:

* curl exit codes that mean the network failed us mid-way (:func:`transient_curl_exit`);
* the HTTP statuses curl's own ``--retry`` calls transient (:func:`transient_status`).

Everything else (404, 401, a malformed manifest, a digest mismatch, a bad flag) fails at once:
sending it again gets the same answer. The pure parts (tables, ``Retry-After``, the backoff) hold
no I/O; :func:`run_with_retries` is the one loop that sleeps, and it takes its ``sleep`` as an
argument so tests see every delay without waiting.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Final, TypeVar

import attrs

from mesos_uri.errors import (
    CurlError,
    FetchError,
    HTTPStatusError,
    TransferInterruptedError,
    TruncatedResponseError,
    UsageError,
)

__all__ = [
    "DEFAULT_RETRIES",
    "RetryPolicy",
    "classify_error",
    "parse_retry_after",
    "run_with_retries",
    "transient_curl_exit",
    "transient_status",
]

T = TypeVar("T")

_log = logging.getLogger(__name__)

# dockerd gives a layer download five attempts (DefaultDownloadAttempts = 5 in moby's
# daemon/config/config.go, flag `--max-download-attempts`); podman pull retries 3 times
# (containers/common engine config `Retry = 3`); skopeo's `--retry-times` defaults to 0.
# We follow dockerd, the puller a Mesos agent replaces: five attempts, so four retries.
DEFAULT_RETRIES: Final = 4

# curl exit codes (libcurl-errors(3)) that mean the transfer broke, not that the request was wrong,
# with the short text an error message lists per attempt.
_TRANSIENT_CURL_EXITS: Final[dict[int, str]] = {
    # CURLE_COULDNT_CONNECT: refused or unreachable; a registry restarting, a load balancer
    # without a healthy backend.
    7: "could not connect",
    # CURLE_HTTP2: a framing-layer error, typically a proxy or server resetting the session.
    16: "HTTP/2 framing error",
    # CURLE_PARTIAL_FILE: the connection closed before the announced Content-Length arrived.
    18: "partial transfer",
    # CURLE_OPERATION_TIMEDOUT: the connect timeout or the -y stall timeout (issue #7 item 3).
    28: "timed out",
    # CURLE_GOT_NOTHING: the server closed the connection without a byte of response.
    52: "empty reply",
    # CURLE_SEND_ERROR: writing the request failed (connection reset while sending).
    55: "send error",
    # CURLE_RECV_ERROR: reading failed (connection reset mid-body).
    56: "receive error",
    # CURLE_HTTP2_STREAM: the server reset our stream (RST_STREAM), e.g. while shedding load.
    92: "HTTP/2 stream error",
}
# Not 6 (CURLE_COULDNT_RESOLVE_HOST): a name that does not resolve is nearly always a wrong name,
# and waiting will not make it right. Not 35 (CURLE_SSL_CONNECT_ERROR): a handshake that fails
# fails again, most often because the server speaks plain HTTP.

# curl's --retry definition of a transient HTTP answer (curl(1)): 408, 429, 500, 502, 503, 504.
# Other 4xx are the request's fault; 401 is the auth flow's business, not a retry's.
_TRANSIENT_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})

# delay-seconds = 1*DIGIT (RFC 9110 §10.2.3); a sign and a fraction are read leniently.
_DELAY_SECONDS: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# 2 ** 64 times any base delay is past every cap; beyond it the exponent would only overflow.
_MAX_EXPONENT: Final = 64


def transient_curl_exit(code: int) -> bool:
    """Whether curl exiting with ``code`` means a network failure worth another attempt."""
    return code in _TRANSIENT_CURL_EXITS


def transient_status(code: int) -> bool:
    """Whether an HTTP status says "not now" rather than "not this" (408, 429, 500, 502-504)."""
    return code in _TRANSIENT_STATUSES


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None when there is none to honour.

    Both forms of RFC 9110 §10.2.3: delay-seconds and an HTTP-date (IMF-fixdate, and the
    obsolete RFC 850 and asctime forms recipients must accept, §5.6.7), measured from ``now``
    (seconds since the epoch, default the current time). A negative delay or a date in the past
    means "retry now": 0. Anything unparseable is None, so the caller falls back to its backoff.
    """
    if value is None:
        return None
    text = value.strip()
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
        when = when.replace(tzinfo=UTC)  # an HTTP-date is always GMT (RFC 9110 §5.6.7)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:  # also refuses NaN
        raise UsageError(f"RetryPolicy.{attribute.name} must not be negative, got {value}")


def _fraction(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 1:
        raise UsageError(f"RetryPolicy.{attribute.name} must be between 0 and 1, got {value}")


def _retry_count(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"The number of retries must be a non-negative integer, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """How many times to try again, and how long to wait before each retry.

    ``retries`` counts the attempts after the first: 0 means one attempt. Before retry ``n``
    the wait is ``base_delay * 2 ** (n - 1)``, capped at ``max_delay``, with *equal jitter*
    (below); a server's ``Retry-After`` lengthens it, up to ``max_retry_after``. ``rng`` is the
    source of the jitter; tests pass a seeded one.
    """

    retries: int = attrs.field(default=DEFAULT_RETRIES, validator=_retry_count)
    base_delay: float = attrs.field(default=0.5, validator=_non_negative)
    max_delay: float = attrs.field(default=30.0, validator=_non_negative)
    max_retry_after: float = attrs.field(default=60.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.5, validator=_fraction)
    rng: random.Random = attrs.field(factory=random.Random, eq=False, repr=False, kw_only=True)

    @property
    def attempts(self) -> int:
        """The most attempts this policy allows: the first one plus ``retries``."""
        return self.retries + 1

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next.

        Equal jitter: the wait is drawn from ``[d * (1 - jitter), d]`` for the backoff ``d``,
        so with the default 0.5 it is at least half the backoff. Full jitter (``[0, d]``, the
        ``jitter=1`` case) spreads the parallel blob downloads that fail together just as well,
        but may retry a struggling server almost at once; equal jitter keeps a floor.
        ``Retry-After`` is a floor too: we never retry sooner than the server asked, but never
        wait longer than ``max_retry_after`` for it (Docker Hub may ask for hours).
        """
        if attempt < 1:
            raise UsageError(f"Attempts are numbered from 1, got {attempt}")
        backoff = min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
        wait = backoff * (1.0 - self.jitter * self.rng.random())
        if retry_after is not None:
            wait = max(wait, min(max(retry_after, 0.0), self.max_retry_after))
        return wait


def classify_error(exc: BaseException) -> tuple[bool, float | None]:
    """The default judge for :func:`run_with_retries`: (transient?, Retry-After seconds).

    Transient: a :class:`CurlError` whose exit code is in the table, a
    :class:`~mesos_uri.errors.TruncatedResponseError`, an :class:`HTTPStatusError` whose
    status is (its ``Retry-After`` parsed). Not transient:
    everything else, including a :class:`~mesos_uri.errors.DigestMismatchError` — a registry
    holding other bytes under a digest serves them again, and a proxy that corrupts bytes is a
    fault to surface, not to paper over.
    """
    if isinstance(exc, TransferInterruptedError):
        return True, None
    if isinstance(exc, CurlError):
        return exc.exit_code is not None and transient_curl_exit(exc.exit_code), None
    if isinstance(exc, TruncatedResponseError):
        return True, None  # the server hung up mid-header-block; curl 7.88 calls that success
    if isinstance(exc, HTTPStatusError):
        if transient_status(exc.code):
            return True, parse_retry_after(exc.retry_after)
        return False, None
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
    is_transient: Callable[[BaseException], tuple[bool, float | None]] = classify_error,
    describe: str,
    sleep: Callable[[float], Awaitable[object]] | None = None,
) -> T:
    """Await ``operation(attempt)`` (attempt 1, 2, ...) until it succeeds or must give up.

    An exception that ``is_transient`` calls transient is retried after :meth:`RetryPolicy.delay`,
    at most ``policy.retries`` times. The error that ends the loop is re-raised as it was; when
    more than one attempt was made, its message gains "(gave up after N attempts: ...)" with what
    each attempt met. With one attempt it is left as is, so ``--retries=0`` keeps the original's
    texts (SPEC.md §8.2). Cancellation is never retried: it is a BaseException, and only
    ``Exception`` is caught. ``describe`` names the exchange in the log (never a credential).
    """
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
            transient, retry_after = is_transient(exc)
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
