"""Pagination strategies: how an API pages, declared, never doing I/O.

Each page's next request is a small JSON-able :class:`PageRequest`, so a scan can checkpoint it and
resume after a crash. Stop rules: an empty page; no next cursor or link; the announced total reached;
a page shorter than the pages the server serves when the API announces no total. Refused rather than
guessed: a body that is not JSON, a missing records path, a page with more records than asked for.

What the server serves wins over what was asked: many APIs cap ``limit``/``per_page`` (at 50 or 100)
whatever the client asks, without saying so. The page size the server serves is learned from the first
page and carried in every later request (:attr:`PageRequest.size`, so a checkpoint keeps it): the
stride of offset paging is the records a page returned, and page-number plans count pages of the
served size. A known total is a check and a plan, never a reason to skip a range (see ``walk``).
Next links are URI references (RFC 3986 section 5), resolved against the URL of the page that
carried them.
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
    #: Records per page the server serves, learned from the first page (None until then, and for
    #: cursors and links): the stride and the stop rule of offset and page-number paging.
    size: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"params": self.params, "url": self.url}
        if self.size is not None:
            data["size"] = self.size
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PageRequest:
        size = data.get("size")
        return cls(params=dict(data["params"]), url=data.get("url"), size=int(size) if size is not None else None)


@dataclass
class Page:
    """One page, read: its body, its records, and the request that fetched it."""

    body: Any
    records: list[Any]
    request: PageRequest
    headers: httpx.Headers
    #: The URL that served the page (after redirects), the base of its relative next links; None when
    #: the response does not say (a test's bare ``httpx.Response``).
    url: str | None = None


def _served_url(response: httpx.Response) -> str | None:
    try:
        return str(response.url)
    except RuntimeError:  # a response built without its request
        return None


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


def served_size(page: Page) -> int:
    """The records per page the server serves: learned from the first page of a scan (what it returned,
    whatever was asked), then carried by every request after it."""
    return page.request.size or max(1, len(page.records))


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

    def announced_total(self, page: Page) -> int | None:
        """The records the API says the whole result holds (a check on the scan), when it says."""
        return self._total(page.body, getattr(self, "total_path", None))

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
        return Page(body=body, records=records, request=request, headers=response.headers, url=_served_url(response))

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
        number, served = int(page.request.params[self.page_param]), served_size(page)
        total = self._total(page.body, self.total_path)
        if total is not None:
            if (number - self.first_page + 1) * served >= total:
                return None
        elif len(page.records) < served:
            return None
        return PageRequest({**page.request.params, self.page_param: number + 1}, size=served)

    def plan(self, page: Page) -> list[PageRequest] | None:
        total = self._total(page.body, self.total_path)
        if total is None or not page.records:
            return None
        number, served = int(page.request.params[self.page_param]), served_size(page)
        last = self.first_page + (total + served - 1) // served - 1
        return [
            PageRequest({**page.request.params, self.page_param: n}, size=served) for n in range(number + 1, last + 1)
        ]


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
        offset, served = int(page.request.params[self.offset_param]) + len(page.records), served_size(page)
        total = self._total(page.body, self.total_path)
        if total is not None:
            if offset >= total:
                return None
        elif len(page.records) < served:
            return None
        return PageRequest({**page.request.params, self.offset_param: offset}, size=served)

    def plan(self, page: Page) -> list[PageRequest] | None:
        total = self._total(page.body, self.total_path)
        if total is None or not page.records:
            return None
        start, served = int(page.request.params[self.offset_param]) + len(page.records), served_size(page)
        return [PageRequest({**page.request.params, self.offset_param: o}, size=served) for o in range(start, total, served)]


@dataclass
class CursorPagination(Pagination):
    cursor_param: str = "cursor"
    next_cursor_path: str = "next"
    records_path: str | None = None
    limit_param: str | None = None
    limit: int = 100
    #: Where the body announces the whole result's size: only checked against the records, never planned.
    total_path: str | None = None

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
    #: Where the body announces the whole result's size: only checked against the records, never planned.
    total_path: str | None = None

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
        # RFC 3986 section 5: a reference (absolute, /root-relative, relative, ?query-only) resolves
        # against the URL of the page that carried it, the first page's included.
        base = page.url or page.request.url
        return PageRequest({}, url=str(httpx.URL(base).join(str(link))) if base else str(link))


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
