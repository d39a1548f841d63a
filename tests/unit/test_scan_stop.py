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
        settings=SimpleNamespace(extra=lambda name: None),
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
    """SIGTERM during a task's set-up (its token fetch): no scan running to stop, so the stop is remembered
    and the scan refuses to start; once the task's execute ends, the next one starts clean."""
    task = VendorApiOperator(task_id="t", conn_id="c", endpoint="/e")
    with stopping.task_running(task):
        task.on_kill()
        with pytest.raises(ScanStopped, match="before its scan started"), stopping.running_scan():
            pytest.fail("the scan started after the task was told to stop")
        assert not stopping._running
    with stopping.task_running(task), stopping.running_scan() as point:
        assert not point.asked


def test_a_stop_between_the_scans_registration_and_its_check_is_not_missed(monkeypatch: pytest.MonkeyPatch) -> None:
    class SignalledOnAppend(list):  # type: ignore[type-arg]
        def append(self, point: Any) -> None:
            stopping.stop_task()  # the handler runs just before the scan is registered
            super().append(point)

    monkeypatch.setattr(stopping, "_running", SignalledOnAppend())
    with stopping.task_running(None), pytest.raises(ScanStopped), stopping.running_scan():
        pytest.fail("the scan started after the task was told to stop")


class FakeHook:
    """A hook whose pages are counted: the stop must come before the first one."""

    def __init__(self) -> None:
        self.pages_asked = 0
        self.profile = type("Profile", (), {"display_name": "Fake"})()
        self.api_retries, self.conn_id = 0, "c"
        self.settings = type("Settings", (), {"extra": staticmethod(lambda name: None)})()

    def __enter__(self) -> FakeHook:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def page_batches(self, endpoint: str, options: Any) -> Any:
        from airflow_vendorauth.pagination.walk import PageBatch

        for page in range(3):
            self.pages_asked += 1
            yield PageBatch(records=[{"id": page}], next_request=None, total=None)


@pytest.mark.parametrize("output", [None, "scan.jsonl"])
def test_a_stop_before_execute_stands_for_the_same_task_and_not_for_another(
    output: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow installs its SIGTERM handler before it renders templates and copies the task for the try:
    ``on_kill`` may reach the task (or the object it is copied from) before ``execute``. The stop stands
    for that task, not for the next task this process runs."""
    import copy

    from airflow_vendorauth.hooks import base

    hook = FakeHook()
    monkeypatch.setattr(base, "hook_for_connection", lambda conn_id: hook)
    path = str(tmp_path / output) if output else None
    task = VendorApiOperator(task_id="t", conn_id="c", endpoint="/e", output_path=path)
    task.on_kill()  # the signal came while Airflow prepared the try
    with pytest.raises(ScanStopped, match="before its scan started"):
        copy.deepcopy(task).execute({})  # the try's copy
    assert hook.pages_asked == 0
    VendorApiOperator(task_id="another", conn_id="c", endpoint="/e").on_kill()
    task.execute({})  # a stop asked of another task does not stop this one
    assert hook.pages_asked == 3


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


def test_a_stopped_scan_waits_for_held_work_in_a_worker_thread() -> None:
    """With concurrency, token refreshes run in the page threads, which die with the process: a stopped
    scan lets a rotation in flight there store its new refresh token before the try ends."""
    stored: list[str] = []
    entered = threading.Event()

    def refresh_in_a_worker() -> None:
        with stopping.hold_stops():
            entered.set()
            import time

            time.sleep(0.5)  # the server's answer, then the store
            stored.append("rt-1")

    worker = threading.Thread(target=refresh_in_a_worker, daemon=True)
    with pytest.raises(ScanStopped), stopping.task_running(None), stopping.running_scan():
        worker.start()
        entered.wait(5)
        stopping.stop_task()
    assert stored == ["rt-1"], "the task ended before the worker's rotation was stored"


def test_the_wait_for_other_threads_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(stopping, "HOLD_GRACE_SECONDS", 0.3)
    release = threading.Event()

    def stuck() -> None:
        with stopping.hold_stops():
            release.wait(10)

    threading.Thread(target=stuck, daemon=True).start()
    time.sleep(0.1)
    started = time.monotonic()
    try:
        with pytest.raises(ScanStopped), stopping.task_running(None), stopping.running_scan():
            stopping.stop_task()
        assert time.monotonic() - started < 2  # the SIGKILL comes 5 s after the SIGTERM
    finally:
        release.set()


def kazi_task(**kwargs: Any) -> Any:
    from datetime import timedelta

    from airflow_vendorauth.operators.kazi_scan import KaziScanOperator

    # a scan_timeout below the poll interval: a wait that ignores the stop fails (KaziScanError), not hangs
    return KaziScanOperator(
        task_id="t", scan_type="job", items=[{}], poll_interval=30, deferrable=False,
        scan_timeout=timedelta(seconds=20), **kwargs,
    )


def test_kazis_wait_for_its_scan_ends_at_once_on_the_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    """KaziScanOperator, not deferrable, sleeps between status calls: Airflow's SIGTERM handler (here a
    SIGALRM one, in this main thread) ends the sleep at once, never a call in progress."""
    import signal
    import time

    task = kazi_task()
    statuses: list[str] = []

    def status(external_id: Any, context: Any) -> str:
        statuses.append("running")
        return "Running"

    monkeypatch.setattr(task, "get_job_status", status)
    monkeypatch.setattr(stopping, "_WAIT_SLICE_SECONDS", 30.0)  # only the handler can end this wait early
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: task.on_kill())
    started = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        # Airflow 3.3+ keeps the scan's id for the retry (ResumableJobMixin, durable); 3.1-3.2 cannot
        says = "a retry reconnects to it" if getattr(task, "durable", False) else "a retry submits a new one"
        with stopping.task_running(task), pytest.raises(ScanStopped, match=says):
            task.poll_until_complete("scan-1", {"task_state_store": object()})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 2
    assert statuses == ["running"]


def test_kazis_wait_ends_on_a_stop_from_another_thread_and_says_when_no_retry_can_reconnect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    task = kazi_task()
    monkeypatch.setattr(task, "get_job_status", lambda external_id, context: "Running")
    threading.Timer(0.3, task.on_kill).start()
    started = time.monotonic()
    with stopping.task_running(task), pytest.raises(ScanStopped, match="a retry submits a new one"):
        task.poll_until_complete("scan-1", {})  # no task_state_store: nothing keeps the scan's id
    assert time.monotonic() - started < 2


def test_kazi_submits_no_scan_when_told_to_stop_before_it() -> None:
    task = kazi_task()
    task.on_kill()
    with stopping.task_running(task), pytest.raises(ScanStopped, match="before its Kazi job scan was submitted"):
        task.submit_job({})


STRESS = """
import random, signal, time
from airflow_vendorauth import stopping

class Task:
    dag_id, task_id = "d", "t"

task = Task()
signal.signal(signal.SIGALRM, lambda signum, frame: stopping.stop_task(task))
for trial in range(300):
    signal.setitimer(signal.ITIMER_REAL, random.uniform(0, 0.002))
    try:
        end = time.monotonic() + 0.003
        while time.monotonic() < end:  # the signal lands anywhere in these, again and again
            with stopping.task_running(task):
                stopping.wait(0)
                with stopping.hold_stops():
                    pass
    except BaseException as exc:  # a stop raised at the end of the hold
        assert type(exc).__name__ == "ScanStopped", repr(exc)
    signal.setitimer(signal.ITIMER_REAL, 0)
print("done")
"""


def test_the_signal_handler_never_blocks_whatever_it_interrupts() -> None:
    """The handler runs in the main thread wherever it stands: inside a lock that thread holds, it must
    not take that lock (a threading.Event in wait() or task_running() deadlocked the task until SIGKILL).
    300 signals at random points of a tight loop around the wait, the task's start and end, and a hold
    (the Event-based version hung in 4 runs of 4 within 20 s)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", STRESS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("done"), done.stderr[-3000:]


def test_no_call_is_retried_once_the_task_is_told_to_stop() -> None:
    """A backoff after the SIGTERM would hold the scan past the SIGKILL: the error goes on at once."""
    import tenacity

    from airflow_vendorauth.retry import RetryPolicy, retry_arguments

    class Transient(Exception):
        retryable = True

    attempts: list[int] = []

    def call() -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 2:
            stopping.stop_task()  # the signal comes while the second attempt runs (in a page thread)
        raise Transient("503")

    policy = RetryPolicy(max_attempts=5, initial_wait_seconds=0.01, max_wait_seconds=0.01)
    retrying = tenacity.Retrying(**retry_arguments(policy, logger=logging.getLogger("test"), what="call"))
    with stopping.task_running(None), pytest.raises(Transient):
        retrying(call)
    assert attempts == [1, 2]


def test_the_grace_for_held_work_and_the_stopped_store_fit_before_the_sigkill() -> None:
    from airflow_vendorauth.auth import refresh_chain

    assert stopping.HOLD_GRACE_SECONDS + refresh_chain.CHAIN_STORE_RETRY_SECONDS_WHEN_STOPPING < 5


def test_on_kill_after_the_execute_ended_stops_nothing_not_even_a_retry() -> None:
    """Airflow's execution_timeout calls on_kill after execute raised: in dag.test(), where every try runs in
    one process, that stop must not fail the retry at once, nor turn retries off for what runs next."""
    task = VendorApiOperator(task_id="t", conn_id="c", endpoint="/e")
    with pytest.raises(TimeoutError), stopping.task_running(task):
        raise TimeoutError("execution_timeout")
    task.on_kill()
    assert not stopping.stop_asked()
    with stopping.task_running(task), stopping.running_scan() as point:  # the retry
        assert not point.asked and not stopping.stop_asked()


def test_an_error_that_ends_a_wait_leaves_no_wake_up_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """An execution_timeout (Airflow's SIGALRM handler raises) ends Kazi's wait: the on_kill Airflow calls
    next must not raise the wait's private wake-up in place of the timeout."""
    import signal

    task = kazi_task()

    def timeout(signum: int, frame: Any) -> None:
        raise TimeoutError("execution_timeout")

    previous = signal.signal(signal.SIGALRM, timeout)
    try:
        with stopping.task_running(task):
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            with pytest.raises(TimeoutError):
                stopping.wait(5)
            task.on_kill()  # still inside the execute: a stop, and nothing raised here
            assert stopping.stop_asked()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_kazi_results_stop_before_their_scan_for_xcom_and_after_a_deferral(monkeypatch: pytest.MonkeyPatch) -> None:
    """KaziScanOperator's results, to XCom (no output_path) or after its trigger (execute_complete): a task
    told to stop does not start fetching them."""
    task = kazi_task()
    pages: list[str] = []

    class Hook:
        def page_batches(self, endpoint: str, options: Any) -> Any:
            from airflow_vendorauth.pagination.walk import PageBatch

            pages.append(endpoint)
            yield PageBatch(records=[{"jobId": "job-0"}], next_request=None, total=None)

        def close(self) -> None:
            pass

    monkeypatch.setattr(task, "_hook", lambda: Hook())
    task.on_kill()
    with stopping.task_running(task), pytest.raises(ScanStopped, match="before its scan started"):
        task._collect_results("scan-1", {})
    stopping.forget_stop()  # the resumed try runs in a new task process
    task.on_kill()  # the signal came while Airflow prepared it
    with pytest.raises(ScanStopped, match="before its scan started"):
        task.execute_complete({}, {"status": "success", "scan_id": "scan-2"})
    assert pages == []
    task.execute_complete({}, {"status": "success", "scan_id": "scan-3"})  # no stop: its results come
    assert pages == ["/tagging/v2/job-scans/scan-3/results"]


def test_the_try_s_clients_close_after_held_work_in_other_threads_and_no_retry_meanwhile() -> None:
    """A page thread rotating a refresh token uses the token endpoint's client: the hook (and that client)
    closes only once the rotation is done, and while the execute waits for it the stop still reads as
    asked, so a refresh that fails there is not retried with a refresh token the server may have rotated."""
    import time

    seen: list[tuple[str, bool]] = []
    entered = threading.Event()

    def rotation_in_a_page_thread() -> None:
        with stopping.hold_stops():
            entered.set()
            time.sleep(0.4)  # the server's answer, then the store
            seen.append(("rotation stored", stopping.stop_asked()))

    class Hook:
        def __enter__(self) -> Hook:
            return self

        def __exit__(self, *exc: object) -> None:
            seen.append(("hook closed", stopping.stop_asked()))

    worker = threading.Thread(target=rotation_in_a_page_thread, daemon=True)
    with pytest.raises(ScanStopped), stopping.task_running(None) as clients:
        clients.enter_context(Hook())
        with stopping.running_scan():
            worker.start()
            entered.wait(5)
            stopping.stop_task()
    assert seen == [("rotation stored", True), ("hook closed", True)]
    assert not stopping.stop_asked()  # forgotten once the execute has ended


def test_an_execute_ended_by_its_timeout_also_waits_for_held_work_before_closing() -> None:
    """Airflow's execution_timeout raises AirflowTaskTimeout (a BaseException) in the main thread, no stop
    asked: the paging drivers do not join their threads on such an end either, so a rotation in one of
    them is waited for, the stop reading as asked."""
    import time

    try:
        from airflow.sdk.exceptions import AirflowTaskTimeout
    except ImportError:  # Airflow 3.1 keeps it in airflow.exceptions
        from airflow.exceptions import AirflowTaskTimeout  # type: ignore[no-redef,attr-defined]

    seen: list[str] = []
    entered = threading.Event()

    def rotation_in_a_page_thread() -> None:
        with stopping.hold_stops():
            entered.set()
            time.sleep(0.3)
            seen.append(f"rotation stored, stop asked: {stopping.stop_asked()}")

    threading.Thread(target=rotation_in_a_page_thread, daemon=True).start()
    entered.wait(5)
    with pytest.raises(AirflowTaskTimeout), stopping.task_running(None) as clients:
        clients.callback(lambda: seen.append("clients closed"))
        raise AirflowTaskTimeout("execution_timeout")
    assert seen == ["rotation stored, stop asked: True", "clients closed"]


def test_an_execute_that_ends_normally_refuses_nothing_to_other_threads() -> None:
    """A returned (or failed) execute joined its page threads: another thread of the process (a trigger's
    token fetch in dag.test's triggerer) is not told to stop while the clients close."""
    asked: list[bool] = []
    with stopping.task_running(None) as clients:
        clients.callback(lambda: asked.append(stopping.stop_asked()))
    with pytest.raises(ValueError), stopping.task_running(None) as clients:
        clients.callback(lambda: asked.append(stopping.stop_asked()))
        raise ValueError("an error: the drivers joined their threads")
    assert asked == [False, False]


def test_clients_stay_open_while_a_rotation_outlives_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the grace, closing the token endpoint's client under the rotation would only make it fail: the
    process may live long enough for it to store its refresh token."""
    monkeypatch.setattr(stopping, "HOLD_GRACE_SECONDS", 0.2)
    release, entered = threading.Event(), threading.Event()
    closed: list[str] = []

    def stuck() -> None:
        with stopping.hold_stops():
            entered.set()
            release.wait(10)

    threading.Thread(target=stuck, daemon=True).start()
    entered.wait(5)
    try:
        with stopping.task_running(None) as clients:
            clients.callback(lambda: closed.append("closed"))
        assert closed == []
    finally:
        release.set()
