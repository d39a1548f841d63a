"""Pagination strategies: how an API pages, declared, never doing I/O.

Each page's next request is a small JSON-able :class:`PageRequest`, so a scan can checkpoint it and
resume after a crash. Stop rules: an empty page; no next cursor or link; the announced total reached;
a short page (fewer records than asked for) when the API announces no total. Refused rather than
guessed: a body that is not JSON, a missing records path, a page with more records than asked for.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_vendorauth.exceptions import PaginationError
from airflow_vendorauth.jsonlib import loads
from airflow_vendorauth.redact import excerpt


@dataclass(frozen=True)
class PageRequest:
    """Where the next page is: query parameters, or an absolute URL (next links)."""

    params: dict[str, Any]
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"params": self.params, "url": self.url}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PageRequest:
        return cls(params=dict(data["params"]), url=data.get("url"))


@dataclass
class Page:
    """One page, read: its body, its records, and the request that fetched it."""

    body: Any
    records: list[Any]
    request: PageRequest
    headers: httpx.Headers


def dig(body: Any, path: str | None) -> Any:
    """``dig({"a": {"b": 1}}, "a.b") == 1``, ``dig({"a": [5]}, "a.0") == 5``; an empty path is the body
    itself; KeyError if absent."""
    if not path:
        return body
    value = body
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(path)
    return value


class Pagination(ABC):
    """Base of the strategies."""

    records_path: str | None

    @abstractmethod
    def first(self, params: Mapping[str, Any]) -> PageRequest:
        """The request for the first page."""

    @abstractmethod
    def next(self, page: Page) -> PageRequest | None:
        """The request for the page after ``page``, or None when there is none."""

    def requested_size(self) -> int | None:
        """How many records a page was asked for, when the strategy asks."""
        return None

    def plan(self, page: Page) -> list[PageRequest] | None:
        """Every request after ``page`` when the API announced its total (so pages can be fetched
        concurrently); None when the next page is only known once this one is read (cursors, links)."""
        return None

    def read(self, response: httpx.Response, request: PageRequest, where: str) -> Page:
        try:
            body = loads(response.content)
        except ValueError:
            raise PaginationError(
                f"{where}: page {request.params or request.url} is not JSON "
                f"({response.headers.get('content-type', 'no content type')}: {excerpt(response.text, 100)!r})"
            ) from None
        try:
            records = dig(body, self.records_path)
        except KeyError:
            raise PaginationError(
                f"{where}: the page has no records at {self.records_path!r}; set records_path on the pagination"
            ) from None
        if not isinstance(records, list):
            raise PaginationError(f"{where}: {self.records_path!r} holds a {type(records).__name__}, not a list")
        size = self.requested_size()
        if size is not None and len(records) > size:
            raise PaginationError(
                f"{where}: a page holds {len(records)} records but {size} were asked for; refusing to guess "
                "what the API pages by (check page_size/limit against the API's limits)"
            )
        return Page(body=body, records=records, request=request, headers=response.headers)

    @staticmethod
    def _total(body: Any, total_path: str | None) -> int | None:
        if not total_path:
            return None
        try:
            total = dig(body, total_path)
        except KeyError:
            return None
        return int(total) if isinstance(total, int | float | str) and str(total).isdigit() else None


@dataclass
class PageNumberPagination(Pagination):
    page_param: str = "page"
    size_param: str | None = "per_page"
    page_size: int = 100
    first_page: int = 1
    records_path: str | None = None
    total_path: str | None = None

    def requested_size(self) -> int | None:
        return self.page_size if self.size_param else None

    def first(self, params: Mapping[str, Any]) -> PageRequest:
        first = {**params, self.page_param: self.first_page}
        if self.size_param:
            first[self.size_param] = self.page_size
        return PageRequest(first)

    def next(self, page: Page) -> PageRequest | None:
        if not page.records:
            return None
        number = int(page.request.params[self.page_param])
        total = self._total(page.body, self.total_path)
        if total is not None:
            if (number - self.first_page + 1) * self.page_size >= total:
                return None
        elif self.size_param and len(page.records) < self.page_size:
            return None
        return PageRequest({**page.request.params, self.page_param: number + 1})

    def plan(self, page: Page) -> list[PageRequest] | None:
        total = self._total(page.body, self.total_path)
        if total is None or not page.records:
            return None
        number = int(page.request.params[self.page_param])
        last = self.first_page + (total + self.page_size - 1) // self.page_size - 1
        return [PageRequest({**page.request.params, self.page_param: n}) for n in range(number + 1, last + 1)]


@dataclass
class OffsetPagination(Pagination):
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = 100
    records_path: str | None = None
    total_path: str | None = None

    def requested_size(self) -> int | None:
        return self.limit

    def first(self, params: Mapping[str, Any]) -> PageRequest:
        return PageRequest({**params, self.offset_param: 0, self.limit_param: self.limit})

    def next(self, page: Page) -> PageRequest | None:
        if not page.records:
            return None
        offset = int(page.request.params[self.offset_param]) + len(page.records)
        total = self._total(page.body, self.total_path)
        if total is not None:
            if offset >= total:
                return None
        elif len(page.records) < self.limit:
            return None
        return PageRequest({**page.request.params, self.offset_param: offset})

    def plan(self, page: Page) -> list[PageRequest] | None:
        total = self._total(page.body, self.total_path)
        if total is None or not page.records:
            return None
        start = int(page.request.params[self.offset_param]) + len(page.records)
        return [PageRequest({**page.request.params, self.offset_param: o}) for o in range(start, total, self.limit)]


@dataclass
class CursorPagination(Pagination):
    cursor_param: str = "cursor"
    next_cursor_path: str = "next"
    records_path: str | None = None
    limit_param: str | None = None
    limit: int = 100

    def requested_size(self) -> int | None:
        return self.limit if self.limit_param else None

    def first(self, params: Mapping[str, Any]) -> PageRequest:
        first = dict(params)
        if self.limit_param:
            first[self.limit_param] = self.limit
        return PageRequest(first)

    def next(self, page: Page) -> PageRequest | None:
        if not page.records:
            return None
        try:
            cursor = dig(page.body, self.next_cursor_path)
        except KeyError:
            return None
        if cursor in (None, ""):
            return None
        return PageRequest({**page.request.params, self.cursor_param: cursor})


@dataclass
class NextLinkPagination(Pagination):
    """Follow a next-page URL from the body (``next_path``) or, without one, the ``Link: rel=next`` header."""

    next_path: str | None = None
    records_path: str | None = None

    def first(self, params: Mapping[str, Any]) -> PageRequest:
        return PageRequest(dict(params))

    def next(self, page: Page) -> PageRequest | None:
        if not page.records:
            return None
        if self.next_path:
            try:
                link = dig(page.body, self.next_path)
            except KeyError:
                return None
        else:
            link = httpx.Response(200, headers=page.headers).links.get("next", {}).get("url")
        if not link:
            return None
        base = page.request.url
        return PageRequest({}, url=str(httpx.URL(base).join(link)) if base else str(link))


#: The ``pagination`` extra's styles (the generic ``oauth2`` connection pages an API without code).
STYLES: dict[str, type[Pagination]] = {
    "page_number": PageNumberPagination,
    "offset": OffsetPagination,
    "cursor": CursorPagination,
    "next_link": NextLinkPagination,
}


def strategy_from_json(description: Mapping[str, Any]) -> Pagination:
    """``{"style": "page_number", "page_param": "page", "page_size": 100, "records_path": "items"}`` ->
    the strategy; ValueError naming the styles or the fields a style takes."""
    options = dict(description)
    style = options.pop("style", None)
    if style not in STYLES:
        raise ValueError(f"has style {style!r}; use one of {', '.join(STYLES)}")
    strategy = STYLES[style]
    try:
        return strategy(**options)
    except TypeError:
        known = ", ".join(f.name for f in dataclasses.fields(strategy))  # type: ignore[arg-type]
        unknown = ", ".join(sorted(set(options) - {f.name for f in dataclasses.fields(strategy)}))  # type: ignore[arg-type]
        raise ValueError(f"gives {unknown or 'a wrong value'} to style {style!r}, which takes {known}") from None
