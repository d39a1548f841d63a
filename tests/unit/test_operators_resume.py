"""Resume that trusts the file (operators/output.py), checkpoints off the hot path (operators/checkpoints.py)
and the check against the announced total (operators/streaming.py): issue 22 cases 3, 4 and 6."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import fsspec
import httpx
import pytest

from airflow_vendorauth.exceptions import PaginationError
from airflow_vendorauth.operators import checkpoints
from airflow_vendorauth.operators.output import Checkpoint, JsonLinesSink
from airflow_vendorauth.operators.streaming import stream_to_jsonl
from airflow_vendorauth.pagination import PageNumberPagination, PageRequest, PagingOptions
from tests.unit.fakes import hook_for, set_connection

LOG = logging.getLogger("test")


def lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


class DictStore:
    """task_state_store's interface over a dict; counts the commits."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.sets = 0
        self.delay = 0.0
        self.guard = threading.Lock()

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        time.sleep(self.delay)
        with self.guard:
            self.data[key] = json.loads(json.dumps(value))  # what a real store keeps: JSON
            self.sets += 1

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


# ---- the sink: trust the file -------------------------------------------------------------------------------


def two_pages_committed_one_more_written(out: str) -> tuple[JsonLinesSink, Checkpoint]:
    sink = JsonLinesSink(out)
    sink.write_page([{"id": 1}, {"id": 2}])
    committed = Checkpoint.from_json(sink.checkpoint(PageRequest({"page": 2})).to_json())
    sink.write_page([{"id": 3}])  # written after the commit: cut off on resume
    sink.abort()
    return sink, committed


def test_a_resume_cuts_the_output_back_to_the_commit(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    _, committed = two_pages_committed_one_more_written(str(out))
    resumed = JsonLinesSink(str(out), resume_from=committed)
    assert resumed.resumed and resumed.restart_reason is None and (resumed.records, resumed.pages) == (2, 1)
    resumed.write_page([{"id": 3}])
    resumed.finish()
    assert lines(out.read_text()) == [{"id": 1}, {"id": 2}, {"id": 3}]


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda p: p.unlink(), "is not there"),
        (lambda p: p.write_bytes(b'{"id":9}\n'), "fewer than"),
        (lambda p: p.write_bytes(b'{"id":1}\n{"id":7}\n{"id":3}\n'), "differs"),
    ],
)
def test_a_partial_output_missing_or_different_starts_the_scan_over(tmp_path: Path, damage: Any, says: str) -> None:
    """Issue 22 case 3: the retry on another worker found no partial file and appended to an empty one."""
    out = tmp_path / "x.jsonl"
    sink, committed = two_pages_committed_one_more_written(str(out))
    damage(Path(sink.partial))
    again = JsonLinesSink(str(out), resume_from=committed)
    assert not again.resumed and says in (again.restart_reason or "")
    assert (again.records, again.pages, again.position) == (0, 0, 0)  # counts from zero
    again.write_page([{"id": 1}])
    again.finish()
    assert lines(out.read_text()) == [{"id": 1}]  # truncated, not appended to


def test_a_checkpoint_of_an_older_version_is_not_trusted(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    _, committed = two_pages_committed_one_more_written(str(out))
    old = {k: v for k, v in committed.to_json().items() if k not in ("tail_sha256", "total")}
    again = JsonLinesSink(str(out), resume_from=Checkpoint.from_json(old))
    assert not again.resumed and "older version" in (again.restart_reason or "")
    again.abort()
    with pytest.raises(ValueError, match="not a checkpoint"):
        Checkpoint.from_json({"records": "many"})


def memory_url(name: str) -> str:
    return f"memory:///vendorauth-tests/{uuid.uuid4().hex}/{name}"


def test_object_storage_resumes_by_appending_where_the_output_is_the_checkpoints_length() -> None:
    """Issue 22 case 4: every retry to s3:// raised 'resuming is only supported for local output paths'."""
    out = memory_url("x.jsonl")
    sink = JsonLinesSink(out)
    sink.write_page([{"id": 1}])
    committed = sink.checkpoint(PageRequest({"page": 2}))
    sink.abort()  # the failed try's last commit covers everything written
    again = JsonLinesSink(out, resume_from=committed)
    assert again.resumed
    again.write_page([{"id": 2}])
    assert again.finish() == out
    fs = fsspec.filesystem("memory")
    assert lines(fs.cat(out.removeprefix("memory://")).decode()) == [{"id": 1}, {"id": 2}]
    assert not fs.exists(out.removeprefix("memory://") + ".partial")


def test_object_storage_copies_the_checkpointed_bytes_where_the_output_is_longer() -> None:
    out = memory_url("x.jsonl")
    _, committed = two_pages_committed_one_more_written(out)
    again = JsonLinesSink(out, resume_from=committed)
    assert again.resumed
    again.write_page([{"id": 3}])
    again.finish()
    assert lines(fsspec.filesystem("memory").cat(out.removeprefix("memory://")).decode()) == [
        {"id": 1}, {"id": 2}, {"id": 3}
    ]


def test_object_storage_starts_over_when_the_partial_object_is_gone() -> None:
    out = memory_url("x.jsonl")
    sink, committed = two_pages_committed_one_more_written(out)
    fsspec.filesystem("memory").rm(sink.partial.removeprefix("memory://"))
    again = JsonLinesSink(out, resume_from=committed)
    assert not again.resumed and "is not there" in (again.restart_reason or "")
    again.abort()


# ---- the scan: commits off the hot path, totals checked --------------------------------------------------------


class PagedApi:
    """``records`` records by page/per_page, at most ``cap`` a page, ``announced`` as ``total``; raises
    on the request for page ``fail_at`` once (a crash mid-scan)."""

    def __init__(self, records: int, cap: int = 10, announced: int | None = None, fail_at: int | None = None) -> None:
        self.records, self.cap, self.fail_at = records, cap, fail_at
        self.announced = records if announced is None else announced
        self.pages_served: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        page, size = int(request.url.params["page"]), min(int(request.url.params["per_page"]), self.cap)
        if page == self.fail_at:
            self.fail_at = None
            return httpx.Response(400, json={"detail": "the task dies here"})  # not retried: the try fails
        self.pages_served.append(page)
        items = [{"id": i} for i in range((page - 1) * size, min(page * size, self.records))]
        return httpx.Response(200, json={"items": items, "total": self.announced})


def scan(monkeypatch: pytest.MonkeyPatch, api: PagedApi, out: str, store: DictStore | None, **kwargs: Any) -> dict:
    set_connection(monkeypatch, "clazar")
    with hook_for("clazar", transport=httpx.MockTransport(api)) as hook:
        options = PagingOptions(
            pagination=PageNumberPagination(page_size=20, records_path="items", total_path="total"), concurrency=1
        )
        context = {"task_state_store": store} if store is not None else {}
        return stream_to_jsonl(hook, "/items", out, context=context, log=LOG, checkpoint_key="k", options=options, **kwargs)


def test_a_retry_on_the_same_machine_resumes_and_every_record_lands_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out, store = str(tmp_path / "x.jsonl"), DictStore()
    api = PagedApi(500, cap=10, fail_at=30)
    with pytest.raises(Exception, match="the task dies here"):
        scan(monkeypatch, api, out, store)
    assert Checkpoint.from_json(store.data["k"]).pages == 29  # the failed try committed its last page
    summary = scan(monkeypatch, api, out, store)
    assert lines(Path(out).read_text()) == [{"id": i} for i in range(500)]
    assert summary == {"path": out, "records": 500, "pages": 50, "expected_records": 500}
    assert api.pages_served == list(range(1, 51))  # resumed: nothing fetched twice
    assert store.data == {}


def test_a_failed_try_says_its_pages_are_kept_and_when_a_retry_cannot_help_as_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Pages written, then a request the API refuses (400: not retryable): the pages are kept for the retry,
    and the log says the error must be fixed first. Nothing written (the first page refused): no empty
    partial output is left, and the log says nothing was fetched."""
    out, store = str(tmp_path / "x.jsonl"), DictStore()
    with caplog.at_level(logging.ERROR, logger="test"), pytest.raises(Exception, match="the task dies here"):
        scan(monkeypatch, PagedApi(500, cap=10, fail_at=30), out, store)
    assert "/items stopped after 29 pages: 290 records are in" in caplog.text
    assert "(kept; a retry resumes from the last committed page once the error below is fixed)" in caplog.text
    assert Path(out + ".partial").stat().st_size > 0
    caplog.clear()
    first = str(tmp_path / "first.jsonl")
    with caplog.at_level(logging.ERROR, logger="test"), pytest.raises(Exception, match="the task dies here"):
        scan(monkeypatch, PagedApi(500, cap=10, fail_at=1), first, DictStore())
    assert "/items: nothing was fetched and no partial output is left: the first page failed" in caplog.text
    assert not Path(first + ".partial").exists() and "a retry resumes" not in caplog.text


def test_a_retry_on_another_machine_starts_over_and_every_record_lands_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out, store = str(tmp_path / "x.jsonl"), DictStore()
    api = PagedApi(500, cap=10, fail_at=30)
    with pytest.raises(Exception, match="the task dies here"):
        scan(monkeypatch, api, out, store)
    Path(out + ".partial").unlink()  # another worker: the first try's local file is not there
    with caplog.at_level(logging.WARNING, logger="test"):
        summary = scan(monkeypatch, api, out, store)
    assert "Starting /items over from its first page" in caplog.text and "is not there" in caplog.text
    assert lines(Path(out).read_text()) == [{"id": i} for i in range(500)]
    assert summary["records"] == 500 and summary["pages"] == 50


def test_a_retry_to_object_storage_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    out, store = memory_url("x.jsonl"), DictStore()
    api = PagedApi(500, cap=10, fail_at=30)
    with pytest.raises(Exception, match="the task dies here"):
        scan(monkeypatch, api, out, store)
    summary = scan(monkeypatch, api, out, store)
    assert lines(fsspec.filesystem("memory").cat(out.removeprefix("memory://")).decode()) == [
        {"id": i} for i in range(500)
    ]
    assert summary["records"] == 500 and api.pages_served == list(range(1, 51))


def test_checkpoints_are_committed_at_most_every_interval_not_after_every_page(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 26: a commit after every page cost 26 ms each inside a task. Here: the first page at once,
    then at most one commit per MIN_INTERVAL (a 200-page scan of a fast API: a handful, not 200). The API
    answers page 2 once the first commit is in (5 s at most): the committer thread may not have run before a
    50 ms scan ended on a loaded machine (CI, Python 3.13, 2026-12-06), and a scan that ends well commits
    nothing more."""
    monkeypatch.setattr(checkpoints, "MIN_INTERVAL", 60.0)
    store = DictStore()
    api = PagedApi(2000, cap=10)

    def first_commit_then(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.params["page"] == "2":
            deadline = time.monotonic() + 5.0
            while store.sets == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
        return api(request)

    scan(monkeypatch, first_commit_then, str(tmp_path / "x.jsonl"), store)  # type: ignore[arg-type]
    assert store.sets == 1  # the first page's, at once; the scan ended before the next was due


def test_a_slow_store_never_holds_up_the_pages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = DictStore()
    store.delay = 0.2  # a commit much slower than the whole scan's pages
    started = time.monotonic()
    scan(monkeypatch, PagedApi(2000, cap=10), str(tmp_path / "x.jsonl"), store)
    assert store.sets <= 2 and time.monotonic() - started < 200 * store.delay  # not one commit per page


@pytest.mark.parametrize("fail", [True, False])
def test_a_scan_short_of_the_announced_total_fails_or_warns_with_both_numbers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, fail: bool
) -> None:
    """Issue 22 case 6: announced 500, pages end at 480, and the task succeeded silently."""
    out, store = str(tmp_path / "x.jsonl"), DictStore()
    api = PagedApi(480, cap=10, announced=500)
    if fail:
        with pytest.raises(PaginationError, match=r"announced 500 records but the pages held 480 \(20 missing\)"):
            scan(monkeypatch, api, out, store)
        assert not Path(out).exists() and Path(out + ".partial").exists() and store.data == {}
    else:
        with caplog.at_level(logging.WARNING, logger="test"):
            summary = scan(monkeypatch, api, out, store, fail_on_shortfall=False)
        assert summary["records"] == 480 and summary["expected_records"] == 500
        assert "announced 500 records but the pages held 480" in caplog.text
        assert len(lines(Path(out).read_text())) == 480


def test_records_for_xcom_are_checked_against_the_announced_total_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_vendorauth.operators.api import VendorApiOperator

    set_connection(monkeypatch, "clazar")
    hook = hook_for("clazar", transport=httpx.MockTransport(PagedApi(480, cap=10, announced=500)))
    monkeypatch.setattr("airflow_vendorauth.hooks.base.hook_for_connection", lambda conn_id: hook)

    def operator(**kwargs: Any) -> VendorApiOperator:
        pagination = PageNumberPagination(page_size=20, records_path="items", total_path="total")
        return VendorApiOperator(task_id="t", conn_id="clazar", endpoint="/items", pagination=pagination, **kwargs)

    with pytest.raises(PaginationError, match="announced 500 records but the pages held 480"):
        operator().execute({})  # type: ignore[arg-type]
    assert len(operator(fail_on_shortfall=False).execute({})) == 480  # type: ignore[arg-type]


def test_a_resume_cuts_off_what_came_after_the_commit_even_when_the_retry_writes_less(tmp_path: Path) -> None:
    """The pages after the commit are fetched again, and may now be shorter (a record changed in between):
    the bytes of the failed try past the commit must not survive behind them."""
    out = tmp_path / "x.jsonl"
    sink = JsonLinesSink(str(out))
    sink.write_page([{"id": 1}])
    committed = sink.checkpoint(PageRequest({"page": 2}))
    sink.write_page([{"id": 2, "name": "a longer name than the retry will see"}])
    sink.abort()
    again = JsonLinesSink(str(out), resume_from=committed)
    again.write_page([{"id": 2}])
    again.finish()
    assert lines(out.read_text()) == [{"id": 1}, {"id": 2}]


def test_the_committer_makes_the_output_durable_before_each_commit() -> None:
    """A checkpoint is handed over flushed, not synced (durable=False): the committer syncs the output before
    the store says it holds those bytes, or a machine crash could leave a checkpoint past the file's end."""
    events: list[str] = []

    class Store:
        def set(self, key: str, value: Any) -> None:
            events.append("set")

    committer = checkpoints.Committer(Store(), "k", lambda: events.append("sync"), LOG)
    committer.offer(Checkpoint(9, 1, 1, PageRequest({"page": 2}), "ab"))
    committer.close(commit=True)
    committer2 = checkpoints.Committer(Store(), "k", lambda: events.append("sync"), LOG)
    committer2.close(commit=True)  # nothing offered: nothing to sync nor commit
    assert events == ["sync", "set"]  # once (by the thread or by close), and the sync first


def test_the_commit_interval_follows_the_commits_cost_within_its_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits take at most COMMIT_SHARE of the committer's time (26 ms -> 1.3 s), never sooner than
    MIN_INTERVAL apart nor later than MAX_INTERVAL (the pages a crash costs stay bounded). A clock that moves
    only as the commits take time."""
    from types import SimpleNamespace

    clock = [100.0]
    monkeypatch.setattr(checkpoints, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    class Store:
        took = 0.0

        def set(self, key: str, value: Any) -> None:
            clock[0] += self.took

    store = Store()
    committer = checkpoints.Committer(store, "k", lambda: None, LOG)
    committer.close(commit=False)  # its thread stopped: the commits below are the test's alone

    def next_commit_in(took: float) -> float:
        store.took = took
        committer.offer(Checkpoint(1, 1, 1, None, "ab"))
        committer._commit_latest()
        return committer._due - clock[0]

    assert next_commit_in(0.2) == checkpoints.MIN_INTERVAL  # the first (connecting): not planned by
    assert next_commit_in(0.001) == checkpoints.MIN_INTERVAL  # 0.05 s by the share: never sooner
    assert next_commit_in(0.026) == pytest.approx(0.026 / checkpoints.COMMIT_SHARE)  # 1.3 s
    assert next_commit_in(1.0) == checkpoints.MAX_INTERVAL  # 50 s by the share: never later
    assert committer.commits == 4
