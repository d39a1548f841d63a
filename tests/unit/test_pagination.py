"""Pagination strategies: stop rules, caps, resumption, and clear refusals of odd pages."""

from __future__ import annotations

import httpx
import pytest

from airflow_vendorauth.auth.errors import PaginationError
from airflow_vendorauth.pagination import (
    CursorPagination,
    NextLinkPagination,
    OffsetPagination,
    PageNumberPagination,
    PageRequest,
    PaginationStats,
    iterate_pages,
    page_batches,
)

TOTAL = 23


def numbered(request_params: dict, url: str | None) -> httpx.Response:
    """A fake API of TOTAL records answering page/per_page, offset/limit and cursor requests."""
    size = int(request_params.get("per_page") or request_params.get("limit") or 5)
    if "page" in request_params:
        start = (int(request_params["page"]) - 1) * size
    elif "offset" in request_params:
        start = int(request_params["offset"])
    else:
        start = int(request_params.get("cursor") or 0)
    end = min(start + size, TOTAL)
    body = {"items": list(range(start, end)), "meta": {"total": TOTAL}, "next": str(end) if end < TOTAL else None}
    return httpx.Response(200, json=body)


@pytest.mark.parametrize(
    "strategy",
    [
        PageNumberPagination(page_size=5, records_path="items"),
        PageNumberPagination(page_size=5, records_path="items", total_path="meta.total"),
        OffsetPagination(limit=5, records_path="items"),
        OffsetPagination(limit=5, records_path="items", total_path="meta.total"),
        CursorPagination(
            cursor_param="cursor", next_cursor_path="next", records_path="items", limit_param="limit", limit=5
        ),
    ],
)
def test_every_strategy_yields_every_record_once_in_order(strategy) -> None:  # type: ignore[no-untyped-def]
    stats = PaginationStats()
    assert list(iterate_pages(numbered, strategy, stats=stats)) == list(range(TOTAL))
    assert stats.pages == 5 and stats.records == TOTAL


def test_total_stops_without_an_extra_empty_page() -> None:
    calls: list[dict] = []

    def fetch(params: dict, url: str | None) -> httpx.Response:
        calls.append(params)
        return httpx.Response(200, json={"items": [1] * 5, "meta": {"total": 10}})

    list(iterate_pages(fetch, PageNumberPagination(page_size=5, records_path="items", total_path="meta.total")))
    assert [c["page"] for c in calls] == [1, 2]


def test_empty_page_stops() -> None:
    assert list(iterate_pages(lambda p, u: httpx.Response(200, json=[]), PageNumberPagination(size_param=None))) == []


def test_max_pages_and_max_records_cap_the_scan() -> None:
    strategy = PageNumberPagination(page_size=5, records_path="items")
    assert len(list(iterate_pages(numbered, strategy, max_pages=2))) == 10
    assert list(iterate_pages(numbered, strategy, max_records=7)) == list(range(7))


def test_a_scan_resumes_from_a_checkpointed_request() -> None:
    strategy = PageNumberPagination(page_size=5, records_path="items")
    stats = PaginationStats()
    batches = page_batches(numbered, strategy, stats=stats)
    next(batches)
    next(batches)
    checkpoint = PageRequest.from_json(stats.next_request.to_json())  # type: ignore[union-attr]
    rest = [r for batch in page_batches(numbered, strategy, start=checkpoint) for r in batch]
    assert rest == list(range(10, TOTAL))


def test_next_link_from_body_or_link_header() -> None:
    def by_body(params: dict, url: str | None) -> httpx.Response:
        n = int(url.rsplit("=", 1)[1]) if url else 0
        return httpx.Response(
            200, json={"results": [n], "next": f"https://x.example/l?page={n + 1}" if n < 3 else None}
        )

    assert list(iterate_pages(by_body, NextLinkPagination(next_path="next", records_path="results"))) == [0, 1, 2, 3]

    def by_header(params: dict, url: str | None) -> httpx.Response:
        n = int(url.rsplit("=", 1)[1]) if url else 0
        headers = {"Link": f'<https://x.example/l?p={n + 1}>; rel="next"'} if n < 2 else {}
        return httpx.Response(200, json={"content": [n]}, headers=headers)

    assert list(iterate_pages(by_header, NextLinkPagination(records_path="content"))) == [0, 1, 2]


def test_a_repeated_cursor_is_a_loop_not_an_endless_scan() -> None:
    fetch = lambda p, u: httpx.Response(200, json={"items": [1], "next": "same"})  # noqa: E731
    with pytest.raises(PaginationError, match="a loop"):
        list(iterate_pages(fetch, CursorPagination(next_cursor_path="next", records_path="items")))


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (httpx.Response(200, text="<html>oops</html>"), "not JSON"),
        (httpx.Response(200, json={"other": []}), "no records at 'items'"),
        (httpx.Response(200, json={"items": {"a": 1}}), "not a list"),
        (httpx.Response(200, json={"items": list(range(50))}), "50 records but 5 were asked for"),
    ],
)
def test_odd_pages_are_refused_clearly(answer: httpx.Response, says: str) -> None:
    with pytest.raises(PaginationError, match=says):
        list(iterate_pages(lambda p, u: answer, PageNumberPagination(page_size=5, records_path="items")))


@pytest.mark.parametrize(
    "strategy",
    [
        PageNumberPagination(page_size=5, records_path="items", total_path="meta.total"),
        OffsetPagination(limit=5, records_path="items", total_path="meta.total"),
    ],
)
def test_concurrent_fetching_yields_the_same_records_in_order(strategy) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    active, peak = [0], [0]
    guard = threading.Lock()

    def slow(params: dict, url: str | None) -> httpx.Response:
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with guard:
            active[0] -= 1
        return numbered(params, url)

    stats = PaginationStats()
    assert list(iterate_pages(slow, strategy, concurrency=3, stats=stats)) == list(range(TOTAL))
    assert stats.pages == 5 and stats.next_request is None
    assert 1 < peak[0] <= 3


def test_concurrent_fetching_respects_the_caps() -> None:
    strategy = PageNumberPagination(page_size=5, records_path="items", total_path="meta.total")
    assert list(iterate_pages(numbered, strategy, concurrency=4, max_records=12)) == list(range(12))
    assert len(list(iterate_pages(numbered, strategy, concurrency=4, max_pages=2))) == 10


async def test_async_concurrent_fetching_yields_the_same_records_in_order() -> None:
    import asyncio

    from airflow_vendorauth.pagination import aiterate_pages

    async def fetch(params: dict, url: str | None) -> httpx.Response:
        await asyncio.sleep(0.01 * (int(params["page"]) % 3))  # out-of-order completion
        return numbered(params, url)

    strategy = PageNumberPagination(page_size=5, records_path="items", total_path="meta.total")
    assert [r async for r in aiterate_pages(fetch, strategy, concurrency=4)] == list(range(TOTAL))
