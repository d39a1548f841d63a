"""Property-based (Hypothesis): over generated API shapes, every record lands exactly once, in order, and
the summary matches the file, or the task fails naming the shortfall; never a silent short file.

Shapes: page numbers, offsets, cursors and next links (absolute, /root-relative, relative, ?query-only;
in the body or a ``Link`` header), described or recognised from the first answer (no ``pagination``
extra); a server cap below the asked page size; short and empty results;
totals that are true, too high, too low or absent; 429 and 503 answers (retried); a crash at a random
request, followed by a retry that resumes with the partial file, without it (another machine), or from an
older checkpoint than the last (a process killed between commits); a page served short in the middle of
the records where the API still says where the next one starts (offsets without a total included: the
short page is confirmed by the next one). Sync through ``stream_to_jsonl`` (the
operators' path), async through ``apage_batches`` resumed from a batch's checkpointed request; concurrency
1, 3 and "auto". Bounded for ``make test``: ``max_examples`` per test, no per-example deadline (timing
noise on a shared machine), about 20 s in all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_vendorauth.exceptions import PaginationError
from airflow_vendorauth.operators.output import Checkpoint
from airflow_vendorauth.operators.streaming import stream_to_jsonl
from airflow_vendorauth.pagination import (
    CursorPagination,
    NextLinkPagination,
    OffsetPagination,
    PageNumberPagination,
    PageRequest,
    Pagination,
    PagingOptions,
)
from airflow_vendorauth.pagination.detect import DetectedPagination
from airflow_vendorauth.retry import RetryPolicy
from tests.unit.fakes import hook_for, set_connection

LOG = logging.getLogger("properties")
ASKED = 20
ENDPOINT = "/v1/items"
LINK_KINDS = ["absolute", "root", "relative", "query", "header"]
FAST = RetryPolicy(max_attempts=4, initial_wait_seconds=0.001, max_wait_seconds=0.002)
BUDGET = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


class Crash(Exception):
    """A try that dies mid-scan."""


@dataclass
class Shape:
    style: str
    records: int
    cap: int
    total: str  # "true", "high", "low", "absent"
    link: str
    faults: dict[int, int]  # request number -> 429 or 503 (answered once)
    crash_at: int | None  # request number whose answer ends the first try
    short_at: int | None  # request number served fewer records than the page holds (offsets, cursors, links)
    resume: str  # "partial", "gone", "older"
    concurrency: int | str
    fail_on_shortfall: bool

    def can_serve_short(self) -> bool:
        """A page shorter than the others that is not the last one: only where the API still says where
        the next page starts (offsets, cursors, links; without a total, a short page is confirmed by
        asking for the next one). By page numbers, the records a server left out of a page are gone (the
        total check then speaks, or, without a total, the confirmation fails the scan)."""
        return self.style in ("cursor", "next_link", "detected", "offset")

    @property
    def announced(self) -> int | None:
        return {"true": self.records, "high": self.records + 7, "low": max(0, self.records - 7), "absent": None}[
            self.total
        ]

    def pagination(self) -> Pagination:
        total_path = None if self.total == "absent" else "meta.total"
        if self.style == "page_number":
            return PageNumberPagination(page_size=ASKED, records_path="items", total_path=total_path)
        if self.style == "offset":
            return OffsetPagination(limit=ASKED, records_path="items", total_path=total_path)
        if self.style == "cursor":
            return CursorPagination(next_cursor_path="next", records_path="items", total_path=total_path,
                                    limit_param="limit", limit=ASKED)
        if self.style == "detected":  # no pagination described: recognised from the first answer
            return DetectedPagination()
        return NextLinkPagination(next_path=None if self.link == "header" else "next", records_path="items",
                                  total_path=total_path)


shapes = st.builds(
    Shape,
    style=st.sampled_from(["page_number", "offset", "cursor", "next_link", "detected"]),
    records=st.integers(0, 160),
    cap=st.integers(3, ASKED),
    total=st.sampled_from(["true", "true", "high", "low", "absent"]),
    link=st.sampled_from(LINK_KINDS),
    faults=st.dictionaries(st.integers(1, 30), st.sampled_from([429, 503]), max_size=3),
    crash_at=st.none() | st.integers(1, 40),
    short_at=st.none() | st.integers(1, 12),
    resume=st.sampled_from(["partial", "gone", "older"]),
    concurrency=st.sampled_from([1, 3, "auto"]),
    fail_on_shortfall=st.booleans(),
)


@dataclass
class Api:
    """The generated API: serves ``shape.records`` records (``{"id": i}``) in its style."""

    shape: Shape
    requests: int = 0
    crashed: bool = False
    in_flight: int = 0
    peak: int = 0
    guard: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self.guard:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def leave(self) -> None:
        with self.guard:
            self.in_flight -= 1

    def most_in_flight(self) -> int:
        """What the scan may hold at once: N, or the vendor's ceiling (Clazar: 4) for "auto"."""
        return 4 if self.shape.concurrency == "auto" else int(self.shape.concurrency)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        self.enter()
        try:
            time.sleep(0.0005)  # long enough for requests to overlap
            return self.answer(request)
        finally:
            self.leave()

    def answer(self, request: httpx.Request) -> httpx.Response:
        with self.guard:
            self.requests += 1
            n = self.requests
            fault = self.shape.faults.pop(n, None)
            crash = not self.crashed and self.shape.crash_at == n
            self.crashed |= crash
        if crash:
            return httpx.Response(400, json={"detail": "crash"})  # not retried: the try fails
        if fault:
            return httpx.Response(fault, headers={"Retry-After": "0"}, json={"detail": "later"})
        return self.page(request, short=n == self.shape.short_at and self.shape.can_serve_short())

    def page(self, request: httpx.Request, short: bool = False) -> httpx.Response:
        s, q = self.shape, request.url.params
        assert request.url.path == ENDPOINT, request.url  # every link resolved against the page that carried it
        size = min(ASKED, s.cap)
        if s.style == "page_number":
            size = min(int(q["per_page"]), s.cap)
            start = (int(q["page"]) - 1) * size
        elif s.style == "offset":
            size, start = min(int(q["limit"]), s.cap), int(q["offset"])
        else:
            start = int(q.get("cursor") or q.get("p") or 0)
        end = min(start + (max(1, size // 2) if short else size), s.records)
        body: dict[str, Any] = {"items": [{"id": i} for i in range(min(start, s.records), end)]}
        if s.announced is not None:
            body["meta"] = {"total": s.announced}
        headers = {}
        if end < s.records:
            body["next"] = str(end) if s.style == "cursor" else self.link(request, end)
            if s.link == "header" and s.style in ("next_link", "detected"):
                headers["Link"] = f'<{body.pop("next")}>; rel="next"'
        return httpx.Response(200, json=body, headers=headers)

    def link(self, request: httpx.Request, start: int) -> str:
        return {
            "absolute": f"{request.url.scheme}://{request.url.host}{ENDPOINT}?p={start}",
            "root": f"{ENDPOINT}?p={start}",
            "relative": f"{ENDPOINT.rsplit('/', 1)[1]}?p={start}",
            "query": f"?p={start}",
            "header": f"{ENDPOINT}?p={start}",
        }[self.shape.link]


class Store:
    """task_state_store over a dict, keeping every commit (to play a kill between commits)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.history: list[Any] = []

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))
        self.history.append(self.data[key])

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def refused(shape: Shape, error: BaseException | None) -> bool:
    """Recognised paging refuses a first answer that announces more records than it holds and links to no
    next page (never taken for the last page); only that, and only then."""
    if error is None or "links to no next page" not in str(error):
        return False
    assert shape.style == "detected" and shape.announced is not None and shape.announced > shape.records, error
    return True


def check_outcome(shape: Shape, ids: list[int], summary: dict[str, Any] | None, error: BaseException | None) -> None:
    """The promise: exactly once, in order, summary == file; a shortfall fails loudly or is reported."""
    assert ids == list(range(len(ids))), "records missing, repeated or out of order"
    announced = shape.announced
    if refused(shape, error):
        assert ids == [], "records written before the paging was refused"
        return
    paged_by_total = shape.style in ("page_number", "offset") and announced is not None
    if paged_by_total and announced is not None and announced < shape.records:
        assert len(ids) >= min(announced, 1) or shape.records == 0  # a total too low stops early: a prefix
    else:
        assert len(ids) == shape.records  # every record
    if error is not None:
        assert isinstance(error, PaginationError) and shape.fail_on_shortfall, error
        assert f"announced {announced} records but the pages held {len(ids)}" in str(error)
        return
    assert summary is not None and summary["records"] == len(ids)
    assert summary["expected_records"] == announced
    if shape.fail_on_shortfall and announced is not None:
        assert len(ids) >= announced, "a short file passed silently"


def sync_scan(shape: Shape, api: Api, out: Path, store: Store) -> dict[str, Any]:
    with hook_for("clazar", transport=httpx.MockTransport(api), retry_policy=FAST) as hook:
        options = PagingOptions(pagination=shape.pagination(), concurrency=shape.concurrency)  # type: ignore[arg-type]
        return stream_to_jsonl(
            hook, ENDPOINT, str(out), context={"task_state_store": store}, log=LOG, checkpoint_key="k",
            options=options, fail_on_shortfall=shape.fail_on_shortfall,
        )


@pytest.fixture
def clazar(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "clazar")


@BUDGET
@given(shape=shapes)
def test_sync_scans_land_every_record_exactly_once_through_crashes_and_retries(
    shape: Shape, clazar: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path_factory.mktemp("scan") / "items.jsonl"
    api, store = Api(shape), Store()
    summary, error = None, None
    for attempt in range(3):
        try:
            summary = sync_scan(shape, api, out, store)
            break
        except PaginationError as exc:
            error = exc
            break
        except Exception:  # noqa: BLE001 - the crash (a 400), or a fault past the retries: Airflow retries
            assert attempt < 2, "a retry failed because of the previous try"
            partial = Path(str(out) + ".partial")
            if shape.resume == "gone":
                partial.unlink(missing_ok=True)
            elif shape.resume == "older" and store.history:
                store.data["k"] = store.history[0]  # killed before the later commits
    assert api.peak <= api.most_in_flight(), f"{api.peak} requests in flight"
    final = out if error is None else Path(str(out) + ".partial")
    ids = [json.loads(line)["id"] for line in final.open()] if final.exists() else []
    check_outcome(shape, ids, summary, error)
    if error is None:
        assert not Path(str(out) + ".partial").exists() and store.data == {}


@BUDGET
@given(shape=shapes)
def test_async_scans_hand_out_every_record_exactly_once_through_crashes_and_resumes(shape: Shape, clazar: None) -> None:
    errors: list[Exception] = []

    async def run(api: Api) -> list[int]:
        ids: list[int] = []
        start: PageRequest | None = None
        hook = hook_for(
            "clazar", transport=httpx.MockTransport(api), async_transport=httpx.MockTransport(_async(api)), retry_policy=FAST
        )
        try:
            await hook.asettings()
            for attempt in range(3):
                options = PagingOptions(pagination=shape.pagination(), concurrency=shape.concurrency, start=start)  # type: ignore[arg-type]
                try:
                    async for batch in hook.client.apage_batches(ENDPOINT, options):
                        ids.extend(r["id"] for r in batch.records)
                        start = batch.next_request  # the checkpoint a sink would commit
                        if start is None:
                            return ids
                    return ids
                except PaginationError as exc:
                    # Final, as in the sync test (and stream_to_jsonl): the paging was refused (or looped), and
                    # every retry would say so again. Retrying it let a crash on a later try's request become
                    # the last error, which hid the refusal from the check below (a loss that was none).
                    errors.append(exc)
                    return ids
                except Exception as exc:  # noqa: BLE001 - the crash: resume from the last batch handed out
                    errors.append(exc)
                    assert attempt < 2, "a retry failed because of the previous try"
                    if start is None and not ids:
                        continue
                    if start is None:
                        return ids
            return ids
        finally:
            await hook.aclose()

    api = Api(shape)
    ids = asyncio.run(run(api))
    assert api.peak <= api.most_in_flight(), f"{api.peak} requests in flight"
    assert ids == list(range(len(ids)))
    if refused(shape, errors[-1] if errors else None):
        assert ids == []
        return
    announced = shape.announced
    if not (shape.style in ("page_number", "offset") and announced is not None and announced < shape.records):
        assert len(ids) == shape.records


@pytest.mark.parametrize("crash_at", [1, 2, 3, None])
@pytest.mark.parametrize("records", [1, 2])
def test_async_detected_one_page_scan_whose_total_is_high_is_refused_alike_through_a_crash(
    records: int, crash_at: int | None, clazar: None
) -> None:
    """Regression (found by the property on 2026-12-06, once pinned as an async data loss): recognised paging,
    one page whose total announces more records than it holds, the third request failing. The first
    answer is refused ("links to no next page": never taken for the last page), by the sync and the async
    driver alike, before any record is handed out. The async property retried that refusal like a crash, so
    the third try met the 400 and the refusal was no longer the last error: "no record" was then judged a
    loss. A refusal is final there now, as in the sync property: nothing handed out, the refusal said."""
    shape = Shape(style="detected", records=records, cap=3, total="high", link="absolute", faults={},
                  crash_at=crash_at, short_at=None, resume="partial", concurrency=1, fail_on_shortfall=False)
    test_async_scans_hand_out_every_record_exactly_once_through_crashes_and_resumes.hypothesis.inner_test(  # type: ignore[attr-defined]
        shape=shape, clazar=None
    )


def _async(api: Api) -> Any:
    async def handler(request: httpx.Request) -> httpx.Response:
        api.enter()
        try:
            await asyncio.sleep(0.0005)  # long enough for requests to overlap
            return api.answer(request)
        finally:
            api.leave()

    return handler


def test_checkpoints_of_the_scan_round_trip() -> None:
    """The checkpoint the property test resumes from is the JSON a real store keeps."""
    point = Checkpoint(10, 2, 1, PageRequest({"page": 2}, size=5), "ab", 40)
    assert Checkpoint.from_json(json.loads(json.dumps(point.to_json()))) == point
