"""A task told to stop (Airflow's SIGTERM) ends its work where nothing is cut half-way.

Airflow 3's task runner answers SIGTERM only by calling the operator's ``on_kill``, from its signal
handler: in the task's main thread, between any two bytecodes of whatever runs there. The supervisor
SIGKILLs the task 5 s later. Airflow 2 raised ``AirflowTaskTerminated`` after ``on_kill``; Airflow 3 does
not, so an operator that does nothing in ``on_kill`` runs on until the SIGKILL and never commits.

The operators' ``on_kill`` calls :func:`stop_task`. What happens then depends on where the task is:

- **writing pages** (a :func:`running_scan`): its :class:`StopPoint` raises :class:`ScanStopped` at once,
  or right after the page being written and its checkpoint offered, so the committed checkpoint covers
  every page in the file;
- **before its scan** (a token fetch, Kazi's wait for its scan to finish): the stop is remembered, and the
  scan refuses to start (:func:`running_scan`) or the wait ends (:func:`wait`) at a safe point; nothing is
  interrupted half-way (a call to Airflow's task API, a scan submitted and its id not yet stored);
- **inside** :class:`hold_stops` (a rotating refresh token spent and its successor not yet stored): the
  stop is raised when the held work ends. Cutting it would lose the refresh chain for good.

Stdlib only and imported by the operators' modules: the signal handler must not import anything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from airflow_vendorauth.exceptions import ScanStopped

#: What :class:`ScanStopped` says when a scan is stopped.
STOPPED = "the task was told to stop (SIGTERM): the scan ends, its pages committed"

#: A stop was asked of the task this process runs (cleared when an operator's execute starts).
_asked = threading.Event()
#: The scans running in this process, innermost last (a task runs one at a time).
_running: list[StopPoint] = []
#: Per thread: how deep in :class:`hold_stops` it is, and the stop it held back.
_local = threading.local()


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
        _local.held = getattr(_local, "held", 0) + 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _local.held -= 1
        if _local.held == 0 and (point := getattr(_local, "deferred", None)) is not None:
            _local.deferred = None
            if exc_type is None:
                point.stop()


def begin_task() -> None:
    """An operator's execute starts: a stop asked of an earlier task run in this process is forgotten."""
    _asked.clear()


def stop_task() -> None:
    """The operators' ``on_kill``, called from Airflow's SIGTERM handler: stop this process's task."""
    _asked.set()
    if _running:
        _running[-1].stop()


def stop_asked() -> bool:
    return _asked.is_set()


def wait(seconds: float) -> bool:
    """Sleep up to ``seconds``; True (at once) when the task is told to stop."""
    return _asked.wait(seconds)


@contextmanager
def running_scan() -> Iterator[StopPoint]:
    """A scan writing pages: stops reach it through the :class:`StopPoint` it yields. A task told to stop
    before its scan started gets :class:`ScanStopped` here, before any page is fetched."""
    point = StopPoint()
    try:
        _running.append(point)  # first, then the check: a stop in between is not missed
        if _asked.is_set():
            raise ScanStopped("the task was told to stop (SIGTERM) before its scan started: no page was fetched")
        yield point
    finally:
        point.done = True
        if point in _running:
            _running.remove(point)
