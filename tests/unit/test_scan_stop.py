"""Where Airflow's SIGTERM enters a running scan (operators/streaming.py, StopPoint): at once, or right
after the page being written and its checkpoint. The real signal, task process and retry are
tests/integration/test_sigterm_commit.py's."""

from __future__ import annotations

import threading

import pytest

from airflow_vendorauth.exceptions import ScanStopped
from airflow_vendorauth.operators.api import VendorApiOperator
from airflow_vendorauth.operators.streaming import StopPoint


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
    stopper = threading.Thread(target=point.stop)
    stopper.start()
    stopper.join()
    assert point.asked
    with pytest.raises(ScanStopped):
        point.page_written()


def test_a_finished_scan_and_a_task_without_one_are_not_stopped() -> None:
    point = StopPoint()
    point.done = True
    point.stop()
    point.page_written()
    VendorApiOperator(task_id="t", conn_id="c", endpoint="/e").on_kill()  # no scan runs: nothing raised
