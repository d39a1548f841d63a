"""Checkpoints off the hot path: commit the latest one to ``task_state_store`` from a thread of its own,
at most every few seconds, never while the next pages wait.

Inside a real task each ``task_state_store.set`` goes through the task API to the metadata database:
26.5 ms median, 39 ms p90 (``benchmarks/checkpoint_commit.py``, ``dag.test()`` on SQLite). Committed
after every page, one at a time, that was most of a scan's time (200 commits, 5.1 s of 6.3 s). Here the
paging loop only hands over its latest checkpoint (a reference, no I/O); the committer thread makes the
output durable (fsync) and commits it, then waits until commits have taken at most :data:`COMMIT_SHARE`
of its time (a 26 ms commit: the next one 1.3 s later; never sooner than :data:`MIN_INTERVAL`, never
later than :data:`MAX_INTERVAL`; after the first commit, whose cost is mostly connecting, the next
comes :data:`MIN_INTERVAL` later). The first page is committed at once, so even a task killed early
resumes. At the end of a failed or stopped try (an exception, Airflow's SIGTERM) the last checkpoint is
committed before the error goes on.

The guarantee: a retry fetches again at most the pages since the last commit (those written after it
are cut off the output, ``operators/output.py``), and every record is in the output exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from airflow_vendorauth.operators.output import Checkpoint

#: Commits may take at most this share of the committer's time: 2 % (26 ms -> every 1.3 s).
COMMIT_SHARE = 0.02
#: Never commit more often than this (seconds) ...
MIN_INTERVAL = 1.0
#: ... nor less often than this, however slow a commit was (the pages a crash costs stay bounded).
MAX_INTERVAL = 10.0


class Committer:
    """Commits the latest :class:`Checkpoint` handed to :meth:`offer` (see the module docstring)."""

    def __init__(self, store: Any, key: str, sync: Callable[[], None], log: logging.Logger) -> None:
        self.store, self.key, self.sync, self.log = store, key, sync, log
        self._latest: Checkpoint | None = None
        self._committed: Checkpoint | None = None
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        #: True once :meth:`close` ran.
        self.closed = False
        self._due = 0.0  # the first checkpoint is committed at once
        #: Commits made and the seconds they took (for logs and benchmarks).
        self.commits = 0
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="vendorauth-checkpoints", daemon=True)
        self._thread.start()

    def offer(self, checkpoint: Checkpoint) -> None:
        """The paging loop's latest checkpoint: kept, committed when due. Never blocks on the store."""
        with self._guard:
            self._latest = checkpoint
        if time.monotonic() >= self._due:
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(timeout=max(0.0, self._due - time.monotonic()) or None)
            self._wake.clear()
            if self._stop:
                return
            if time.monotonic() >= self._due:
                self._commit_latest()

    def _commit_latest(self) -> None:
        with self._guard:
            latest = self._latest
        if latest is None or latest is self._committed:
            return
        started = time.monotonic()
        try:
            self.sync()  # the bytes the checkpoint covers survive a crash before the store says so
            self.store.set(self.key, latest.to_json())
        except Exception as exc:  # noqa: BLE001 - a failed commit costs pages on a retry, never the scan
            self.log.warning("Could not commit the scan's checkpoint (a retry would fetch more again): %s", exc)
            self._due = time.monotonic() + MIN_INTERVAL
            return
        took = time.monotonic() - started
        self._committed = latest
        self.commits += 1
        self.seconds += took
        # The first commit pays for connecting (the task API's first call), like the first sample of the
        # adaptive window: measure it, don't plan by it (a cold 200 ms commit would space the next by 10 s).
        interval = took / COMMIT_SHARE if self.commits > 1 else MIN_INTERVAL
        self._due = time.monotonic() + min(MAX_INTERVAL, max(MIN_INTERVAL, interval))

    def close(self, *, commit: bool) -> None:
        """Stop the thread; with ``commit``, commit the latest checkpoint first (a failed or stopped try)."""
        self._stop = self.closed = True
        self._wake.set()
        self._thread.join()
        if commit:
            self._commit_latest()
