"""A task told to stop (Airflow's SIGTERM) ends its work where nothing is cut half-way.

Airflow 3's task runner answers SIGTERM only by calling the operator's ``on_kill``, from its signal
handler: in the task's main thread, between any two bytecodes of whatever runs there. The supervisor
SIGKILLs the task 5 s later. Airflow 2 raised ``AirflowTaskTerminated`` after ``on_kill``; Airflow 3 does
not, so an operator that does nothing in ``on_kill`` runs on until the SIGKILL and never commits.

The operators' ``on_kill`` calls :func:`stop_task`. What happens then depends on where the task is:

- **writing pages** (a :func:`running_scan`): its :class:`StopPoint` raises :class:`ScanStopped` at once,
  or right after the page being written and its checkpoint offered, so the committed checkpoint covers
  every page in the file;
- **before its scan** (template rendering, a token fetch): the stop is remembered for the task
  (:func:`task_running`), and the scan refuses to start (:func:`running_scan`);
- **in a wait** (:func:`wait`: Kazi's wait for its scan): the wait ends at once, never in the middle of a
  call (a call to Airflow's task API, a scan submitted and its id not yet stored);
- **inside** :class:`hold_stops` (a rotating refresh token spent and its successor not yet stored): the
  stop is raised when the held work ends; cutting it would lose the refresh chain for good. Such work in
  another thread (pages and tokens fetched by worker threads) is waited for, up to
  :data:`HOLD_GRACE_SECONDS`, before an execute ends (worker threads die with the process), and none
  begins once the task is told to stop.

The end of an execute (:func:`task_running`) keeps that order: first the wait for other threads' held
work, while the stop still reads as asked (so a failed refresh there is not retried with a refresh token
the server may have rotated, and no thread starts a rotation), then the try's clients are closed (the
callbacks registered on what :func:`task_running` yields: a hook, and with it the token endpoint's client
that a rotation in flight is using), and only then is the stop forgotten. The wait happens on any end
of the execute that leaves held work behind (a stop, Airflow's execution_timeout), not only on a stop.

Nothing here takes a lock in the signal handler: the handler interrupts the main thread wherever it is,
perhaps inside that very lock (a ``threading.Event`` would deadlock there). Stdlib only and imported by the
operators' modules: the handler imports nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import TracebackType

from airflow_vendorauth.exceptions import ScanStopped

#: What :class:`ScanStopped` says when a scan is stopped.
STOPPED = "the task was told to stop (SIGTERM): the scan ends, its pages committed"
#: How long a stopped execute waits for other threads' held work (a refresh token's rotation) before it
#: ends: within the 5 s between Airflow's SIGTERM and its SIGKILL, after the final commit.
HOLD_GRACE_SECONDS = 2.5


class _TaskStop:
    """The stop asked of the task this process runs: plain attributes, so the signal handler takes no lock."""

    def __init__(self) -> None:
        self.asked = False
        #: ``dag_id.task_id`` of the task it was asked of (Airflow calls ``on_kill`` on the task before its
        #: per-try copy exists if the signal comes early: the copy has the same ids, not the same object).
        self.of: str | None = None
        #: The task whose execute runs now, and the one whose execute ended last: ``on_kill`` after the
        #: execute ended (Airflow's execution_timeout calls it then) stops nothing, least of all a retry.
        self.running: str | None = None
        self.ended: str | None = None
        #: The running execute is ending (its clients about to close): its other threads begin no rotation
        #: and retry nothing, as if told to stop.
        self.ending = False


_stop = _TaskStop()
#: The scans running in this process, innermost last (a task runs one at a time).
_running: list[StopPoint] = []
#: Per thread: how deep in :class:`hold_stops` it is, the stop it held back, whether it is in :func:`wait`.
_local = threading.local()
#: Held work in all threads (a stopped scan waits for the other threads' to end).
_holds = 0
_holds_changed = threading.Condition()


class _WakeUp(BaseException):
    """Raised by the signal handler into :func:`wait`'s sleep, and caught there."""


class StopPoint:
    """Where a stop enters a running scan (see the module's docstring).

    Raised at once in the thread the signal interrupted when that thread runs the scan (a wait for a page
    ends there), except while it writes a page and offers that page's checkpoint (then right after) or
    holds stops (then when the hold ends). A scan in another thread stops after its page."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        #: Writing a page and its checkpoint: a stop waits for :meth:`page_written`.
        self.writing = False
        self.asked = False
        #: Every page was written: a stop now changes nothing (the scan is done, let it finish).
        self.done = False

    def stop(self) -> None:
        if self.done:
            return
        self.asked = True
        if self.writing or threading.get_ident() != self.thread:
            return
        if getattr(_local, "held", 0):
            _local.deferred = self  # raised by hold_stops when the held work ends
            return
        raise ScanStopped(STOPPED)

    def page_written(self) -> None:
        self.writing = False
        if self.asked:
            raise ScanStopped(STOPPED)


class hold_stops:  # a statement more than a class: ``with hold_stops():``
    """Work that must not be cut half-way: a stop asked in this thread meanwhile is raised when it ends
    (when it ends with an error, the error goes on; the scan stops after its next page)."""

    def __enter__(self) -> None:
        global _holds
        _local.held = getattr(_local, "held", 0) + 1  # first: from here on the handler holds its stop back
        with _holds_changed:
            _holds += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        global _holds
        with _holds_changed:
            _holds -= 1
            _holds_changed.notify_all()
        _local.held -= 1
        if _local.held == 0 and (point := getattr(_local, "deferred", None)) is not None:
            _local.deferred = None
            if exc_type is None:
                point.stop()


def _wait_for_other_threads_holds(seconds: float) -> bool:
    """An execute is about to end its try (and the process): let held work in worker threads finish.
    True when none is left, False when the wait ran out."""
    mine = getattr(_local, "held", 0)
    with _holds_changed:
        return _holds_changed.wait_for(lambda: _holds <= mine, timeout=seconds)


def _task_name(task: object) -> str:
    return f"{getattr(task, 'dag_id', None)}.{getattr(task, 'task_id', None)}"


@contextmanager
def task_running(task: object) -> Iterator[ExitStack]:
    """An operator's execute: a stop asked of this task before it began (while Airflow rendered its
    templates) stands; one asked of an earlier task run in this process is forgotten, and so is this one's
    when the execute ends (a retry in the same process starts clean).

    Yields the try's clients to close (``enter_context(hook)``, ``callback(close)``). When the execute
    ends, held work in other threads (a refresh token's rotation in a page thread) gets up to
    :data:`HOLD_GRACE_SECONDS` to finish; then the clients are closed, never under a rotation in flight
    (one still in flight after the grace keeps them open: it may yet store its refresh token before the
    process ends). Ended by a stop or by what is no error (Airflow's execution_timeout, a
    KeyboardInterrupt: the paging drivers then leave their threads running), :func:`stop_asked` reads True
    meanwhile: no rotation begins there, no failed one is retried. An execute that returns or fails with
    an error has joined its page threads: nothing to wait for, nothing refused."""
    name = _task_name(task)
    if _stop.of != name:
        _stop.asked = False
    _stop.running, _stop.ended = name, None
    clients = ExitStack()
    try:
        yield clients
    except BaseException as exc:
        if not isinstance(exc, Exception):
            _stop.ending = True
        raise
    finally:
        try:
            if _wait_for_other_threads_holds(HOLD_GRACE_SECONDS):
                clients.close()
            else:
                logging.getLogger(__name__).warning(
                    "%s: a refresh token's rotation in another thread was still running %.1f s after the task's "
                    "execute ended: its clients are left open so that it can still store the next refresh token",
                    name,
                    HOLD_GRACE_SECONDS,
                )
        finally:
            _stop.running, _stop.ended, _stop.ending = None, name, False
            _stop.asked, _stop.of = False, None


def stop_task(task: object = None) -> None:
    """The operators' ``on_kill``, called from Airflow's SIGTERM handler: stop this process's task."""
    name = _task_name(task)
    if _stop.running is None and _stop.ended == name:
        return  # its execute has ended: nothing to stop (an execution_timeout's on_kill)
    _stop.of, _stop.asked = name, True
    if _running:
        _running[-1].stop()
    if getattr(_local, "waiting", False):
        _local.waiting = False  # first: a second signal must not raise into wait()'s own handling
        raise _WakeUp


def forget_stop() -> None:
    """A fresh process's state: no stop asked, no task or scan running (tests)."""
    _stop.asked, _stop.of, _stop.running, _stop.ended, _stop.ending = False, None, None, None, False
    _running.clear()


def stop_asked() -> bool:
    """Whether the task running now was told to stop, or its execute is ending (False outside an
    operator's execute: a ``@task``'s hook calls and triggers are never stopped here)."""
    return (_stop.asked or _stop.ending) and _stop.running is not None


def wait(seconds: float) -> bool:
    """Sleep up to ``seconds``; True when the task is told to stop, before or while it sleeps: at once when
    Airflow's signal handler interrupts this thread's sleep, within :data:`_WAIT_SLICE_SECONDS` when the
    stop comes from another thread."""
    deadline = time.monotonic() + seconds
    try:
        _local.waiting = True
        while not stop_asked() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, _WAIT_SLICE_SECONDS))
    except _WakeUp:
        return True
    finally:
        _local.waiting = False  # whatever ends the wait (a timeout's exception too): no wake-up left behind
    return stop_asked()


#: :func:`wait` looks at the stop this often (a stop from the signal handler wakes it at once).
_WAIT_SLICE_SECONDS = 0.25


@contextmanager
def running_scan() -> Iterator[StopPoint]:
    """A scan writing pages: stops reach it through the :class:`StopPoint` it yields. A task told to stop
    before its scan started gets :class:`ScanStopped` here, before any page is fetched."""
    point = StopPoint()
    try:
        _running.append(point)  # first, then the check: a stop in between is not missed
        if stop_asked():
            raise ScanStopped("the task was told to stop (SIGTERM) before its scan started: no page was fetched")
        yield point
    finally:
        point.done = True
        if point in _running:
            _running.remove(point)
