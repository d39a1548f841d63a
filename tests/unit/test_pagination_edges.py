"""The edges real APIs produce (issue 22): a server that serves fewer records per page than asked, next
links of every RFC 3986 kind, a plan that turns out wrong, and ``concurrency=N`` meaning N requests at
most, for the sync and the async driver alike."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from typing import Any

import httpx
import pytest

from airflow_vendorauth.exceptions import PaginationError, VendorApiError
from airflow_vendorauth.pagination import (
    NextLinkPagination,
    OffsetPagination,
    PageNumberPagination,
    PageRequest,
    Pagination,
    PagingOptions,
)
from airflow_vendorauth.pagination.drivers import apage_batches, page_batches
from airflow_vendorauth.retry import RetryPolicy


class CappedApi:
    """``records`` records; serves at most ``cap`` a page whatever is asked; announces ``announced``
    (default: the truth) as ``total``; counts the requests in flight."""

    def __init__(self, records: int, cap: int, announced: int | None = None, delay: float = 0.0) -> None:
        self.records, self.cap, self.delay = records, cap, delay
        self.announced = records if announced is None else announced
        self.in_flight = self.peak = self.requests = 0
        self.guard = threading.Lock()

    def answer(self, params: dict) -> httpx.Response:
        asked = int(params.get("per_page") or params.get("limit") or 100)
        size = min(asked, self.cap)
        start = (int(params["page"]) - 1) * size if "page" in params else int(params["offset"])
        items = list(range(min(start, self.records), min(start + size, self.records)))
        return httpx.Response(200, json={"items": items, "total": self.announced})

    def enter(self) -> None:
        with self.guard:
            self.requests += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def leave(self) -> None:
        with self.guard:
            self.in_flight -= 1

    def __call__(self, request: PageRequest) -> httpx.Response:
        self.enter()
        try:
            time.sleep(self.delay)
            return self.answer(request.params)
        finally:
            self.leave()

    async def afetch(self, request: PageRequest) -> httpx.Response:
        self.enter()
        try:
            await asyncio.sleep(self.delay)
            return self.answer(request.params)
        finally:
            self.leave()


def records(api: CappedApi, strategy: Pagination, **options) -> list[int]:  # type: ignore[no-untyped-def]
    return [r for b in page_batches(api, strategy, PagingOptions(**options), "test") for r in b.records]


async def arecords(api: CappedApi, strategy: Pagination, **options) -> list[int]:  # type: ignore[no-untyped-def]
    return [r async for b in apage_batches(api.afetch, strategy, PagingOptions(**options), "test") for r in b.records]


STRATEGIES = {
    "page_number": PageNumberPagination(page_size=100, records_path="items", total_path="total"),
    "offset": OffsetPagination(limit=100, records_path="items", total_path="total"),
    "page_number_no_total": PageNumberPagination(page_size=100, records_path="items"),
    "offset_no_total": OffsetPagination(limit=100, records_path="items"),
}


@pytest.mark.parametrize("concurrency", [1, 3, "auto"])
@pytest.mark.parametrize("style", list(STRATEGIES))
def test_a_server_that_serves_fewer_than_asked_still_gives_every_record_once(style: str, concurrency) -> None:  # type: ignore[no-untyped-def]
    """Issue 22 case 1: 500 records, 100 asked, 50 served (before: 250 by page numbers, 300 by offsets)."""
    assert records(CappedApi(500, cap=50), STRATEGIES[style], concurrency=concurrency) == list(range(500))


@pytest.mark.parametrize("concurrency", [1, 3, "auto"])
@pytest.mark.parametrize("style", list(STRATEGIES))
async def test_the_async_driver_learns_the_served_page_size_too(style: str, concurrency) -> None:  # type: ignore[no-untyped-def]
    assert await arecords(CappedApi(500, cap=50), STRATEGIES[style], concurrency=concurrency) == list(range(500))


def test_the_learned_page_size_is_carried_by_the_checkpointed_request() -> None:
    scan = page_batches(CappedApi(500, cap=50), STRATEGIES["page_number"], PagingOptions(concurrency=1), "test")
    first = next(scan)
    scan.close()
    saved = PageRequest.from_json(first.next_request.to_json())  # type: ignore[union-attr]
    assert saved.size == 50 and saved.params["page"] == 2
    assert records(CappedApi(500, cap=50), STRATEGIES["page_number"], start=saved) == list(range(50, 500))


@pytest.mark.parametrize("style", ["page_number", "offset"])
def test_a_total_that_lies_high_ends_with_what_the_pages_hold_and_says_the_total(style: str) -> None:
    scan = list(page_batches(CappedApi(480, cap=50, announced=500), STRATEGIES[style], PagingOptions(), "test"))
    assert [r for b in scan for r in b.records] == list(range(480))
    assert scan[-1].total == 500  # the consumer compares (operators/streaming.py)


def test_offset_paging_never_skips_a_range_when_a_page_comes_back_short() -> None:
    """A page in the middle of a plan returns fewer records than planned: the scan goes on from where it
    really ended, not from the next planned offset."""

    class ShortOnce(CappedApi):
        def answer(self, params: dict) -> httpx.Response:
            if int(params["offset"]) == 200 and not getattr(self, "shorted", False):
                self.shorted = True
                return httpx.Response(200, json={"items": list(range(200, 230)), "total": self.announced})
            return super().answer(params)

    assert records(ShortOnce(500, cap=100), STRATEGIES["offset"], concurrency=3) == list(range(500))


@pytest.mark.parametrize("n", [1, 2, 4])
def test_concurrency_n_holds_at_most_n_requests_in_flight_sync(n: int) -> None:
    api = CappedApi(2000, cap=100, delay=0.005)
    assert records(api, STRATEGIES["page_number"], concurrency=n) == list(range(2000))
    assert api.peak <= n and (n == 1 or api.peak > 1)


@pytest.mark.parametrize("n", [1, 2, 4])
async def test_concurrency_n_holds_at_most_n_requests_in_flight_async(n: int) -> None:
    """Issue 22 case 5: apaginate(concurrency=4) held 8 (the fixed window had no gate)."""
    api = CappedApi(2000, cap=100, delay=0.005)
    assert await arecords(api, STRATEGIES["page_number"], concurrency=n) == list(range(2000))
    assert api.peak <= n and (n == 1 or api.peak > 1)


async def test_auto_never_exceeds_the_ceiling_sync_or_async() -> None:
    from airflow_vendorauth.pagination.drivers import window_for

    for _ in range(2):
        sync_api, async_api = CappedApi(6000, cap=100, delay=0.002), CappedApi(6000, cap=100, delay=0.002)
        window, threads = window_for(PagingOptions(), ceiling=3)
        assert [r for b in page_batches(sync_api, STRATEGIES["offset"], PagingOptions(), "t", window, threads)
                for r in b.records] == list(range(6000))
        window, _ = window_for(PagingOptions(), ceiling=3)
        assert [r async for b in apage_batches(async_api.afetch, STRATEGIES["offset"], PagingOptions(), "t", window)
                for r in b.records] == list(range(6000))
        assert sync_api.peak <= 3 and async_api.peak <= 3


@pytest.mark.parametrize(
    ("link", "resolved"),
    [
        ("https://host/api/items?page=2", "https://host/api/items?page=2"),
        ("/api/items?page=2", "https://host/api/items?page=2"),  # root-relative: not under the base path
        ("items?page=2", "https://host/api/items?page=2"),
        ("?page=2", "https://host/api/items?page=2"),
    ],
)
def test_a_next_link_resolves_against_the_url_of_the_page_that_carried_it(link: str, resolved: str) -> None:
    """Issue 22 case 2: on the first page too (its request has no URL of its own, only the endpoint)."""
    seen: list[str] = []

    def fetch(request: PageRequest) -> httpx.Response:
        url = request.url or "https://host/api/items"
        seen.append(url)
        page = httpx.URL(url).params.get("page", "1")
        body = {"items": [int(page)], "next": link if page == "1" else None}
        return httpx.Response(200, json=body, request=httpx.Request("GET", url))

    scan = page_batches(fetch, NextLinkPagination(next_path="next", records_path="items"), PagingOptions(), "t")
    assert [r for b in scan for r in b.records] == [1, 2]
    assert seen == ["https://host/api/items", resolved]


@pytest.mark.parametrize(
    ("link", "host", "credentials"),
    [
        ("/v2/items?p=2", "api.kazi.example", True),  # root-relative: the API's origin, the API's credentials
        ("https://elsewhere.example/items?p=2", "elsewhere.example", False),  # another origin: none of them
    ],
)
def test_a_next_link_gets_credentials_only_on_the_apis_origin(
    monkeypatch: pytest.MonkeyPatch, link: str, host: str, credentials: bool
) -> None:
    from tests.unit.fakes import FakeVendor, hook_for, set_connection

    set_connection(monkeypatch, "kazi")
    fake = FakeVendor("kazi")
    fake.api = lambda request: httpx.Response(
        200, json={"items": [request.url.params.get("p", "1")], "next": link if "p" not in request.url.params else None}
    )
    with hook_for("kazi", transport=fake.transport()) as hook:
        strategy = NextLinkPagination(next_path="next", records_path="items")
        assert list(hook.paginate("/v1/items", pagination=strategy)) == ["1", "2"]
    second = fake.api_requests[-1]
    assert second.url.host == host
    for header in ("Authorization", "Ocp-Apim-Subscription-Key"):
        assert (header in second.headers) is credentials


class DroppingCap(CappedApi):
    """Issue 31 case 10: 100 a page, then 50 from record 200 on, and no total announced. Page numbers keep
    the ranges of the size asked (page 3 is records 200-249, page 4 300-349)."""

    def answer(self, params: dict) -> httpx.Response:
        asked = int(params.get("per_page") or params.get("limit"))
        start = (int(params["page"]) - 1) * asked if "page" in params else int(params["offset"])
        size = min(asked, 50) if start >= 200 else asked
        return httpx.Response(200, json={"items": list(range(min(start, self.records), min(start + size, self.records)))})


NO_TOTAL = {
    "page_number": PageNumberPagination(page_size=100, records_path="items"),
    "offset": OffsetPagination(limit=100, records_path="items"),
}


@pytest.mark.parametrize("concurrency", [1, 3, "auto"])
def test_offsets_without_a_total_go_on_past_a_page_size_that_drops_mid_scan(concurrency) -> None:  # type: ignore[no-untyped-def]
    """Before: the 50-record page at offset 200 was taken for the last: 250 of 500 records, no error."""
    api = DroppingCap(500, cap=100)
    assert records(api, NO_TOTAL["offset"], concurrency=concurrency) == list(range(500))
    assert api.requests == 2 + 6 + 1  # two pages of 100, six of 50, one empty page that confirms the end


@pytest.mark.parametrize("concurrency", [1, 3, "auto"])
async def test_offsets_without_a_total_go_on_past_a_page_size_that_drops_mid_scan_async(concurrency) -> None:  # type: ignore[no-untyped-def]
    assert await arecords(DroppingCap(500, cap=100), NO_TOTAL["offset"], concurrency=concurrency) == list(range(500))


@pytest.mark.parametrize("concurrency", [1, 3, "auto"])
def test_page_numbers_without_a_total_fail_on_a_page_size_that_drops_mid_scan_naming_the_fix(concurrency) -> None:  # type: ignore[no-untyped-def]
    """Page 4 after a short page 3 holds records: page numbers no longer say where records are (250-299
    were never served): a failed scan naming page and fix, not 250 records and a success."""
    api, got = DroppingCap(500, cap=100), []
    with pytest.raises(PaginationError, match=r"test: page 3 held fewer records than the 100 .* page 4 holds 50 more.*page_size"):
        for batch in page_batches(api, NO_TOTAL["page_number"], PagingOptions(concurrency=concurrency), "test"):
            got.extend(batch.records)
    assert got == list(range(250))  # page 4's records were not handed out


@pytest.mark.parametrize("style", list(NO_TOTAL))
def test_confirm_short_page_false_trusts_a_short_page_as_the_end(style: str) -> None:
    """For APIs that refuse a request past their end: the short page is the end, no request more."""
    api = DroppingCap(500, cap=100)
    strategy = dataclasses.replace(NO_TOTAL[style], confirm_short_page=False)
    assert records(api, strategy) == list(range(250)) and api.requests == 3


@pytest.mark.parametrize("style", list(NO_TOTAL))
def test_a_short_last_page_costs_one_request_more_and_still_ends(style: str, caplog: pytest.LogCaptureFixture) -> None:
    """Kayzen's contract (stop on an empty or short page) still ends the scan: 230 records, 100 a page,
    the 30-record page is confirmed by one empty page, logged."""
    api = CappedApi(230, cap=100)
    with caplog.at_level(logging.INFO, logger="airflow_vendorauth.pagination"):
        scan = list(page_batches(api, NO_TOTAL[style], PagingOptions(), "kayzen /v1/meta/campaigns"))
    assert [r for b in scan for r in b.records] == list(range(230))
    assert api.requests == 4 and scan[-1].records == [] and scan[-1].next_request is None
    assert any("the short page was the last" in r.getMessage() and "confirm_short_page" in r.getMessage() for r in caplog.records)


def test_a_resumed_confirmation_is_still_a_confirmation() -> None:
    """The checkpoint after a short page keeps what it confirms: a retry that resumes there still refuses
    records on the next page instead of taking them as a full page."""
    scan = page_batches(DroppingCap(500, cap=100), NO_TOTAL["page_number"], PagingOptions(concurrency=1), "test")
    checkpoints = [next(scan).next_request for _ in range(3)]
    scan.close()
    saved = PageRequest.from_json(json.loads(json.dumps(checkpoints[2].to_json())))  # type: ignore[union-attr]
    assert saved.confirms is not None and saved.params["page"] == 4
    with pytest.raises(PaginationError, match="changed its page size mid-scan"):
        records(DroppingCap(500, cap=100), NO_TOTAL["page_number"], start=saved)


def drf_pages(monkeypatch: pytest.MonkeyPatch, records: int, missing: int | None = None) -> Any:
    """An oauth2 connection to a Django REST framework API by page numbers, its total not described:
    ``{"results": [...]}``, 10 a page, and 404 ``Invalid page.`` past the end (and at page ``missing``)."""
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

    conn = {"conn_type": "oauth2", "host": "https://drf.example/api", "login": "c", "password": "s",
            "extra": {"auth_url": "https://drf.example/token",
                      "pagination": {"style": "page_number", "page_size": 10, "records_path": "results"}}}
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(conn))
    asked: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "at", "token_type": "Bearer", "expires_in": 3600})
        page = int(request.url.params["page"])
        asked.append(page)
        start = (page - 1) * 10
        if start >= records or page == missing:
            return httpx.Response(404, json={"detail": "Invalid page."})
        return httpx.Response(200, json={"results": list(range(start, min(start + 10, records)))})

    transport = httpx.MockTransport(handle)  # sync and async alike
    return OAuth2Hook(transport=transport, async_transport=transport, retry_policy=RetryPolicy(max_attempts=1)), asked


@pytest.mark.parametrize("concurrency", [1, "auto"])
def test_a_404_to_the_page_that_confirms_a_short_page_is_the_end(monkeypatch: pytest.MonkeyPatch, concurrency) -> None:  # type: ignore[no-untyped-def]
    """Django REST framework answers a page past the end with 404: after a short page, that is the end."""
    hook, asked = drf_pages(monkeypatch, 23)
    assert list(hook.paginate("/items", concurrency=concurrency)) == list(range(23))
    assert asked == [1, 2, 3, 4]


async def test_a_404_to_the_page_that_confirms_a_short_page_is_the_end_async(monkeypatch: pytest.MonkeyPatch) -> None:
    hook, asked = drf_pages(monkeypatch, 23)
    try:
        assert [r async for r in hook.apaginate("/items")] == list(range(23))
    finally:
        await hook.aclose()
    assert asked == [1, 2, 3, 4]


def test_a_404_to_any_other_page_still_fails_the_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    hook, _ = drf_pages(monkeypatch, 23, missing=2)
    with pytest.raises(VendorApiError) as caught:
        list(hook.paginate("/items"))
    assert caught.value.status == 404


class RepeatsLastPage(CappedApi):
    """Past its end, the API answers with its last page again (some frameworks clamp the page asked)."""

    def answer(self, params: dict) -> httpx.Response:
        asked = int(params.get("per_page") or params.get("limit"))
        start = (int(params["page"]) - 1) * asked if "page" in params else int(params["offset"])
        last = (self.records - 1) // asked * asked
        start = min(start, last)
        return httpx.Response(200, json={"items": list(range(start, min(start + asked, self.records)))})


@pytest.mark.parametrize("style", list(NO_TOTAL))
def test_an_api_that_repeats_its_last_page_past_the_end_ends_without_a_record_twice(style: str) -> None:
    api = RepeatsLastPage(230, cap=100)
    assert records(api, NO_TOTAL[style], max_pages=20) == list(range(230))  # bounded: fails, not hangs, if it loops
    assert api.requests == 4  # the short page 200-229, then the same page again: the end
