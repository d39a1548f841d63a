"""Thin drivers of :func:`~airflow_vendorauth.pagination.walk.paging_flow`: they fetch, it decides.

The sync driver fetches ahead with a thread pool (inline when ``concurrency`` is 1), the async one
with asyncio tasks. Pages still in flight when the caller stops early are cancelled.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from airflow_vendorauth.pagination.adaptive import AdaptiveConcurrency
from airflow_vendorauth.pagination.strategies import PageRequest, Pagination
from airflow_vendorauth.pagination.walk import (
    Collect,
    Emit,
    Fetch,
    FixedWindow,
    PageBatch,
    PagingFlow,
    PagingOptions,
    Step,
    Window,
    paging_flow,
)


def _advance(flow: PagingFlow, reply: httpx.Response | None) -> Step | None:
    try:
        return flow.send(reply)
    except StopIteration:
        return None


class _Threads:
    """Pages in flight as futures: a thread pool's, or done at once when ``concurrency`` is 1."""

    def __init__(self, fetch: Callable[[PageRequest], httpx.Response], concurrency: int) -> None:
        self.fetch = fetch
        self.pool = ThreadPoolExecutor(concurrency, "vendorauth-page") if concurrency > 1 else None
        self.pending: deque[Future[httpx.Response]] = deque()

    def act(self, step: Fetch | Collect) -> httpx.Response | None:
        if isinstance(step, Collect):
            return self.pending.popleft().result()
        self.pending.append(self.pool.submit(self.fetch, step.request) if self.pool else self._now(step.request))
        return None

    def _now(self, request: PageRequest) -> Future[httpx.Response]:
        done: Future[httpx.Response] = Future()
        try:
            done.set_result(self.fetch(request))
        except BaseException as exc:  # noqa: BLE001 - re-raised by .result(), where the flow expects it
            done.set_exception(exc)
        return done

    def close(self) -> None:
        for future in self.pending:
            future.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class _Tasks:
    """Pages in flight as asyncio tasks."""

    def __init__(self, fetch: Callable[[PageRequest], Awaitable[httpx.Response]]) -> None:
        self.fetch = fetch
        self.pending: deque[asyncio.Future[httpx.Response]] = deque()

    async def act(self, step: Fetch | Collect) -> httpx.Response | None:
        if isinstance(step, Collect):
            return await self.pending.popleft()
        self.pending.append(asyncio.ensure_future(self.fetch(step.request)))
        return None

    def close(self) -> None:
        for task in self.pending:
            task.cancel()


def window_for(options: PagingOptions, ceiling: int) -> tuple[Window, int]:
    """The in-flight window of a scan and the most pages fetched at once (threads, for the sync driver)."""
    if options.concurrency == "auto":
        return AdaptiveConcurrency(ceiling), ceiling
    return FixedWindow(options.concurrency), options.concurrency


def page_batches(
    fetch: Callable[[PageRequest], httpx.Response],
    strategy: Pagination,
    options: PagingOptions,
    where: str,
    window: Window | None = None,
    threads: int = 1,
) -> Iterator[PageBatch]:
    """Each page's batch, in order, one page in memory (the window's pages when fetching ahead)."""
    if window is None:
        window, threads = window_for(options, ceiling=4)
    flow, pages = paging_flow(strategy, options, where, window), _Threads(fetch, threads)
    try:
        step = _advance(flow, None)
        while step is not None:
            if isinstance(step, Emit):
                yield step.batch
            step = _advance(flow, None if isinstance(step, Emit) else pages.act(step))
    finally:
        pages.close()


async def apage_batches(
    fetch: Callable[[PageRequest], Awaitable[httpx.Response]],
    strategy: Pagination,
    options: PagingOptions,
    where: str,
    window: Window | None = None,
) -> AsyncIterator[PageBatch]:
    """The async driver: the same batches, in the same order; pages ahead are asyncio tasks."""
    if window is None:
        window, _ = window_for(options, ceiling=4)
    flow, pages = paging_flow(strategy, options, where, window), _Tasks(fetch)
    try:
        step = _advance(flow, None)
        while step is not None:
            if isinstance(step, Emit):
                yield step.batch
            step = _advance(flow, None if isinstance(step, Emit) else await pages.act(step))
    finally:
        pages.close()
