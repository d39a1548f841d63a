"""Where Airflow's SIGTERM enters a task (airflow_vendorauth/stopping.py): a running scan at once, or right
after the page being written and its checkpoint; a task before its scan when it is safe; never inside a
refresh token's rotation. The real signal, task process and retry are tests/integration/test_sigterm_commit.py's."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_vendorauth import stopping
from airflow_vendorauth.exceptions import ScanStopped
from airflow_vendorauth.operators.api import VendorApiOperator
from airflow_vendorauth.stopping import StopPoint


def test_a_stop_while_no_page_is_written_is_raised_at_once() -> None:
    with pytest.raises(ScanStopped, match="told to stop"):
        StopPoint().stop()


def test_a_stop_while_a_page_is_written_waits_for_its_checkpoint() -> None:
    point = StopPoint()
    point.writing = True
    point.stop()  # the page and its checkpoint first
    with pytest.raises(ScanStopped):
        point.page_written()


def test_a_scan_in_another_thread_stops_after_its_page() -> None:
    point = StopPoint()
    raised: list[BaseException] = []

    def stop() -> None:
        try:
            point.stop()
        except BaseException as exc:  # noqa: BLE001 - the stopping thread must not get the scan's stop
            raised.append(exc)

    stopper = threading.Thread(target=stop)
    stopper.start()
    stopper.join()
    assert not raised
    assert point.asked
    with pytest.raises(ScanStopped):
        point.page_written()


def test_a_finished_scan_and_a_task_without_one_are_not_stopped() -> None:
    point = StopPoint()
    point.done = True
    point.stop()
    point.page_written()
    VendorApiOperator(task_id="t", conn_id="c", endpoint="/e").on_kill()  # no scan runs: nothing raised


def test_a_stop_while_a_page_is_written_does_not_wait_for_the_pages_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop asked while a page is written is raised after its checkpoint, in the loop over the pages, not
    in the paging driver: the driver then sees only the generator's close (GeneratorExit), and must still not
    join the threads stuck in slow pages, or the final commit comes after the supervisor's SIGKILL."""
    import json
    import time
    from types import SimpleNamespace

    import httpx

    from airflow_vendorauth.operators import streaming
    from airflow_vendorauth.pagination import PageNumberPagination, PagingOptions
    from airflow_vendorauth.pagination.drivers import page_batches

    release, finished = threading.Event(), threading.Event()

    def fetch(request: Any) -> httpx.Response:
        page = int(request.params["page"])
        if page > 2:  # the pages ahead hang, as a slow API's (or one in Retry-After) do
            release.wait(10)
            finished.set()
        body = {"items": [page], "meta": {"total": 5}}
        return httpx.Response(200, json=body)

    strategy = PageNumberPagination(page_size=1, records_path="items", total_path="meta.total")
    hook = SimpleNamespace(
        page_batches=lambda endpoint, options: page_batches(fetch, strategy, options, "test"),
        profile=SimpleNamespace(display_name="Test"),
        api_retries=0,
        conn_id="c",
    )

    class StoppedWhileWriting(streaming.JsonLinesSink):
        def write_page(self, records: list[Any]) -> None:
            super().write_page(records)
            if self.pages == 2:  # the pages after it are in flight by now
                stopping.stop_task()  # Airflow's SIGTERM in the main thread, mid-write

    class Store:
        data: dict[str, Any] = {}

        def get(self, key: str) -> Any:
            return self.data.get(key)

        def set(self, key: str, value: Any) -> None:
            self.data[key] = json.loads(json.dumps(value))

        def delete(self, key: str) -> None:
            self.data.pop(key, None)

    monkeypatch.setattr(streaming, "JsonLinesSink", StoppedWhileWriting)
    store = Store()
    started = time.monotonic()
    try:
        with pytest.raises(ScanStopped):
            streaming.stream_to_jsonl(
                hook,  # type: ignore[arg-type]
                "/e",
                str(tmp_path / "x.jsonl"),
                context={"task_state_store": store},
                log=logging.getLogger("test"),
                checkpoint_key="k",
                options=PagingOptions(concurrency=3),
            )
        assert not finished.is_set()  # the scan ended, its page committed, while pages were still in flight
        assert time.monotonic() - started < 5
        assert store.data["k"]["pages"] == 2  # the checkpoint of the page being written, committed
    finally:
        release.set()


@pytest.mark.parametrize("which", ["VendorApiOperator", "KaziScanOperator"])
def test_each_operators_on_kill_stops_the_scan_it_runs(which: str) -> None:
    """Airflow's SIGTERM handler calls ``on_kill`` in the thread that runs the scan: both operators that
    write scans (VendorApiOperator, and KaziScanOperator for its results) must end it there."""
    from airflow_vendorauth.operators.kazi_scan import KaziScanOperator

    task = (
        VendorApiOperator(task_id="t", conn_id="c", endpoint="/e")
        if which == "VendorApiOperator"
        else KaziScanOperator(task_id="t", scan_type="job", items=[{}])
    )
    with stopping.running_scan(), pytest.raises(ScanStopped):
        task.on_kill()


def test_a_task_told_to_stop_before_its_scan_does_not_start_it() -> None:
    """SIGTERM during a task's set-up (its token fetch, Kazi's wait): no scan running to stop, so the stop
    is remembered and the scan refuses to start; the next task run in this process starts clean."""
    VendorApiOperator(task_id="t", conn_id="c", endpoint="/e").on_kill()
    with pytest.raises(ScanStopped, match="before its scan started"), stopping.running_scan():
        pytest.fail("the scan started after the task was told to stop")
    assert not stopping._running
    stopping.begin_task()
    with stopping.running_scan() as point:
        assert not point.asked


def test_a_stop_inside_held_work_is_raised_when_it_ends() -> None:
    """A rotating refresh token spent and its successor not yet stored: the stop waits for the store."""
    stored: list[str] = []
    with pytest.raises(ScanStopped), stopping.running_scan():
        with stopping.hold_stops():
            with stopping.hold_stops():  # nested holds: only the outermost end raises
                stopping.stop_task()
                stored.append("inner")
            stored.append("outer")
        pytest.fail("the stop was not raised when the held work ended")
    assert stored == ["inner", "outer"]


def test_held_work_that_fails_keeps_its_error_and_the_scan_stops_after_its_page() -> None:
    with stopping.running_scan() as point:
        with pytest.raises(RuntimeError, match="token endpoint"), stopping.hold_stops():
            stopping.stop_task()
            raise RuntimeError("the token endpoint said no")
        assert point.asked
        point.writing = True
        with pytest.raises(ScanStopped):
            point.page_written()


def test_kazis_wait_for_its_scan_ends_when_the_task_is_told_to_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """KaziScanOperator, not deferrable, waits for its scan between status calls: a stop ends the wait at
    once (a 60 s poll interval here), never in the middle of a call; the scan's id stays stored."""
    import time

    from airflow_vendorauth.operators.kazi_scan import KaziScanOperator

    task = KaziScanOperator(task_id="t", scan_type="job", items=[{}], poll_interval=60, deferrable=False)
    statuses: list[str] = []

    def status(external_id: Any, context: Any) -> str:
        statuses.append("running")
        return "Running"

    monkeypatch.setattr(task, "get_job_status", status)
    threading.Timer(0.3, task.on_kill).start()  # from another thread: nothing is raised there
    started = time.monotonic()
    with pytest.raises(ScanStopped, match="a retry reconnects to it"):
        task.poll_until_complete("scan-1", {})
    assert time.monotonic() - started < 10
    assert statuses == ["running"]
