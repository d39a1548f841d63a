"""An ``oauth2`` connection without a ``pagination`` extra (issue 32, case 1): the API's own paging is
recognised from its first answer (pagination/detect.py) and followed, resumed and run at any
concurrency; an answer whose paging cannot be followed is refused with an error naming the connection,
the extra and an example, never an internal error and never a silent single page."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_vendorauth.exceptions import PaginationError
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
from airflow_vendorauth.pagination import PageRequest, PagingOptions
from airflow_vendorauth.pagination.detect import DetectedPagination, recognise
from airflow_vendorauth.pagination.drivers import apage_batches, page_batches
from airflow_vendorauth.retry import RetryPolicy

API = "https://api.example/v1"
TOKEN_URL = "https://idp.example/oauth2/token"
FAST = RetryPolicy(max_attempts=2, initial_wait_seconds=0.01, max_wait_seconds=0.02)
WHERE = "OAuth 2.0 /items (connection 'oauth2_default')"


def connect(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    """An oauth2 connection as two of the README's four examples are: no ``pagination`` extra."""
    conn = {"conn_type": "oauth2", "host": API, "login": "client", "password": "secret-1", "extra": {"auth_url": TOKEN_URL, **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(conn))


class PagedApi:
    """``records`` records (``{"id": i}``), ``size`` a page, answered in ``shape``; the next page's place in
    ``?from=N``; counts requests and the most in flight."""

    def __init__(self, shape: str, records: int = 23, size: int = 5, delay: float = 0.0) -> None:
        self.shape, self.records, self.size, self.delay = shape, records, size, delay
        self.requests: list[httpx.Request] = []
        self.in_flight = self.peak = 0
        self.guard = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600})
        with self.guard:
            self.requests.append(request)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(self.delay)
            return self.answer(request)
        finally:
            with self.guard:
                self.in_flight -= 1

    def answer(self, request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("from", 0))
        end = min(start + self.size, self.records)
        items = [{"id": i} for i in range(start, end)]
        link = f"{request.url.path}?from={end}" if end < self.records else None  # root-relative
        headers = {"Link": f'<{link}>; rel="next"'} if link and self.shape in ("header", "list") else {}
        body: Any = {
            "graph": {"value": items, **({"@odata.nextLink": f"{API}/items?from={end}"} if link else {})},
            "header": {"data": items, "total": self.records},
            "list": items,
            "links.next": {"results": items, "links": {"next": link}},
            "hal": {"_embedded": {"orders": items}, "_links": {"next": {"href": link}} if link else {}},
            "next_url": {"items": items, "next_url": link, "count": self.records},
        }[self.shape]
        return httpx.Response(200, json=body, headers=headers)


def hook(api: PagedApi) -> OAuth2Hook:
    return OAuth2Hook(transport=httpx.MockTransport(api), retry_policy=FAST)


SHAPES = ["graph", "header", "list", "links.next", "hal", "next_url"]


@pytest.mark.parametrize("shape", SHAPES)
def test_without_a_pagination_extra_every_record_comes_once_in_order(
    monkeypatch: pytest.MonkeyPatch, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: AttributeError: 'NoneType' object has no attribute 'first' (pagination/walk.py)."""
    connect(monkeypatch)
    api = PagedApi(shape)
    with caplog.at_level(logging.INFO, logger="airflow_vendorauth.pagination"):
        assert [r["id"] for r in hook(api).paginate("/items")] == list(range(23))
    assert len(api.requests) == 5  # 5 pages, no page twice
    said = [r.getMessage() for r in caplog.records if "recognised from the first answer" in r.getMessage()]
    assert len(said) == 1 and "next_link" in said[0] and "'oauth2_default'" in said[0]  # one line per scan


@pytest.mark.parametrize(
    ("body", "headers", "description"),
    [
        ({"value": [{"a": 1}], "@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$skiptoken=X"}, {},
         {"style": "next_link", "records_path": "value", "next_path": ["@odata.nextLink"]}),
        ({"items": [{"a": 1}], "total": 40}, {"Link": '<https://h/items?page=2>; rel="next"'},
         {"style": "next_link", "records_path": "items", "total_path": "total"}),
        ([{"a": 1}], {"Link": '</items?page=2>; rel="next"'}, {"style": "next_link", "records_path": None, "records": "list"}),
        ({"data": [{"a": 1}], "links": {"next": "/items?page=2"}}, {},
         {"style": "next_link", "records_path": "data", "next_path": "links.next"}),
        ({"results": [{"a": 1}], "next": "?page=2", "count": 40}, {},
         {"style": "next_link", "records_path": "results", "next_path": "next", "total_path": "count"}),
        ({"records": [{"a": 1}], "nextLink": "items?page=2"}, {},
         {"style": "next_link", "records_path": "records", "next_path": "nextLink"}),
        ({"data": {"items": [{"a": 1}], "next_page_url": "https://h/items?page=2"}}, {},
         {"style": "next_link", "records_path": "data.items", "next_path": "data.next_page_url"}),
        ({"content": [{"a": 1}], "paging": {"next": {"url": "/items?p=2"}}, "errors": []}, {},
         {"style": "next_link", "records_path": "content", "next_path": "paging.next.url"}),
        # one page: no next page in the answer
        ([{"a": 1}, {"a": 2}], {}, {"style": "one_page", "records_path": None, "records": "list"}),
        ({"results": [{"a": 1}], "next": None, "count": 1}, {}, {"style": "one_page", "records_path": "results", "total_path": "count"}),
        ({"rows": [{"a": 1}], "meta": {"took_ms": 3}}, {}, {"style": "one_page", "records_path": "rows"}),
        ({"id": 7, "name": "ana", "roles": [{"id": 1}]}, {}, {"style": "one_page", "records_path": None}),  # one record
        ({"status": "green"}, {}, {"style": "one_page", "records_path": None}),
        ({"user": {"id": 1, "roles": [{"id": 2}], "count": 99}}, {}, {"style": "one_page", "records_path": None}),  # an attribute, no total
    ],
)
def test_what_is_recognised(body: Any, headers: dict, description: dict) -> None:
    assert recognise(body, httpx.Headers(headers), WHERE).description == description


@pytest.mark.parametrize(
    ("body", "says", "example"),
    [
        ({"content": [{"a": 1}], "nextPageId": "MjA="}, "a cursor at 'nextPageId'", {"style": "cursor", "next_cursor_path": "nextPageId"}),
        ({"items": [{"a": 1}], "next_page_token": "tok"}, "a cursor at 'next_page_token'", {"style": "cursor"}),
        ({"items": [{"a": 1}], "next": "eyJwIjoyfQ"}, "'next' = 'eyJwIjoyfQ', which is no link", {"style": "cursor", "next_cursor_path": "next"}),
        ({"items": [{"a": 1}], "total": 500, "page": 1}, "announces 500 records at 'total' but holds 1", {"style": "page_number", "total_path": "total"}),
        ({"data": [{"a": 1}], "pagination": {"totalAmount": 80}}, "announces 80 records at 'pagination.totalAmount'", {"records_path": "data", "total_path": "pagination.totalAmount"}),
        ({"data": [{"a": 1}], "has_more": True}, "'has_more' is true", {"records_path": "data"}),
        ({"data": [{"a": 1}], "meta": {"total_pages": 3}}, "announces 3 pages", {"records_path": "data"}),
        ({"items": [1], "data": [2]}, "several lists ('items', 'data')", {"style": "next_link"}),
        ({"next": "https://h/x?page=2", "id": 4}, "names a next page but holds no list of records", {"style": "next_link"}),
        ({"items": [{"a": 1}], "next": 2}, "'next' = '2', which is no link", {"records_path": "items"}),
    ],
)
def test_paging_that_cannot_be_followed_is_refused_naming_the_connection_the_extra_and_an_example(
    body: Any, says: str, example: dict
) -> None:
    """Never taken for the last page: each of these would lose records without a word."""
    with pytest.raises(PaginationError) as caught:
        recognise(body, httpx.Headers(), WHERE)
    message = str(caught.value)
    assert says in message and "'oauth2_default'" in message and "pagination extra" in message
    shown = json.loads(message[message.index("e.g. ") + 5:])  # the example is valid JSON for the extra
    assert example.items() <= shown.items()


@settings(max_examples=300, deadline=None, database=None)
@given(body=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["items", "data", "next", "links", "total", "id", "value", "@odata.nextLink",
                                       "cursor", "has_more", "meta", "href", "count", "x"]), inner, max_size=5),
    max_leaves=12,
), link=st.sampled_from(["", '<https://h/x?page=2>; rel="next"', "<>; rel=next", "garbage"]))
def test_any_answer_is_recognised_or_refused_clearly_never_an_internal_error(body: Any, link: str) -> None:
    try:
        found = recognise(body, httpx.Headers({"Link": link} if link else {}), WHERE)
    except PaginationError as exc:
        assert "'oauth2_default'" in str(exc) and "pagination extra" in str(exc)
        return
    assert isinstance(found.records, list)
    json.dumps(found.description)  # a checkpoint can keep it


def test_a_resumed_scan_reads_its_pages_as_the_first_try_recognised_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint (a batch's next request, as JSON) carries what was recognised."""
    connect(monkeypatch)
    api = PagedApi("graph")
    scan = hook(api).page_batches("/items", PagingOptions())
    first = next(scan)
    scan.close()
    saved = json.loads(json.dumps(first.next_request.to_json()))  # type: ignore[union-attr]
    assert saved["detected"] == {"style": "next_link", "records_path": "value", "next_path": ["@odata.nextLink"]}
    resumed = hook(api).page_batches("/items", PagingOptions(start=PageRequest.from_json(saved)))
    assert [r["id"] for b in resumed for r in b.records] == list(range(5, 23))


def test_a_next_link_api_pages_one_page_at_a_time_under_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch)
    api = PagedApi("header", records=60, size=5, delay=0.01)
    assert len(list(hook(api).paginate("/items", concurrency="auto"))) == 60
    assert api.peak == 1


async def test_the_async_driver_recognises_the_same_paging() -> None:
    api = PagedApi("links.next")

    async def fetch(request: PageRequest) -> httpx.Response:
        url = request.url or f"{API}/items"
        return api(httpx.Request("GET", url))

    got = [r["id"] async for b in apage_batches(fetch, DetectedPagination(), PagingOptions(), WHERE) for r in b.records]
    assert got == list(range(23))


@pytest.mark.parametrize(("first", "expected"), [([0], [0, 1, 2]), ([], [])])
def test_a_list_body_with_relative_header_links_is_followed_and_an_empty_first_page_ends(first: list, expected: list) -> None:
    asked: list[str] = []

    def fetch(request: PageRequest) -> httpx.Response:
        url = request.url or f"{API}/items"
        asked.append(url)
        n = int(httpx.URL(url).params.get("p", 0))
        headers = {"Link": f'<?p={n + 1}>; rel="next"'} if n < 2 else {}
        return httpx.Response(200, json=[n] if n else first, headers=headers, request=httpx.Request("GET", url))

    assert [r for b in page_batches(fetch, DetectedPagination(), PagingOptions(), WHERE) for r in b.records] == expected
    assert asked[1:] == [f"{API}/items?p=1", f"{API}/items?p=2"][: max(0, len(expected) - 1)]  # resolved, none twice


def test_a_recognised_next_link_to_another_origin_gets_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, secret_headers={"X-Api-Key": "api-key-value-9"})
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600})
        seen.append(request)
        if request.url.host == "api.example":
            return httpx.Response(200, json={"value": [1], "@odata.nextLink": "https://cdn.elsewhere.example/p2?sig=x"})
        return httpx.Response(200, json={"value": [2]})

    assert list(OAuth2Hook(transport=httpx.MockTransport(handle), retry_policy=FAST).paginate("/items")) == [1, 2]
    home, away = seen
    assert home.headers["Authorization"] == "Bearer at-1" and home.headers["X-Api-Key"] == "api-key-value-9"
    assert "Authorization" not in away.headers and "X-Api-Key" not in away.headers


def test_an_answer_that_cannot_be_followed_fails_paginate_before_any_record(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600})
        return httpx.Response(200, json={"items": [{"id": 1}], "total": 2, "page": 1})

    with pytest.raises(PaginationError, match=r"connection 'oauth2_default'.*pagination extra.*\"style\": \"page_number\""):
        list(OAuth2Hook(transport=httpx.MockTransport(handle), retry_policy=FAST).paginate("/items"))


def test_a_pagination_extra_still_wins_over_recognition(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, pagination={"style": "next_link", "next_path": "@odata.nextLink", "records_path": "value"})
    api = PagedApi("graph")
    assert [r["id"] for r in hook(api).paginate("/items")] == list(range(23))
    assert not isinstance(hook(api).client._strategy(PagingOptions()), DetectedPagination)
