"""The paging loop through its drivers (pagination/drivers.py, walk.py, strategies.py): stop rules, caps,
resumption, fetching ahead in order, and clear refusals of odd pages."""

from __future__ import annotations

import httpx
import pytest

from airflow_vendorauth.exceptions import PaginationError, ScanStopped
from airflow_vendorauth.pagination import (
    CursorPagination,
    NextLinkPagination,
    OffsetPagination,
    PageBatch,
    PageNumberPagination,
    PageRequest,
    Pagination,
    PagingOptions,
)
from airflow_vendorauth.pagination.detect import DetectedPagination
from airflow_vendorauth.pagination.drivers import apage_batches, page_batches

TOTAL = 23


def batches(fetch, strategy: Pagination, **options) -> list[PageBatch]:  # type: ignore[no-untyped-def]
    """Every batch of a scan; ``fetch(params, url)`` plays the API."""
    return list(page_batches(lambda r: fetch(r.params, r.url), strategy, PagingOptions(**options), "test"))


def iterate_pages(fetch, strategy: Pagination, **options) -> list:  # type: ignore[no-untyped-def]
    return [record for batch in batches(fetch, strategy, **options) for record in batch.records]


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
    ("strategy", "pages"),
    [
        # without a total, the short last page is confirmed by one more (empty) page
        (PageNumberPagination(page_size=5, records_path="items"), 6),
        (PageNumberPagination(page_size=5, records_path="items", total_path="meta.total"), 5),
        (OffsetPagination(limit=5, records_path="items"), 6),
        (OffsetPagination(limit=5, records_path="items", total_path="meta.total"), 5),
        (CursorPagination(
            cursor_param="cursor", next_cursor_path="next", records_path="items", limit_param="limit", limit=5
        ), 5),
    ],
)
def test_every_strategy_yields_every_record_once_in_order(strategy, pages: int) -> None:  # type: ignore[no-untyped-def]
    scan = batches(numbered, strategy)
    assert [r for b in scan for r in b.records] == list(range(TOTAL))
    assert len(scan) == pages and scan[-1].next_request is None


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
    scan = page_batches(lambda r: numbered(r.params, r.url), strategy, PagingOptions(), "test")
    next(scan)
    second = next(scan)
    checkpoint = PageRequest.from_json(second.next_request.to_json())  # type: ignore[union-attr]
    assert iterate_pages(numbered, strategy, start=checkpoint) == list(range(10, TOTAL))


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


#: A bound on the looping scans below: without the loop guard they end here, without an error, and the
#: test fails at once instead of running forever (issue 31, case 11).
BOUND = 500


def stuck(params: dict, url: str | None) -> httpx.Response:
    """An API stuck on page 2: its next cursor, body link and Link header always name page 2 again."""
    return httpx.Response(
        200, json={"items": [1], "next": "2", "link": "https://x.example/l?page=2"},
        headers={"Link": '<https://x.example/l?page=2>; rel="next"'},
    )


LOOPING = {
    "cursor": CursorPagination(next_cursor_path="next", records_path="items"),
    "next_link body": NextLinkPagination(next_path="link", records_path="items"),
    "next_link header": NextLinkPagination(records_path="items"),
    "recognised": DetectedPagination(),
}


@pytest.mark.parametrize("style", list(LOOPING))
def test_a_repeated_next_page_is_a_loop_not_an_endless_scan(style: str) -> None:
    scan: list[PageBatch] = []
    with pytest.raises(PaginationError, match=r"the API sent the same next page twice.*a loop"):
        for batch in page_batches(lambda r: stuck(r.params, r.url), LOOPING[style], PagingOptions(max_pages=BOUND), "t"):
            scan.append(batch)
    assert len(scan) == 2  # page 1, page 2; page 2 again is refused before it is fetched


@pytest.mark.parametrize("style", list(LOOPING))
async def test_a_repeated_next_page_is_a_loop_for_the_async_driver_too(style: str) -> None:
    async def fetch(request: PageRequest) -> httpx.Response:
        return stuck(request.params, request.url)

    with pytest.raises(PaginationError, match="a loop"):
        async for _ in apage_batches(fetch, LOOPING[style], PagingOptions(max_pages=BOUND), "t"):
            pass


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

    scan = batches(slow, strategy, concurrency=3)
    assert [r for b in scan for r in b.records] == list(range(TOTAL))
    assert len(scan) == 5 and scan[-1].next_request is None
    assert 1 < peak[0] <= 3


def test_concurrent_fetching_respects_the_caps() -> None:
    strategy = PageNumberPagination(page_size=5, records_path="items", total_path="meta.total")
    assert list(iterate_pages(numbered, strategy, concurrency=4, max_records=12)) == list(range(12))
    assert len(list(iterate_pages(numbered, strategy, concurrency=4, max_pages=2))) == 10


async def test_async_concurrent_fetching_yields_the_same_records_in_order() -> None:
    import asyncio

    async def fetch(request: PageRequest) -> httpx.Response:
        await asyncio.sleep(0.01 * (int(request.params["page"]) % 3))  # out-of-order completion
        return numbered(request.params, request.url)

    strategy = PageNumberPagination(page_size=5, records_path="items", total_path="meta.total")
    scan = apage_batches(fetch, strategy, PagingOptions(concurrency=4), "test")
    assert [r async for b in scan for r in b.records] == list(range(TOTAL))


async def test_async_and_sync_drivers_hand_out_the_same_batches() -> None:
    strategy = PageNumberPagination(page_size=5, records_path="items", total_path="meta.total")

    async def fetch(request: PageRequest) -> httpx.Response:
        return numbered(request.params, request.url)

    for options in (PagingOptions(), PagingOptions(concurrency=3), PagingOptions(max_records=12, concurrency=2)):
        sync = list(page_batches(lambda r: numbered(r.params, r.url), strategy, options, "test"))
        assert [b async for b in apage_batches(fetch, strategy, options, "test")] == sync


@pytest.mark.parametrize("concurrency", [1, 3, "auto"])
async def test_both_drivers_refuse_a_recognised_page_whose_total_is_high_before_handing_out_a_record(
    concurrency: int | str,
) -> None:
    """One page that announces more records than it holds and links to no next page (found as an "async
    loss" by the exactly-once property; it was that test's retry): sync and async refuse it alike, no batch."""
    answer = {"items": [{"id": 0}, {"id": 1}], "meta": {"total": 9}}
    options = PagingOptions(concurrency=concurrency)  # type: ignore[arg-type]

    async def fetch(request: PageRequest) -> httpx.Response:
        return httpx.Response(200, json=answer)

    handed: list[PageBatch] = []
    with pytest.raises(PaginationError, match=r"announces 9 records .* links to no next page"):
        handed += page_batches(lambda r: httpx.Response(200, json=answer), DetectedPagination(), options, "t")
    with pytest.raises(PaginationError, match=r"announces 9 records .* links to no next page"):
        handed += [b async for b in apage_batches(fetch, DetectedPagination(), options, "t")]
    assert handed == []


def test_stopping_early_cancels_the_pages_fetched_ahead() -> None:
    import time

    started: list[int] = []

    def slow(params: dict, url: str | None) -> httpx.Response:
        started.append(int(params["page"]))
        time.sleep(0.05)
        return numbered(params, url)

    strategy = PageNumberPagination(page_size=1, records_path="items", total_path="meta.total")
    scan = page_batches(lambda r: slow(r.params, r.url), strategy, PagingOptions(concurrency=2), "test")
    assert next(scan).records == [0]
    scan.close()  # the caller stops after one page
    assert len(started) <= 1 + 2 * 2  # the first page and at most one window ahead, not all 23


@pytest.mark.parametrize("received_by", ["main thread", "another thread"])
@pytest.mark.parametrize("stop", [KeyboardInterrupt, ScanStopped])
def test_a_stop_does_not_wait_for_the_pages_in_flight(stop: type[BaseException], received_by: str) -> None:
    """Airflow's SIGTERM (its handler raises ScanStopped through the operator's on_kill) or a Ctrl-C,
    arriving while the scan waits for a slow page, ends the scan without waiting for the pages in flight:
    the final checkpoint commit comes next, and the supervisor's SIGKILL follows 5 s after its SIGTERM.

    The kernel may hand a process's signal to any thread that does not block it. Python runs the handler in
    the main thread, but only when that thread next runs bytecode: a main thread asleep in an untimed wait
    for a page would not notice a signal another thread received until the page came back (a CI run on
    2026-12-06 saw exactly that, 10 s late). "another thread" forces that case by blocking the signal in
    the main thread while it waits."""
    import os
    import signal
    import threading
    import time

    release, entered, finished, masked = threading.Event(), threading.Event(), threading.Event(), threading.Event()

    def fetch(request: PageRequest) -> httpx.Response:
        if request.params["page"] > 1:  # the pages ahead hang, as a slow API's do
            entered.set()
            release.wait(10)
            finished.set()
        return numbered(request.params, request.url)

    def on_signal(signum: int, frame: object) -> None:
        raise stop()

    def signal_once_in_flight() -> None:
        if entered.wait(5) and masked.wait(5):
            time.sleep(0.2)  # the main thread is asleep in its wait for page 2 by now
            if received_by == "main thread":
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)
            else:
                os.kill(os.getpid(), signal.SIGUSR1)  # the main thread blocks it: this thread receives it

    strategy = PageNumberPagination(page_size=1, records_path="items", total_path="meta.total")
    scan = page_batches(fetch, strategy, PagingOptions(concurrency=3), "test")
    previous = signal.signal(signal.SIGUSR1, on_signal)
    signaller = threading.Thread(target=signal_once_in_flight)
    try:
        assert next(scan).records == [0]
        signaller.start()
        if received_by == "another thread":  # after the page threads and the signaller began: they do not block it
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        masked.set()
        with pytest.raises(stop):
            next(scan)  # waits for page 2, which hangs: the signal arrives meanwhile
        assert entered.is_set()
        assert not finished.is_set()  # the scan ended while a page was still in flight
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        release.set()
        signaller.join()
        signal.signal(signal.SIGUSR1, previous)


def test_an_early_end_waits_for_the_pages_in_flight() -> None:
    """A caller that stops reading (max pages reached, GeneratorExit) is no stop signal: the threads are
    joined, so none is left using the client the hook closes next."""
    import threading

    def fetch(request: PageRequest) -> httpx.Response:
        if request.params["page"] > 1:
            threading.Event().wait(0.2)
        return numbered(request.params, request.url)

    strategy = PageNumberPagination(page_size=1, records_path="items", total_path="meta.total")
    scan = page_batches(fetch, strategy, PagingOptions(concurrency=3), "test")
    assert next(scan).records == [0]
    started = threading.active_count()
    scan.close()
    assert threading.active_count() < started  # the page threads ended before close() returned


def test_the_sync_driver_runs_as_many_fetches_as_the_window_allows_now() -> None:
    """The adaptive window moves: its thread count must follow it both ways, since no gate around each
    request holds the line (a throttled scan that kept its threads would keep hammering the API)."""
    import threading
    import time

    from airflow_vendorauth.pagination.drivers import _Workers

    allowed = [6]
    active, peaks = [0], {6: 0, 2: 0}
    guard = threading.Lock()

    def slow(request: PageRequest) -> httpx.Response:
        with guard:
            active[0] += 1
            phase = allowed[0]
        time.sleep(0.01)
        with guard:
            peaks[phase] = max(peaks[phase], active[0]) if phase == allowed[0] else peaks[phase]
            active[0] -= 1
        return httpx.Response(200)

    workers = _Workers(slow, lambda: allowed[0])
    futures = [workers.submit(PageRequest(params={"page": n})) for n in range(60)]
    for future in futures[:30]:
        future.result()
    assert peaks[6] == 6 and len(workers.started) == 6  # grew to the room it had, no more
    allowed[0] = 2  # throttled: halve, and halve again
    for future in futures[30:]:
        future.result()
    later = [workers.submit(PageRequest(params={"page": n})) for n in range(60, 100)]
    for future in later:
        future.result()
    assert workers.live == 2 and peaks[2] <= 2 + 4  # the four surplus threads retired after their page
    active[0], peaks[2] = 0, 0
    last = [workers.submit(PageRequest(params={"page": n})) for n in range(100, 140)]
    for future in last:
        future.result()
    assert peaks[2] == 2  # from then on: exactly the two the window allows
    workers.close()
    assert not any(thread.is_alive() for thread in workers.started)


def test_an_async_scan_ended_early_leaves_no_page_in_flight() -> None:
    """The async twin of test_an_early_end_waits_for_the_pages_in_flight: pages fetched ahead are cancelled
    and have ended when the scan's close returns, so none outlives it to use the client the hook closes next
    (or to give its quota permit back after ``asyncio.run`` has shut its executor down)."""
    import asyncio

    started: list[int] = []
    ended: list[int] = []

    async def fetch(request: PageRequest) -> httpx.Response:
        if request.params["page"] > 2:  # the pages ahead of the second hang
            started.append(request.params["page"])
            try:
                await asyncio.sleep(10)
            finally:
                ended.append(request.params["page"])
        return numbered(request.params, request.url)

    async def run() -> None:
        strategy = PageNumberPagination(page_size=1, records_path="items", total_path="meta.total")
        scan = apage_batches(fetch, strategy, PagingOptions(concurrency=3), "test")
        assert (await scan.__anext__()).records == [0]
        assert (await scan.__anext__()).records == [1]
        await asyncio.sleep(0.05)  # the pages ahead are in flight
        await scan.aclose()
        assert started and sorted(ended) == sorted(started)

    asyncio.run(run())
