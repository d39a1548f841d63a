"""Thin drivers of :func:`~airflow_vendorauth.pagination.walk.paging_flow`: they fetch, it decides.

The sync driver fetches ahead with a thread pool (inline when ``concurrency`` is 1), the async one
with asyncio tasks. Pages still in flight when the caller stops early are cancelled.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_futures
from queue import SimpleQueue

import httpx

from airflow_vendorauth.pagination.adaptive import AdaptiveConcurrency
from airflow_vendorauth.pagination.strategies import PageRequest, Pagination
from airflow_vendorauth.pagination.walk import (
    Collect,
    Drop,
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


def _refused(flow: PagingFlow, exc: Exception) -> Step | None:
    """A fetch failed: the flow decides at its Collect step (it re-raises all but a confirmation's 404)."""
    try:
        return flow.throw(exc)
    except StopIteration:
        return None


class _Workers:
    """Threads that fetch the queued pages, as many as the window lets run at once *now* (``threads()``):
    one is spawned when a page finds none idle and there is room, and a thread that finishes a page while
    there are more threads than room retires. So the thread count *is* the concurrency limit, with no
    lock around each request: a gate on every request (a lock and a condition shared with the paging
    loop) cost 12-15 % of a fast scan on two cores, measured with ``benchmarks/scan.py``. What
    :class:`~concurrent.futures.ThreadPoolExecutor` does, with a ceiling that moves both ways."""

    def __init__(self, fetch: Callable[[PageRequest], httpx.Response], threads: Callable[[], int]) -> None:
        self.fetch, self.threads = fetch, threads
        self.queue: SimpleQueue[tuple[Future[httpx.Response], PageRequest] | None] = SimpleQueue()
        self.idle = threading.Semaphore(0)
        self.guard = threading.Lock()
        self.live = 0
        self.started: list[threading.Thread] = []

    def submit(self, request: PageRequest) -> Future[httpx.Response]:
        future: Future[httpx.Response] = Future()
        self.queue.put((future, request))
        if not self.idle.acquire(timeout=0):
            with self.guard:
                room = self.live < max(1, self.threads())
                if room:
                    self.live += 1
            if room:
                worker = threading.Thread(target=self._work, name=f"vendorauth-page-{len(self.started)}", daemon=True)
                self.started.append(worker)
                worker.start()
        return future

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            future, request = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(self.fetch(request))
                except BaseException as exc:  # noqa: BLE001 - re-raised by .result(), where the flow expects it
                    future.set_exception(exc)
            del item, future  # a finished page is the caller's now: hold no reference while idle
            with self.guard:
                retire = self.live > max(1, self.threads())  # the window shrank (a 429): one thread fewer
                if retire:
                    self.live -= 1
            if retire:
                return  # queued pages are taken by the threads that stay (there is always one)
            self.idle.release()
        with self.guard:
            self.live -= 1

    def close(self, wait: bool = True) -> None:
        """Stop every thread once its page is done (cancelled pages are skipped); with ``wait``, wait for them."""
        for _ in self.started:  # more stop marks than live threads is harmless: nobody reads the rest
            self.queue.put(None)
        if wait:
            for worker in self.started:
                worker.join()


# How long the main thread sleeps at most between looks at a stop signal while it waits for a page.
SIGNAL_LOOK_SECONDS = 0.2


class _Threads:
    """Pages in flight as futures: worker threads', or done at once when one page runs at a time."""

    def __init__(self, fetch: Callable[[PageRequest], httpx.Response], threads: int | Callable[[], int]) -> None:
        self.fetch = fetch
        most = threads if callable(threads) else (lambda: threads)
        self.pool = _Workers(fetch, most) if callable(threads) or threads > 1 else None
        self.pending: deque[Future[httpx.Response]] = deque()

    def act(self, step: Fetch | Collect | Drop) -> httpx.Response | None:
        if isinstance(step, Collect):
            head = self.pending[0]
            while not head.done():
                # In slices, never one untimed wait: the kernel may hand Airflow's SIGTERM to a page thread, and
                # Python runs the handler in the main thread only when it next runs bytecode. An untimed wait
                # would notice the stop only when the page came back (seen in CI: 10 s late, and the supervisor's
                # SIGKILL comes 5 s after its SIGTERM).
                wait_for_futures((head,), timeout=SIGNAL_LOOK_SECONDS)
            return self.pending.popleft().result()
        if isinstance(step, Drop):
            while self.pending:
                self.pending.popleft().cancel()
            return None
        self.pending.append(self.pool.submit(step.request) if self.pool else self._now(step.request))
        return None

    def _now(self, request: PageRequest) -> Future[httpx.Response]:
        done: Future[httpx.Response] = Future()
        try:
            done.set_result(self.fetch(request))
        except BaseException as exc:  # noqa: BLE001 - re-raised by .result(), where the flow expects it
            done.set_exception(exc)
        return done

    def close(self, wait: bool = True) -> None:
        for future in self.pending:
            future.cancel()
        if self.pool is not None:
            self.pool.close(wait)


#: How long the async driver waits for its cancelled pages to end when the scan ends early.
CANCELLED_PAGES_WAIT_SECONDS = 5.0


class _Tasks:
    """Pages in flight as asyncio tasks."""

    def __init__(self, fetch: Callable[[PageRequest], Awaitable[httpx.Response]]) -> None:
        self.fetch = fetch
        self.pending: deque[asyncio.Future[httpx.Response]] = deque()

    async def act(self, step: Fetch | Collect | Drop) -> httpx.Response | None:
        if isinstance(step, Collect):
            return await self.pending.popleft()
        if isinstance(step, Drop):
            while self.pending:
                self.pending.popleft().cancel()
            return None
        self.pending.append(asyncio.ensure_future(self.fetch(step.request)))
        return None

    async def aclose(self) -> None:
        """Cancel the pages still in flight and wait (briefly) until they have ended, as the sync driver joins
        its threads: none is left using the client the hook closes next, and each gives its quota permit back
        while the loop still runs (after ``asyncio.run`` returns, its executor takes no more work)."""
        for task in self.pending:
            task.cancel()
        if self.pending:
            await asyncio.wait(list(self.pending), timeout=CANCELLED_PAGES_WAIT_SECONDS)


def window_for(options: PagingOptions, ceiling: int) -> tuple[Window, int | Callable[[], int]]:
    """The in-flight window of a scan and how many pages are fetched at once (threads, for the sync driver):
    a number, or the adaptive window's current concurrency."""
    if options.concurrency == "auto":
        window = AdaptiveConcurrency(ceiling)
        return window, lambda: window.concurrency
    return FixedWindow(options.concurrency), options.concurrency


def page_batches(
    fetch: Callable[[PageRequest], httpx.Response],
    strategy: Pagination,
    options: PagingOptions,
    where: str,
    window: Window | None = None,
    threads: int | Callable[[], int] = 1,
) -> Iterator[PageBatch]:
    """Each page's batch, in order, one page in memory (the window's pages when fetching ahead)."""
    if window is None:
        window, threads = window_for(options, ceiling=4)
    flow, pages = paging_flow(strategy, options, where, window), _Threads(fetch, threads)
    stopping = False
    try:
        step = _advance(flow, None)
        while step is not None:
            if isinstance(step, Emit):
                yield step.batch
                step = _advance(flow, None)
                continue
            try:
                reply = pages.act(step)
            except Exception as exc:  # noqa: BLE001 - thrown into the flow, which re-raises what it does not expect
                step = _refused(flow, exc)
            else:
                step = _advance(flow, reply)
    except BaseException as exc:
        # A stop that is no error (KeyboardInterrupt, the operators' ScanStopped on Airflow's SIGTERM) does not
        # wait for the pages in flight: the process is ending, and the scan's final checkpoint commit must come
        # before the supervisor's SIGKILL (5 s later), not after a slow request and its retries.
        stopping = not isinstance(exc, Exception | GeneratorExit)
        raise
    finally:
        pages.close(wait=not stopping)


async def apage_batches(
    fetch: Callable[[PageRequest], Awaitable[httpx.Response]],
    strategy: Pagination,
    options: PagingOptions,
    where: str,
    window: Window | None = None,
) -> AsyncGenerator[PageBatch, None]:
    """The async driver: the same batches, in the same order; pages ahead are asyncio tasks."""
    if window is None:
        window, _ = window_for(options, ceiling=4)
    gate = window.agate

    async def gated(request: PageRequest) -> httpx.Response:
        async with gate():  # at most `concurrency` requests at once, whatever the window holds
            return await fetch(request)

    flow, pages = paging_flow(strategy, options, where, window), _Tasks(gated)
    try:
        step = _advance(flow, None)
        while step is not None:
            if isinstance(step, Emit):
                yield step.batch
                step = _advance(flow, None)
                continue
            try:
                reply = await pages.act(step)
            except Exception as exc:  # noqa: BLE001 - thrown into the flow, which re-raises what it does not expect
                step = _refused(flow, exc)
            else:
                step = _advance(flow, reply)
    finally:
        await pages.aclose()
