"""Pagination strategies: how an API pages, declared, never doing I/O.

Each page's next request is a small JSON-able :class:`PageRequest`, so a scan can checkpoint it and
resume after a crash. Stop rules: an empty page; no next cursor or link; the announced total reached;
a page shorter than the pages the server serves, once the page after it came back empty, when the API
announces no total (``confirm_short_page``: a server whose page size drops mid-scan serves a short page
in the middle; one request more per scan tells the two apart). Refused rather than guessed: a body that
is not JSON, a missing records path, a page with more records than asked for, a page-number scan whose
short page is followed by more records (page numbers no longer say which records come next).

What the server serves wins over what was asked: many APIs cap ``limit``/``per_page`` (at 50 or 100)
whatever the client asks, without saying so. The page size the server serves is learned from the first
page and carried in every later request (:attr:`PageRequest.size`, so a checkpoint keeps it): the
stride of offset paging is the records a page returned, and page-number plans count pages of the
served size. A known total is a check and a plan, never a reason to skip a range (see ``walk``).
Next links are URI references (RFC 3986 section 5), resolved against the URL of the page that
carried them. Paths into an answer (``records_path``, ``next_path``...) follow :mod:`.paths`: dots
split keys, a key that holds dots (``@odata.nextLink``) is matched whole, a list names keys as they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_vendorauth.exceptions import PaginationError
from airflow_vendorauth.jsonlib import loads
from airflow_vendorauth.pagination.paths import KeyPath, check_path, dig, show_path
from airflow_vendorauth.redact import excerpt

__all__ = ["KeyPath", "dig"]  # dig is imported from here by the sensors

log = logging.getLogger("airflow_vendorauth.pagination")


@dataclass(frozen=True)
class PageRequest:
    """Where the next page is: query parameters, or an absolute URL (next links)."""

    params: dict[str, Any]
    url: str | None = None
    #: Records per page the server serves, learned from the first page (None until then, and for
    #: cursors and links): the stride and the stop rule of offset and page-number paging.
    size: int | None = None
    #: Asked after a short page, on an API that announces no total: the short page's :func:`fingerprint`. An
    #: empty answer (or the short page again: some APIs repeat their last page past the end) confirms that
    #: it was the last; by page numbers, other records here fail the scan (``PageNumberPagination.read``).
    confirms: str | None = None
    #: No pagination described: the paging recognised from the first answer (:mod:`.detect`), carried by
    #: every later request so a resumed scan reads its pages the same way.
    detected: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"params": self.params, "url": self.url}
        if self.size is not None:
            data["size"] = self.size
        if self.confirms is not None:
            data["confirms"] = self.confirms
        if self.detected is not None:
            data["detected"] = self.detected
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PageRequest:
        size, detected = data.get("size"), data.get("detected")
        return cls(
            params=dict(data["params"]),
            url=data.get("url"),
            size=int(size) if size is not None else None,
            confirms=data.get("confirms"),
            detected=dict(detected) if detected is not None else None,
        )


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
    #: The API, endpoint and connection, for messages.
    where: str = ""


def served_url(response: httpx.Response) -> str | None:
    try:
        return str(response.url)
    except RuntimeError:  # a response built without its request
        return None


def fingerprint(records: list[Any]) -> str:
    """A short digest of a page's records: tells a page repeated past the end from a page of new records."""
    return hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse_body(response: httpx.Response, request: PageRequest, where: str) -> Any:
    """The page's JSON, or a PaginationError saying what came instead."""
    try:
        return loads(response.content)
    except ValueError:
        raise PaginationError(
            f"{where}: page {request.params or request.url} is not JSON "
            f"({response.headers.get('content-type', 'no content type')}: {excerpt(response.text, 100)!r})"
        ) from None


def records_at(body: Any, path: KeyPath | None, where: str) -> list[Any]:
    """The list of records at ``path``, or a PaginationError naming the path and what is there."""
    try:
        records = dig(body, path)
    except KeyError:
        raise PaginationError(
            f"{where}: the page has no records at {show_path(path)}; set records_path on the pagination"
        ) from None
    if not isinstance(records, list):
        raise PaginationError(f"{where}: {show_path(path)} holds a {type(records).__name__}, not a list")
    return records


def served_size(page: Page) -> int:
    """The records per page the server serves: learned from the first page of a scan (what it returned,
    whatever was asked), then carried by every request after it."""
    return page.request.size or max(1, len(page.records))


class Pagination(ABC):
    """Base of the strategies."""

    records_path: KeyPath | None

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
        body = parse_body(response, request, where)
        records = records_at(body, self.records_path, where)
        size = self.requested_size()
        if size is not None and len(records) > size:
            raise PaginationError(
                f"{where}: a page holds {len(records)} records but {size} were asked for; refusing to guess "
                "what the API pages by (check page_size/limit against the API's limits)"
            )
        if request.confirms is not None and (not records or fingerprint(records) == request.confirms):
            log.info("%s: the page after a short page is %s: the short page was the last (%s)", where,
                     "the same page again" if records else "empty", CONFIRM_HELP)
            records = []  # a page repeated past the end holds nothing new
        return Page(body, records, request, response.headers, served_url(response), where)

    @staticmethod
    def _total(body: Any, total_path: KeyPath | None) -> int | None:
        if not total_path:
            return None
        try:
            total = dig(body, total_path)
        except KeyError:
            return None
        return int(total) if isinstance(total, int | float | str) and str(total).isdigit() else None


#: The stop rule's cost, said once per strategy: why a short page is followed by one more request.
CONFIRM_HELP = (
    "without a total, a short page ends the scan only once the page after it comes back empty or 404 (one "
    "request more per scan); set confirm_short_page to false for an API that refuses a request past its end"
)


@dataclass
class PageNumberPagination(Pagination):
    """``page`` and ``per_page`` (names configurable). Without a total, a short page is confirmed by asking
    for the next page (``confirm_short_page``): an empty one ends the scan; one with records fails it,
    since the page size changed mid-scan and page numbers no longer say which records come next."""

    page_param: str = "page"
    size_param: str | None = "per_page"
    page_size: int = 100
    first_page: int = 1
    records_path: KeyPath | None = None
    total_path: KeyPath | None = None
    #: See :data:`CONFIRM_HELP`.
    confirm_short_page: bool = True

    def requested_size(self) -> int | None:
        return self.page_size if self.size_param else None

    def first(self, params: Mapping[str, Any]) -> PageRequest:
        first = {**params, self.page_param: self.first_page}
        if self.size_param:
            first[self.size_param] = self.page_size
        return PageRequest(first)

    def read(self, response: httpx.Response, request: PageRequest, where: str) -> Page:
        page = super().read(response, request, where)
        if request.confirms is not None and page.records:
            number, size = request.params[self.page_param], request.size
            raise PaginationError(
                f"{where}: page {int(number) - 1} held fewer records than the {size} a page before it, yet page "
                f"{number} holds {len(page.records)} more: the API changed its page size mid-scan, so page numbers "
                "no longer say which records come next (some would be missing or doubled). Set page_size in the "
                f"pagination to at most what the API serves now (page {number}: {len(page.records)}), or page by "
                "offset if the API allows it"
            )
        return page

    def next(self, page: Page) -> PageRequest | None:
        if not page.records:
            return None
        number, served = int(page.request.params[self.page_param]), served_size(page)
        total = self._total(page.body, self.total_path)
        confirms = None
        if total is not None:
            if (number - self.first_page + 1) * served >= total:
                return None
        elif len(page.records) < served:
            if not self.confirm_short_page:
                return None
            confirms = fingerprint(page.records)
        return PageRequest({**page.request.params, self.page_param: number + 1}, size=served, confirms=confirms)

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
    """``offset`` and ``limit`` (names configurable); the stride is the records a page returned. Without
    a total, a short page is confirmed by asking from where it ended (``confirm_short_page``): an empty
    page ends the scan, records go on (offsets say exactly where they belong)."""

    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = 100
    records_path: KeyPath | None = None
    total_path: KeyPath | None = None
    #: See :data:`CONFIRM_HELP`.
    confirm_short_page: bool = True

    def requested_size(self) -> int | None:
        return self.limit

    def first(self, params: Mapping[str, Any]) -> PageRequest:
        return PageRequest({**params, self.offset_param: 0, self.limit_param: self.limit})

    def next(self, page: Page) -> PageRequest | None:
        if not page.records:
            return None
        offset, served = int(page.request.params[self.offset_param]) + len(page.records), served_size(page)
        total = self._total(page.body, self.total_path)
        confirms = None
        if total is not None:
            if offset >= total:
                return None
        elif len(page.records) < served:
            if not self.confirm_short_page:
                return None
            confirms = fingerprint(page.records)
        return PageRequest({**page.request.params, self.offset_param: offset}, size=served, confirms=confirms)

    def plan(self, page: Page) -> list[PageRequest] | None:
        total = self._total(page.body, self.total_path)
        if total is None or not page.records:
            return None
        start, served = int(page.request.params[self.offset_param]) + len(page.records), served_size(page)
        return [PageRequest({**page.request.params, self.offset_param: o}, size=served) for o in range(start, total, served)]


@dataclass
class CursorPagination(Pagination):
    cursor_param: str = "cursor"
    next_cursor_path: KeyPath = "next"
    records_path: KeyPath | None = None
    limit_param: str | None = None
    limit: int = 100
    #: Where the body announces the whole result's size: only checked against the records, never planned.
    total_path: KeyPath | None = None

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

    next_path: KeyPath | None = None
    records_path: KeyPath | None = None
    #: Where the body announces the whole result's size: only checked against the records, never planned.
    total_path: KeyPath | None = None

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
    for name, value in options.items():
        if name.endswith("_path"):
            check_path(name, value)
        elif name == "confirm_short_page" and not isinstance(value, bool):
            raise ValueError(f"gives confirm_short_page as {value!r}: write true or false (JSON booleans)")
    try:
        return strategy(**options)
    except TypeError:
        known = ", ".join(f.name for f in dataclasses.fields(strategy))  # type: ignore[arg-type]
        unknown = ", ".join(sorted(set(options) - {f.name for f in dataclasses.fields(strategy)}))  # type: ignore[arg-type]
        raise ValueError(f"gives {unknown or 'a wrong value'} to style {style!r}, which takes {known}") from None
