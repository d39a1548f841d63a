"""The paging loop, written once: which page to fetch next, what to hand out, when to stop.

Like httpx's auth flows, :func:`paging_flow` is a generator that does no I/O. It yields steps (start
fetching a page, collect the oldest page started, hand out a batch) and receives the responses; the
drivers in :mod:`airflow_vendorauth.pagination.drivers` only do the fetching, with threads (sync) or
asyncio tasks (async). So the caps, the loop guard and the fetch-ahead window live here alone.

Fetching ahead: when the API announced its total (page numbers, offsets), the pages after the first
are known in advance, and a window of them is in flight while batches still come out in order: with
``concurrency=N``, ``2 * N`` pages (N requests running, N waiting their turn); with
``concurrency="auto"`` (the default), as many as the adaptive controller (:mod:`.adaptive`) allows.
Cursors and next links are followed one page at a time: nothing can be known ahead.

A plan is a guess, the pages are the truth: each page handed out is checked against the strategy's own
``next`` of the page before it (the offset after the records it *returned*). When a page comes back
shorter than planned (records deleted mid-scan, a server that serves less than it said), the pages in
flight are dropped and the scan goes on from where the last page really ended, planning again from
there: fetching ahead never skips a range.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Generator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict

import httpx

from airflow_vendorauth.exceptions import PaginationError, VendorApiError
from airflow_vendorauth.pagination.strategies import Page, PageRequest, Pagination, log


@dataclass(frozen=True)
class PagingOptions:
    """How to page one endpoint: one value from the hook's ``paginate`` down to the drivers."""

    params: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] | None = None
    #: None: the vendor's default strategy.
    pagination: Pagination | None = None
    max_pages: int | None = None
    max_records: int | None = None
    #: Pages in flight where the API announces its total: "auto" adapts (AIMD) under the vendor's ceiling;
    #: a number fixes it (1: one page after the other).
    concurrency: int | Literal["auto"] = "auto"
    #: Resume from this checkpointed request instead of the first page.
    start: PageRequest | None = None


class PagingKwargs(TypedDict, total=False):
    """:class:`PagingOptions` as keyword arguments (``hook.paginate(endpoint, max_records=500)``)."""

    params: Mapping[str, Any]
    headers: Mapping[str, str] | None
    pagination: Pagination | None
    max_pages: int | None
    max_records: int | None
    concurrency: int | Literal["auto"]
    start: PageRequest | None


@dataclass(frozen=True)
class PageBatch:
    """One page's records (after the caps) and the request of the page after it: None once done."""

    records: list[Any]
    next_request: PageRequest | None
    #: The records the API announced for the whole result on this page (None: it does not say).
    total: int | None = None


@dataclass(frozen=True)
class Fetch:
    """Start fetching this page (the driver replies None)."""

    request: PageRequest


@dataclass(frozen=True)
class Collect:
    """The response of the oldest page started (the driver replies with it)."""


@dataclass(frozen=True)
class Drop:
    """Cancel every page in flight: the plan they belong to turned out wrong (the driver replies None)."""


@dataclass(frozen=True)
class Emit:
    """Hand this batch to the caller (the driver replies None)."""

    batch: PageBatch


class Window(Protocol):
    """How many pages may be in flight now, told when each one is done; ``agate`` is held around each
    request of the async driver (the sync driver's thread count follows ``concurrency`` instead)."""

    @property
    def limit(self) -> int: ...

    @property
    def concurrency(self) -> int: ...

    def page_done(self) -> None: ...

    def agate(self) -> AbstractAsyncContextManager[None]: ...


class FixedWindow:
    """``concurrency=N``: ``2 * N`` pages in flight (N being fetched, N waiting their turn in order), and
    never more than N requests at once, sync (N threads) and async (a semaphore of N)."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = max(1, concurrency)
        self.limit = 2 * self.concurrency
        self._semaphore: asyncio.Semaphore | None = None

    def page_done(self) -> None:
        return None

    def agate(self) -> AbstractAsyncContextManager[None]:
        if self._semaphore is None:  # made on first use, inside the scan's event loop
            self._semaphore = asyncio.Semaphore(self.concurrency)
        return self._semaphore


Step = Fetch | Collect | Drop | Emit
PagingFlow = Generator[Step, httpx.Response | None, None]
COLLECT = Collect()
DROP = Drop()


class _Tally:
    """What was handed out so far, the caps, and the loop guard."""

    def __init__(self, strategy: Pagination, options: PagingOptions, where: str) -> None:
        self.strategy, self.options, self.where = strategy, options, where
        self.pages = 0
        self.records = 0
        self._seen: set[str] = set()

    def guard(self, request: PageRequest) -> None:
        marker = json.dumps(request.to_json(), sort_keys=True, default=str)
        if marker in self._seen:
            raise PaginationError(
                f"{self.where}: the API sent the same next page twice ({request.params or request.url}): a loop"
            )
        self._seen.add(marker)

    def batch(self, page: Page) -> PageBatch:
        cap_pages, cap_records = self.options.max_pages, self.options.max_records
        records = page.records if cap_records is None else page.records[: max(0, cap_records - self.records)]
        self.pages += 1
        self.records += len(records)
        following = self.strategy.next(page)
        if (cap_pages is not None and self.pages >= cap_pages) or (
            cap_records is not None and self.records >= cap_records
        ):
            following = None
        return PageBatch(records, following, self.strategy.announced_total(page))


def paging_flow(strategy: Pagination, options: PagingOptions, where: str, window: Window) -> PagingFlow:
    """The decisions of a whole scan, as steps for a driver (see the module docstring). A driver throws a
    failed fetch in at the Collect step: a page asked only to confirm the end (after a short page, without
    a total) that the API answers with 404 *is* the end (Django REST framework's page numbers, Clazar)."""
    tally = _Tally(strategy, options, where)
    request: PageRequest | None = options.start or strategy.first(options.params)
    while request is not None:
        tally.guard(request)
        yield Fetch(request)
        try:
            response = yield COLLECT
        except VendorApiError as exc:
            if not (request.confirms is not None and exc.status == 404):
                raise
            log.info("%s: the page after a short page answers 404: the short page was the last", where)
            yield Emit(PageBatch([], None))
            return
        page = strategy.read(response, request, where)  # type: ignore[arg-type]
        batch = tally.batch(page)
        yield Emit(batch)
        request = batch.next_request
        planned = strategy.plan(page) if options.concurrency != 1 and request is not None else None
        if planned and planned[0] == request:
            request = yield from _fetch_ahead(tally, iter(planned), window, request)


def _fetch_ahead(tally: _Tally, planned: Iterator[PageRequest], window: Window, expected: PageRequest) -> Generator[
    Step, httpx.Response | None, PageRequest | None
]:
    """Pages of the plan, a window of them in flight, handed out in order. Returns None when the scan is
    done, or the request to go on from when a page showed the plan wrong (its pages in flight dropped)."""
    in_flight: list[PageRequest] = []
    yield from _fill(in_flight, planned, window)
    while in_flight:
        request = in_flight.pop(0)
        if request != expected:  # the page before ended elsewhere than planned: never skip that range
            yield DROP
            return expected
        tally.guard(request)
        page = tally.strategy.read((yield COLLECT), request, tally.where)  # type: ignore[arg-type]
        window.page_done()
        batch = tally.batch(page)
        yield Emit(batch)
        if batch.next_request is None:
            return None
        expected = batch.next_request
        yield from _fill(in_flight, planned, window)
    return expected  # the plan ran out before the pages did (a total too small): go on one by one


def _fill(in_flight: list[PageRequest], planned: Iterator[PageRequest], window: Window) -> PagingFlow:
    """Start pages until the window is full (or the plan is done)."""
    while len(in_flight) < window.limit and (request := next(planned, None)) is not None:
        yield Fetch(request)
        in_flight.append(request)
