"""The edges real APIs produce (issue 22): a server that serves fewer records per page than asked, next
links of every RFC 3986 kind, a plan that turns out wrong, and ``concurrency=N`` meaning N requests at
most, for the sync and the async driver alike."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from airflow_vendorauth.pagination import (
    NextLinkPagination,
    OffsetPagination,
    PageNumberPagination,
    PageRequest,
    Pagination,
    PagingOptions,
)
from airflow_vendorauth.pagination.drivers import apage_batches, page_batches


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
