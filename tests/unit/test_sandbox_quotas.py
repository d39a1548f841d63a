"""The sandbox's quota rules (sandbox/quotas.py) count as vendors do: GCRA lets a burst and then a pace
through (up to about twice the count in one window), the sliding log never more than the count in any
window. The sliding log is what proves a client keeps to a vendor's strictest count."""

from __future__ import annotations

import pytest

from airflow_vendorauth.sandbox.quotas import QuotaRule


def admitted_times(rule: QuotaRule, seconds: float, step: float) -> list[float]:
    """A caller asking every ``step`` seconds for ``seconds``, releasing each request at once."""
    admitted, now = [], 1_000.0
    while now < 1_000.0 + seconds:
        ok, *_ = rule.admit("client", now)
        if ok:
            admitted.append(now)
            rule.done("client")
        now = round(now + step, 6)
    return admitted


def most_in_any_window(times: list[float], period: float) -> int:
    return max(sum(1 for t in times if start <= t < start + period) for start in times)


def test_the_sliding_log_never_admits_more_than_the_count_in_any_window() -> None:
    times = admitted_times(QuotaRule(rates=["10/minute"], algorithm="sliding"), 180.0, 0.5)
    assert most_in_any_window(times, 60.0) == 10
    assert len(times) == 30  # and no fewer: ten a minute, over three minutes


def test_gcra_admits_a_burst_then_a_pace_more_than_the_count_in_one_window() -> None:
    times = admitted_times(QuotaRule(rates=["10/minute"]), 60.0, 0.5)
    assert most_in_any_window(times, 60.0) > 15  # the burst of 10, then one every 6 s


def test_the_sliding_log_says_when_its_window_has_room_again() -> None:
    rule = QuotaRule(rates=["2/second"], algorithm="sliding")
    assert rule.admit("client", 10.0)[0] and rule.admit("client", 10.4)[0]
    ok, why, retry_after, headers = rule.admit("client", 10.5)
    assert not ok and why == "rate" and retry_after == pytest.approx(0.5)
    assert (b"ratelimit", b"limit=2, remaining=0, reset=1") in headers
    assert rule.admit("client", 11.0)[0]  # the first admission left the window


def test_an_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="gcra or sliding"):
        QuotaRule(rates=["2/second"], algorithm="fixed")


def test_a_full_sliding_log_says_its_reset_as_when_its_oldest_admission_leaves() -> None:
    # review: remaining=0 said reset=ceil(period / count) (GCRA's next unit), 6 s here, while the sliding log
    # has room again only when its oldest admission leaves the window, 55 s later: a client going by the
    # headers alone would be told to come back 49 s too early
    rule = QuotaRule(rates=["10/minute"], algorithm="sliding")
    for i in range(10):
        assert rule.admit("client", 100.0 + i * 0.5)[0]
    ok, why, retry_after, headers = rule.admit("client", 105.0)
    assert why == "rate"
    assert not ok and retry_after == pytest.approx(55.0)
    assert (b"ratelimit", b"limit=10, remaining=0, reset=55") in headers
