"""The retry policy shared by token requests and API calls, and the call flow that applies it.

tenacity has no default stop, so every policy is bounded twice: by attempts and by total time, and a
sleep that would cross the time budget ends the retries instead (``stop_before_delay``). A server's
``Retry-After`` is honoured (seconds or an HTTP date) but capped: a proxy that says 3600 must not hold
a worker slot for an hour.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
import pendulum
import tenacity

from airflow_vendorauth import stopping

#: Statuses worth another try: throttling and the server side's passing troubles.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds and pacing of retries. ``max_attempts`` counts the first try."""

    max_attempts: int = 5
    max_elapsed_seconds: float = 120.0
    initial_wait_seconds: float = 0.5
    max_wait_seconds: float = 30.0
    retry_after_cap_seconds: float = 60.0

    @classmethod
    def from_max_retries(cls, max_retries: int, **overrides: Any) -> RetryPolicy:
        return cls(max_attempts=max_retries + 1, **overrides)


def parse_retry_after(value: str | None, now: pendulum.DateTime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent or odd."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (now or pendulum.now("UTC")).timestamp())


def is_retryable(exc: BaseException) -> bool:
    """Our errors say whether they are retryable; anything else is not ours to retry."""
    return bool(getattr(exc, "retryable", False))


class _WaitHonouringRetryAfter(tenacity.wait.wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        # "Full jitter": uniform in [0, min(initial * 2^n, max)], so workers hit by the same outage
        # spread their retries instead of returning in lock step.
        self.backoff = tenacity.wait_random_exponential(
            multiplier=policy.initial_wait_seconds, max=policy.max_wait_seconds
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float):
            return min(float(retry_after), self.policy.retry_after_cap_seconds)
        return float(self.backoff(retry_state))


class _StopWhenTheTaskStops(tenacity.stop.stop_base):
    """No more tries once Airflow told the task to stop (its SIGKILL follows in 5 s): the call's error goes
    on at once, and a stopped scan does not wait out a backoff."""

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return stopping.stop_asked()


def retry_arguments(
    policy: RetryPolicy,
    *,
    retry_on: Callable[[BaseException], bool] = is_retryable,
    logger: logging.Logger,
    what: str,
    on_retry: Callable[[BaseException | None], None] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` and ``tenacity.AsyncRetrying``: one policy, two loops.
    ``on_retry`` hears of each failure about to be retried (the paging window slows down on throttling)."""

    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if on_retry is not None:
            on_retry(exc)
        sleep = retry_state.next_action.sleep if retry_state.next_action else 0.0
        logger.warning(
            "%s failed (attempt %d of %d): %s; retrying in %.2f s",
            what,
            retry_state.attempt_number,
            policy.max_attempts,
            exc,
            sleep,
        )

    return {
        "stop": tenacity.stop_after_attempt(policy.max_attempts)
        | tenacity.stop_before_delay(policy.max_elapsed_seconds)
        | _StopWhenTheTaskStops(),
        "wait": _WaitHonouringRetryAfter(policy),
        "retry": tenacity.retry_if_exception(retry_on),
        "reraise": True,
        "before_sleep": before_sleep,
    }


# ---- one call with retries, its decisions written once for sync and async -------------------------
#
# :func:`call_flow` is a generator in the manner of httpx's auth flows: it yields what to do (send the
# request once, or sleep) and receives what happened (a response, or the transport error). tenacity's
# own state machine (``Retrying.iter``) makes the retry decisions from the declarative policy, exactly
# as its ``for attempt in Retrying(...)`` loop would. :func:`run_call` and :func:`arun_call` do the
# I/O and nothing else.

Outcome = httpx.Response | httpx.TransportError
#: What a call yields once accepted: the response (API calls) or what it was turned into (a token).
T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """Send the request once; reply with the response or the transport error."""


@dataclass(frozen=True)
class Sleep:
    """Wait this long before the next attempt; reply None."""

    seconds: float


SEND = Send()
CallStep = Send | Sleep
CallFlow = Generator[CallStep, Outcome | None, T]


def call_flow(retrying: tenacity.Retrying, accept: Callable[[Outcome], T]) -> CallFlow[T]:
    """Attempts until ``accept`` turns an outcome into a result, raises what must not be retried, or
    the policy stops (then its last error is raised). One ``retrying`` serves every call at once: the
    per-call state is the ``RetryCallState`` made here (``iter`` keeps none between two steps)."""
    retrying.begin()  # tenacity's per-thread statistics, which its retry steps update
    state = tenacity.RetryCallState(retrying, fn=None, args=(), kwargs={})
    while True:
        action: Any = retrying.iter(state)
        if isinstance(action, tenacity.DoAttempt):
            outcome = yield SEND
            try:
                state.set_result(accept(outcome))  # type: ignore[arg-type]
            except BaseException:  # noqa: BLE001 - handed to tenacity, which re-raises what it won't retry
                state.set_exception(sys.exc_info())  # type: ignore[arg-type]
        elif isinstance(action, tenacity.DoSleep):
            state.prepare_for_next_attempt()
            yield Sleep(float(action))
        else:
            return action  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Done(Generic[T]):
    """The flow ended with this result."""

    result: T


def _next(flow: CallFlow[T], reply: Outcome | None) -> CallStep | Done[T]:
    try:
        return flow.send(reply)
    except StopIteration as done:
        return Done(done.value)


def _sleep(seconds: float) -> Outcome | None:
    """Wait, then reply None to the flow."""
    time.sleep(seconds)
    return None


async def _asleep(seconds: float) -> Outcome | None:
    await asyncio.sleep(seconds)
    return None


def run_call(flow: CallFlow[T], send: Callable[[], Outcome]) -> T:
    """Drive a call flow with blocking I/O; ``send`` returns the response or the transport error."""
    step = _next(flow, None)
    while not isinstance(step, Done):
        step = _next(flow, send() if isinstance(step, Send) else _sleep(step.seconds))
    return step.result


async def arun_call(flow: CallFlow[T], send: Callable[[], Awaitable[Outcome]]) -> T:
    """Drive a call flow on the event loop."""
    step = _next(flow, None)
    while not isinstance(step, Done):
        step = _next(flow, await send() if isinstance(step, Send) else await _asleep(step.seconds))
    return step.result
