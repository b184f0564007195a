"""The retry policy: which failures are transient, how long to wait, and the retry loop."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_uri._retry import (
    DEFAULT_RETRIES,
    RetryPolicy,
    classify_error,
    parse_retry_after,
    run_with_retries,
    transient_status,
)
from mesos_uri.errors import (
    AuthError,
    CurlError,
    DecodeError,
    DigestMismatchError,
    FetchError,
    HTTPStatusError,
    ManifestError,
    UsageError,
)
from mesos_uri.fetcher import Flags

# Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110 §5.6.7.
RFC_EXAMPLE_EPOCH = 784111777.0


# -- the tables ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [7, 16, 18, 28, 52, 55, 56, 92])
def test_network_failures_are_transient_curl_exits(code: int) -> None:
    assert classify_error(CurlError("x", exit_code=code)) == (True, None)


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (0, "success"),
        (1, "unsupported protocol"),
        (3, "malformed URL"),
        (6, "could not resolve host"),
        (22, "HTTP error with --fail"),
        (35, "TLS handshake failed: plain HTTP on the port, it fails again"),
        (47, "too many redirects"),
        (60, "peer certificate cannot be verified"),
        (-9, "killed by a signal"),
    ],
)
def test_other_curl_exits_are_not_transient(code: int, meaning: str) -> None:
    assert classify_error(CurlError("x", exit_code=code)) == (False, None), meaning


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
def test_curl_retry_statuses_are_transient(code: int) -> None:
    assert transient_status(code)


@pytest.mark.parametrize("code", [200, 206, 301, 400, 401, 403, 404, 405, 416, 501, 505])
def test_other_statuses_are_not_transient(code: int) -> None:
    assert not transient_status(code)


# -- Retry-After ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), (" 5 ", 5.0), ("0", 0.0), ("-3", 0.0), ("1.5", 1.5)],
)
def test_retry_after_delay_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850 form
        "Sun Nov  6 08:49:37 1994",  # obsolete asctime form
    ],
)
def test_retry_after_http_date_in_each_form_rfc_9110_accepts(value: str) -> None:
    assert parse_retry_after(value, now=RFC_EXAMPLE_EPOCH - 90) == pytest.approx(90.0)


def test_retry_after_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=RFC_EXAMPLE_EPOCH + 5) == 0.0


def test_retry_after_date_is_measured_from_the_current_time_by_default() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT") == 0.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT")


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "5s", "1e3", "0x10", "inf", "NaN", "Sun, 99 Nov 1994 08:49:37 GMT"],
)
def test_unusable_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


@given(st.text(max_size=60))
def test_retry_after_never_raises_and_is_never_negative(value: str) -> None:
    seconds = parse_retry_after(value, now=RFC_EXAMPLE_EPOCH)
    assert seconds is None or seconds >= 0


# -- the policy ----------------------------------------------------------------------------------


def test_default_policy_gives_five_attempts() -> None:
    assert DEFAULT_RETRIES == 4
    assert RetryPolicy().attempts == 5
    assert RetryPolicy(retries=0).attempts == 1


def test_backoff_doubles_up_to_max_delay_without_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=5.0, jitter=0.0)
    delays = [policy.delay(attempt, None) for attempt in range(1, 8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_equal_jitter_keeps_each_delay_between_half_and_all_of_the_backoff() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0, jitter=0.5, rng=random.Random(7))
    for attempt in range(1, 10):
        backoff = min(30.0, 2.0 ** (attempt - 1))
        for _ in range(50):
            assert backoff / 2 <= policy.delay(attempt, None) <= backoff


def test_jitter_spreads_delays_and_a_seed_repeats_them() -> None:
    def delays(seed: int) -> list[float]:
        policy = RetryPolicy(rng=random.Random(seed))
        return [policy.delay(3, None) for _ in range(20)]

    assert delays(1234) == delays(1234)
    assert len(set(delays(1234))) == 20
    assert delays(1234) != delays(4321)


def test_full_jitter_may_go_down_to_zero() -> None:
    policy = RetryPolicy(base_delay=1.0, jitter=1.0, rng=random.Random(3))
    delays = [policy.delay(1, None) for _ in range(200)]
    assert min(delays) < 0.05
    assert max(delays) <= 1.0


def test_retry_after_is_a_floor_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0, max_retry_after=60.0, jitter=0.0)
    assert policy.delay(1, 7.0) == 7.0  # the server asked for longer than the backoff
    assert policy.delay(6, 2.0) == 16.0  # never sooner than our own backoff
    assert policy.delay(1, 3600.0) == 60.0  # Docker Hub may ask for an hour
    assert policy.delay(1, 0.0) == 0.5
    assert policy.delay(1, -5.0) == 0.5


def test_late_attempts_do_not_overflow() -> None:
    assert RetryPolicy(jitter=0.0).delay(100_000, None) == 30.0


@pytest.mark.parametrize("retries", [-1, 1.5, True])
def test_invalid_retry_counts_are_usage_errors(retries: object) -> None:
    # Given as an option of the fetcher, which validates it before any policy is made.
    with pytest.raises(UsageError):
        Flags(retries=retries)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"base_delay": -0.1},
        {"max_delay": float("nan")},
        {"max_retry_after": -1.0},
        {"jitter": 1.5},
        {"jitter": -0.1},
    ],
)
def test_invalid_policies_are_usage_errors(options: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        RetryPolicy(**options)  # type: ignore[arg-type]


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(UsageError, match="numbered from 1"):
        RetryPolicy().delay(0, None)


# -- classify_error ------------------------------------------------------------------------------


def test_transient_curl_failure_is_retried_without_retry_after() -> None:
    assert classify_error(CurlError("reset", exit_code=56)) == (True, None)


@pytest.mark.parametrize(
    "exc",
    [
        CurlError("no such host", exit_code=6),
        CurlError("curl is not installed"),  # exit_code None: it never started
        HTTPStatusError("Not Found", code=404, retry_after="5"),
        HTTPStatusError("Unauthorized", code=401),
        DigestMismatchError("mismatch", expected="sha256:aa", actual="sha256:bb"),
        ManifestError("too large"),
        DecodeError("Decoding failed"),
        AuthError("no token"),
        UsageError("bad flag"),
        ValueError("not ours"),
    ],
)
def test_permanent_failures_are_not_retried(exc: BaseException) -> None:
    assert classify_error(exc) == (False, None)


def test_transient_status_carries_its_retry_after() -> None:
    assert classify_error(HTTPStatusError("429", code=429, retry_after="12")) == (True, 12.0)
    assert classify_error(HTTPStatusError("503", code=503, retry_after="later")) == (True, None)
    assert classify_error(HTTPStatusError("502", code=502)) == (True, None)


# -- run_with_retries ----------------------------------------------------------------------------


class Clock:
    """A sleep that records what it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


def failing(
    *failures: Exception, result: str = "done"
) -> tuple[list[int], Callable[[int], Awaitable[str]]]:
    """An operation that raises ``failures`` in turn, then returns ``result``."""
    attempts: list[int] = []

    async def operation(attempt: int) -> str:
        attempts.append(attempt)
        if len(attempts) <= len(failures):
            raise failures[len(attempts) - 1]
        return result

    return attempts, operation


def unavailable() -> HTTPStatusError:
    return HTTPStatusError("Unexpected HTTP response '503 Service Unavailable'", code=503)


def reset() -> CurlError:
    return CurlError("Failed to perform 'curl': reset", exit_code=56, stderr="reset")


NO_JITTER = RetryPolicy(retries=4, base_delay=1.0, jitter=0.0)


@pytest.mark.anyio
async def test_transient_failures_are_retried_until_success() -> None:
    clock = Clock()
    attempts, operation = failing(unavailable(), reset())
    result = await run_with_retries(operation, policy=NO_JITTER, describe="blob", sleep=clock.sleep)
    assert result == "done"
    assert attempts == [1, 2, 3]
    assert clock.delays == [1.0, 2.0]


@pytest.mark.anyio
async def test_gives_up_after_exactly_retries_plus_one_attempts() -> None:
    clock = Clock()
    last = unavailable()
    attempts, operation = failing(unavailable(), reset(), unavailable(), reset(), last, reset())
    with pytest.raises(HTTPStatusError) as raised:
        await run_with_retries(operation, policy=NO_JITTER, describe="blob", sleep=clock.sleep)
    assert attempts == [1, 2, 3, 4, 5]
    assert clock.delays == [1.0, 2.0, 4.0, 8.0]
    assert raised.value is last
    assert raised.value.code == 503
    assert str(raised.value) == (
        "Unexpected HTTP response '503 Service Unavailable' (gave up after 5 attempts: "
        "HTTP 503, curl exit 56 (receive error), HTTP 503, curl exit 56 (receive error), HTTP 503)"
    )


@pytest.mark.anyio
async def test_the_last_error_keeps_its_type_and_attributes() -> None:
    attempts, operation = failing(reset(), reset(), reset())
    with pytest.raises(CurlError) as raised:
        await run_with_retries(
            operation, policy=RetryPolicy(retries=2), describe="blob", sleep=Clock().sleep
        )
    assert attempts == [1, 2, 3]
    assert raised.value.exit_code == 56
    assert raised.value.stderr == "reset"
    assert raised.value.attempts == ("curl exit 56 (receive error)",) * 3
    assert str(raised.value).endswith(
        "(gave up after 3 attempts: " + ", ".join(["curl exit 56 (receive error)"] * 3) + ")"
    )


@pytest.mark.anyio
async def test_a_permanent_failure_is_raised_at_once_unchanged() -> None:
    clock = Clock()
    missing = HTTPStatusError("Unexpected HTTP response '404 Not Found'", code=404)
    attempts, operation = failing(missing)
    with pytest.raises(HTTPStatusError) as raised:
        await run_with_retries(operation, policy=NO_JITTER, describe="blob", sleep=clock.sleep)
    assert attempts == [1]
    assert clock.delays == []
    assert str(raised.value) == "Unexpected HTTP response '404 Not Found'"


@pytest.mark.anyio
async def test_a_permanent_failure_after_retries_lists_every_attempt() -> None:
    missing = HTTPStatusError("Unexpected HTTP response '404 Not Found'", code=404)
    attempts, operation = failing(unavailable(), missing)
    with pytest.raises(HTTPStatusError, match=r"gave up after 2 attempts: HTTP 503, HTTP 404\)$"):
        await run_with_retries(operation, policy=NO_JITTER, describe="blob", sleep=Clock().sleep)
    assert attempts == [1, 2]


@pytest.mark.anyio
async def test_zero_retries_means_one_attempt_and_the_original_text() -> None:
    clock = Clock()
    attempts, operation = failing(unavailable())
    with pytest.raises(HTTPStatusError) as raised:
        await run_with_retries(
            operation, policy=RetryPolicy(retries=0), describe="blob", sleep=clock.sleep
        )
    assert attempts == [1]
    assert clock.delays == []
    assert str(raised.value) == "Unexpected HTTP response '503 Service Unavailable'"


@pytest.mark.anyio
async def test_retry_after_from_the_judge_sets_the_wait() -> None:
    clock = Clock()
    limited = HTTPStatusError("Too Many Requests", code=429, retry_after="9")
    attempts, operation = failing(limited)
    await run_with_retries(operation, policy=NO_JITTER, describe="manifest", sleep=clock.sleep)
    assert attempts == [1, 2]
    assert clock.delays == [9.0]


@pytest.mark.anyio
async def test_the_judge_decides_what_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    attempts, operation = failing(DecodeError("garbled"), DecodeError("garbled"))

    def everything(exc: BaseException) -> tuple[bool, float | None]:
        return True, 0.25

    monkeypatch.setattr("mesos_uri._retry.classify_error", everything)
    result = await run_with_retries(operation, policy=NO_JITTER, describe="x", sleep=clock.sleep)
    assert result == "done"
    assert attempts == [1, 2, 3]
    assert clock.delays == [1.0, 2.0]


@pytest.mark.anyio
async def test_an_exception_outside_the_family_is_not_rewritten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts, operation = failing(ValueError("bug"), ValueError("bug"))

    def everything(exc: BaseException) -> tuple[bool, float | None]:
        return True, None

    monkeypatch.setattr("mesos_uri._retry.classify_error", everything)
    with pytest.raises(ValueError, match=r"^bug$"):
        await run_with_retries(
            operation, policy=RetryPolicy(retries=1), describe="x", sleep=Clock().sleep
        )
    assert attempts == [1, 2]


@pytest.mark.anyio
async def test_cancellation_is_never_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    attempts: list[int] = []
    judged: list[BaseException] = []

    def everything(exc: BaseException) -> tuple[bool, float | None]:
        judged.append(exc)
        return True, None

    monkeypatch.setattr("mesos_uri._retry.classify_error", everything)

    async def operation(attempt: int) -> None:
        attempts.append(attempt)
        await anyio.sleep(10)

    with anyio.CancelScope() as scope:
        scope.deadline = anyio.current_time() + 0.05
        await run_with_retries(operation, policy=NO_JITTER, describe="x", sleep=clock.sleep)
    assert scope.cancelled_caught
    assert attempts == [1]
    assert judged == []
    assert clock.delays == []


@pytest.mark.anyio
async def test_cancelling_the_wait_between_attempts_stops_the_loop() -> None:
    attempts, operation = failing(*[unavailable() for _ in range(10)])
    with anyio.move_on_after(0.2) as scope:
        await run_with_retries(
            operation, policy=RetryPolicy(retries=10, base_delay=60.0), describe="blob"
        )
    assert scope.cancelled_caught
    assert attempts == [1]


@given(
    retries=st.integers(min_value=0, max_value=8),
    outcomes=st.lists(st.sampled_from(["503", "reset", "404", "ok"]), min_size=1, max_size=12),
)
def test_attempts_never_exceed_the_budget(retries: int, outcomes: list[str]) -> None:
    attempts: list[int] = []

    async def operation(attempt: int) -> str:
        attempts.append(attempt)
        outcome = outcomes[min(attempt, len(outcomes)) - 1]
        if outcome == "503":
            raise unavailable()
        if outcome == "reset":
            raise reset()
        if outcome == "404":
            raise HTTPStatusError("Not Found", code=404)
        return "ok"

    async def main() -> str | FetchError:
        try:
            return await run_with_retries(
                operation,
                policy=RetryPolicy(retries=retries),
                describe="x",
                sleep=Clock().sleep,
            )
        except FetchError as exc:
            return exc

    def seen(attempt: int) -> str:
        return outcomes[min(attempt, len(outcomes)) - 1]

    # The loop ends at the first success or permanent failure, or when the budget is spent.
    expected = next((n for n in range(1, retries + 2) if seen(n) in ("ok", "404")), retries + 1)
    outcome = anyio.run(main)
    assert attempts == list(range(1, expected + 1))
    assert len(attempts) <= retries + 1
    if seen(expected) == "ok":
        assert outcome == "ok"
    else:
        assert isinstance(outcome, FetchError)
        assert (f"gave up after {expected} attempts" in str(outcome)) == (expected > 1)
