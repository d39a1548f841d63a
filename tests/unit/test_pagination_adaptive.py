"""concurrency="auto" (pagination/adaptive.py): additive increase while pages come back clean,
halving on a 429 or a timeout, never above the vendor's ceiling; records still in order, exactly once."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from airflow_vendorauth.pagination import PageNumberPagination
from airflow_vendorauth.pagination.adaptive import AdaptiveConcurrency
from airflow_vendorauth.retry import RetryPolicy
from tests.unit.fakes import ThrottlingApi, hook_for, set_connection


class Clock:
    """Time that passes as the test says: each page takes ``per_page(limit)`` seconds of scan time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_pages(window: AdaptiveConcurrency, clock: Clock, pages: int, per_page) -> list[int]:  # type: ignore[no-untyped-def]
    limits = []
    for _ in range(pages):
        clock.now += per_page(window.concurrency)
        window.page_done()
        limits.append(window.concurrency)
    return limits


def test_it_grows_while_more_in_flight_makes_the_scan_faster() -> None:
    clock = Clock()
    window = AdaptiveConcurrency(ceiling=8, start=2, clock=clock)
    assert window.concurrency == 2 and AdaptiveConcurrency(ceiling=8).concurrency == 4  # by default: half the ceiling
    limits = run_pages(window, clock, 400, lambda limit: 0.1 / limit)  # latency-bound: parallel pages help
    assert limits[-1] == 8 and max(limits) == 8  # up to the ceiling, never past it
    assert limits == sorted(limits)  # one step at a time, never back


def test_it_stops_growing_when_a_step_up_buys_nothing() -> None:
    clock = Clock()
    window = AdaptiveConcurrency(ceiling=8, start=2, clock=clock)
    limits = run_pages(window, clock, 800, lambda limit: 0.1 / min(limit, 4))  # saturated beyond 4
    assert limits[-1] <= 5 and 4 in limits[-50:]  # it probes past 4, sees no gain, steps back
    assert sum(limit > 5 for limit in limits) <= 2 * 16  # the slow-start probe at 8 lasts one sample


def test_it_does_not_climb_on_noise_alone() -> None:
    """A CPU-bound scan (more in flight buys nothing) with +-15 % jitter per page: the limit must stay near
    where it started, not ratchet up on lucky samples."""
    import random

    jitter = random.Random(7)
    clock = Clock()
    window = AdaptiveConcurrency(ceiling=8, start=4, clock=clock)
    limits = run_pages(window, clock, 2000, lambda limit: 0.004 * jitter.uniform(0.85, 1.15))
    assert sum(limit > 5 for limit in limits) <= 2 * 16  # one slow-start probe, not a climb
    assert sum(limits) / len(limits) < 4.6 and limits[-1] <= 5


def test_the_first_sample_is_a_warm_up() -> None:
    """The first pages pay for connecting: the second sample, faster only because connections are warm,
    must not be read as the gain of a step up."""
    clock = Clock()
    window = AdaptiveConcurrency(ceiling=8, start=4, clock=clock)
    limits = run_pages(window, clock, 16, lambda limit: 0.02)  # connecting: slow
    limits += run_pages(window, clock, 1000, lambda limit: 0.004)  # warm, and more in flight buys nothing
    assert limits[-1] == 4 and sum(limit > 5 for limit in limits) <= 2 * 16


def test_a_slow_api_gets_its_ceiling_within_a_few_samples() -> None:
    """Latency-bound (each page waits on the network): slow start doubles to the ceiling at once, where one
    step per sample would spend a short scan climbing."""
    clock = Clock()
    window = AdaptiveConcurrency(ceiling=8, start=4, clock=clock)
    limits = run_pages(window, clock, 200, lambda limit: 0.1 / limit)
    assert limits.index(8) <= 3 * 16  # the warm-up sample, then one doubling
    assert limits[-100:] == [8] * 100


def test_it_halves_on_throttling_once_per_burst_and_never_goes_below_one() -> None:
    window = AdaptiveConcurrency(ceiling=8, start=8)
    for _ in range(5):  # one burst: 8 in flight, 5 refused at once
        window.throttle()
    assert window.concurrency == 4 and window.throttled == 5  # halved once, not five times
    for _ in range(4):  # separate bursts (the pages in flight came back in between): halved each time
        for _ in range(window.concurrency):
            window.page_done()
        window.throttle()
    assert window.concurrency == 1 and window.throttled == 9


def test_a_burst_of_refusals_says_how_many_the_api_allows() -> None:
    """16 in flight against an API that allows 13: 3 refusals in one burst mean 13, not 8 nor 1."""
    window = AdaptiveConcurrency(ceiling=16, start=16)
    for _ in range(3):
        window.throttle()
    assert window.concurrency == 13


def test_after_a_throttle_it_holds_before_probing_again() -> None:
    clock = Clock()
    window = AdaptiveConcurrency(ceiling=16, start=8, clock=clock)
    run_pages(window, clock, 16, lambda limit: 0.04)  # the warm-up sample
    window.throttle()  # one refusal of 8 in flight: 7 allowed
    limits = run_pages(window, clock, 9 * 16, lambda limit: 0.04 / limit)  # latency-bound: a step up would pay
    assert set(limits) == {7}  # no probe (and its Retry-After) right after the API said no


@pytest.mark.parametrize("allowed", [3, 100])
def test_an_auto_scan_backs_off_when_throttled_and_keeps_every_record_in_order(
    monkeypatch: pytest.MonkeyPatch, allowed: int
) -> None:
    set_connection(monkeypatch, "clazar")  # a ceiling of 4 pages in flight
    api = ThrottlingApi(allowed)
    hook = hook_for("clazar", transport=httpx.MockTransport(api), retry_policy=RetryPolicy(max_attempts=20, retry_after_cap_seconds=0.05))
    strategy = PageNumberPagination(page_size=100, records_path="items", total_path="total")
    records = list(hook.paginate("/items", pagination=strategy))
    assert records == list(range(10_000))
    assert api.peak <= hook.client.max_concurrency == 4
    if allowed == 3:
        assert api.throttled > 0  # it tried, got pushed back, and slowed down
    else:
        assert api.throttled == 0 and api.peak > 1  # unthrottled, it used the room it had


def test_a_cursor_api_gets_one_page_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "smartrecruiters")
    api = ThrottlingApi(allowed=100)

    def cursor(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return api(request)
        start = int(request.url.params.get("pageId", 0))
        with api.guard:
            api.in_flight += 1
            api.peak = max(api.peak, api.in_flight)
        time.sleep(0.005)
        with api.guard:
            api.in_flight -= 1
        body = {"content": list(range(start, min(start + 100, 500))), "totalFound": 500}
        if start + 100 < 500:
            body["nextPageId"] = str(start + 100)
        return httpx.Response(200, content=json.dumps(body))

    hook = hook_for("smartrecruiters", transport=httpx.MockTransport(cursor))
    assert list(hook.paginate("/jobs")) == list(range(500))
    assert api.peak == 1  # nothing can be known ahead of a cursor
