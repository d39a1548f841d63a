"""How many pages to have in flight: additive increase, multiplicative decrease (AIMD), as TCP does, and
no increase that buys nothing.

``concurrency="auto"`` starts with half the vendor's ceiling in flight. The first sample (connection set-up)
is only a warm-up. After each later sample of pages (a window, at least
:data:`SAMPLE` pages) it compares the pages per second with the sample before: twice as many pages in
flight while doubling pays (slow start: a 200-page scan on a slow API should not spend half its pages
climbing one step at a time), then one more page when the API kept up, one less (and a pause of :data:`HOLD` samples before trying again) when the last
step up did not make the scan faster (the API or this machine is saturated: more in flight would only
queue), and half as many on a throttling signal the API client reports (a 429, a timeout). Never above the
vendor's declared ceiling (or the connection's ``max_concurrency``) nor below one.

A burst of refusals is one signal, not many: ``N`` requests in flight against an API that allows ``A`` at
once come back as ``N - A`` 429s within a moment; halving on each would fall to one page at a time and spend
the rest of the scan climbing back (measured: 8 in flight against a 40 ms API allowing 4 took 8.3 s for 200
pages instead of 3.1 s). So the refusals of one burst (those before as many pages as were then in flight
came back) lower the limit to what was in flight less the refusals seen, the API's own answer to how many it
allows, and at most to half of it (a rate limit, unlike a concurrency limit, refuses a share: halving per
burst still converges). After a throttle the limit holds for
:data:`HOLD` samples before probing up again: each probe past an API's limit costs a ``Retry-After``. It decides how many requests run at once (the sync driver's thread count, the async :meth:`agate`) and lets twice as many pages be
held in flight, so pages that came back early wait their turn while the next requests already run;
which pages and in which order stay the paging loop's business (records are still written in order,
exactly once).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

#: Pages per throughput sample (at least; a larger window samples over the window): fewer make a noisy
#: measure of pages that take a millisecond each.
SAMPLE = 16
#: ... and at least this long: on pages of a millisecond, 16 of them are 16 ms, and a few ms of scheduling
#: jitter would read as a 20 % change in throughput (measured: the limit then climbed on noise alone).
MIN_SAMPLE_SECONDS = 0.05
#: A step up must make the scan this much faster to be kept (above the noise of one sample).
GAIN = 0.10
#: Samples to wait, after a step up that bought nothing, before probing again.
HOLD = 10


class AdaptiveConcurrency:
    """The in-flight limit of one scan. Thread-safe: the sync driver's threads report to it."""

    def __init__(self, ceiling: int, start: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = max(1, ceiling)
        #: before the API has said anything: half the ceiling (what the vendor tolerates, halved)
        self._limit = min(self.ceiling, max(1, start if start is not None else self.ceiling // 2))
        self._clock = clock
        self._guard = threading.Lock()
        self._running = 0
        self._done = 0
        self._since = clock()
        self._last_rate: float | None = None
        self._grew = False
        self._hold = 0
        self._warm = False
        #: Slow start, as TCP's: double while doubling pays, then one step at a time.
        self._doubling = True
        self._before = self._limit
        #: Throttling signals received (for logs and benchmarks).
        self.throttled = 0
        #: The current burst of refusals: what was allowed when it began, refusals in it, pages back since.
        self._burst_from = 0
        self._burst_refusals = 0
        self._burst_pages = 0
        #: The most pages ever allowed at once (for benchmarks: what auto reached).
        self.peak = self._limit

    @property
    def concurrency(self) -> int:
        """Requests allowed to run at once now."""
        return self._limit

    @property
    def limit(self) -> int:
        """Pages that may be in flight (running, or back and waiting their turn): twice the requests."""
        return 2 * self._limit

    @asynccontextmanager
    async def agate(self) -> AsyncIterator[None]:
        """Held while a request runs (coroutines): at most :attr:`concurrency` at once. Polled: the loop never
        blocks, a cancelled waiter holds nothing. (The sync driver needs no gate: its thread count follows
        :attr:`concurrency`.)"""
        while True:
            with self._guard:
                if self._running < self._limit:
                    self._running += 1
                    break
            await asyncio.sleep(0.002)
        try:
            yield
        finally:
            with self._guard:
                self._running -= 1

    def page_done(self) -> None:
        """A page came back; at the end of each sample, decide the next limit."""
        with self._guard:
            self._done += 1
            self._burst_pages += 1
            if self._done < max(self._limit, SAMPLE):
                return
            now = self._clock()
            if now - self._since < MIN_SAMPLE_SECONDS:
                return
            rate = self._done / max(now - self._since, 1e-9)
            self._done, self._since = 0, now
            if not self._warm:
                # The first sample paid for connecting (TCP, TLS, the first token): any later sample looks
                # faster than it, so comparing with it would keep whatever step came next. Measure, don't judge.
                self._warm = True
                return
            if self._hold:
                self._hold -= 1
            elif self._grew and self._last_rate is not None and rate < self._last_rate * (1 + GAIN):
                # the last step up bought nothing: step back (all the way, after a doubling), and wait
                self._limit = max(1, self._before if self._doubling else self._limit - 1)
                self._grew, self._hold, self._doubling = False, HOLD, False
            elif self._limit < self.ceiling:
                self._before = self._limit
                self._limit = min(self.ceiling, 2 * self._limit) if self._doubling else self._limit + 1
                self.peak = max(self.peak, self._limit)
                self._grew = True
            else:
                self._grew = False
            self._last_rate = rate

    def throttle(self) -> None:
        """The API pushed back (429, timeout): halve what is in flight, once per burst of refusals (see the
        module's docstring), then hold."""
        with self._guard:
            self.throttled += 1
            if self._burst_refusals and self._burst_pages < self._burst_from:
                self._burst_refusals += 1  # the same burst: the API says how many it allows
            else:
                self._burst_from, self._burst_refusals, self._burst_pages = self._limit, 1, 0
            # what was in flight less what was refused, but at most half as many per burst
            allowed = max(self._burst_from // 2, self._burst_from - self._burst_refusals)
            self._limit = max(1, min(self._limit, allowed))
            self._doubling = False
            self._grew, self._done, self._since, self._last_rate = False, 0, self._clock(), None
            self._hold = HOLD

    def __repr__(self) -> str:
        return f"AdaptiveConcurrency(concurrency={self._limit}, ceiling={self.ceiling}, throttled={self.throttled})"
