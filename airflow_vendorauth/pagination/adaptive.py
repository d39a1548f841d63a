"""How many pages to have in flight: additive increase, multiplicative decrease (AIMD), as TCP does.

``concurrency="auto"`` starts with two pages in flight, adds one after each window of pages that came
back clean, and halves on a throttling signal (a 429, a timeout) the API client reports, never above the
vendor's declared ceiling nor below one. It only decides how many pages may be in flight; which pages
and in which order stay the paging loop's business (records are still written in order, exactly once).
"""

from __future__ import annotations

import threading

#: Pages in flight when a scan starts, before the API has said anything.
START = 2


class AdaptiveConcurrency:
    """The in-flight limit of one scan. Thread-safe: the sync driver's threads report to it."""

    def __init__(self, ceiling: int, start: int = START) -> None:
        self.ceiling = max(1, ceiling)
        self._limit = min(self.ceiling, max(1, start))
        self._clean = 0
        self._guard = threading.Lock()
        #: Throttling signals received (for logs and benchmarks).
        self.throttled = 0

    @property
    def limit(self) -> int:
        return self._limit

    def page_done(self) -> None:
        """A page came back: after a whole window of them without throttling, allow one more."""
        with self._guard:
            self._clean += 1
            if self._clean >= self._limit:
                self._clean = 0
                self._limit = min(self.ceiling, self._limit + 1)

    def throttle(self) -> None:
        """The API pushed back (429, timeout): halve what is in flight."""
        with self._guard:
            self.throttled += 1
            self._clean = 0
            self._limit = max(1, self._limit // 2)

    def __repr__(self) -> str:
        return f"AdaptiveConcurrency(limit={self._limit}, ceiling={self.ceiling}, throttled={self.throttled})"
