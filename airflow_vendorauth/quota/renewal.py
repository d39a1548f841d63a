"""Leases renewed while their requests run: one daemon thread per process (:data:`RENEWER`).

A request's lease on one of the credential's requests at once (``max_in_flight``) lasts its connection's
``timeout`` plus a margin, so that a process that dies mid-request frees its slot then. But httpx's
``timeout`` bounds each read, not the whole request: a body that trickles in, or a token fetched inside the
auth flow, may run past it. So every lease a limiter holds is renewed while its request runs: each
:data:`RENEW_FRACTION` of its length, the store is told it still runs (Redis ``ZADD XX``: a lease given
back or lapsed meanwhile stays gone). The lease is renewed until it is given back; a process that dies
stops renewing, and its leases lapse as before. A lease never given back (a request object kept forever)
is renewed for :data:`MAX_RENEWED_SECONDS` at most, then lapses.

A store that cannot answer is asked again at the next renewal (its lease may lapse meanwhile, as any
lease of a store that is gone).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any

#: A held lease is renewed when this share of its length has passed since it was granted or last renewed.
RENEW_FRACTION = 1 / 3
#: The longest a lease is renewed for (a request that runs longer loses its slot, as before renewals).
MAX_RENEWED_SECONDS = 3600.0
#: The renewing thread ends after this long without a lease to renew (the next lease starts another).
IDLE_SECONDS = 30.0

log = logging.getLogger("airflow_vendorauth")


@dataclass
class _Held:
    store: Any
    key: str
    seconds: float
    due: float  # monotonic
    until: float  # monotonic
    renewed: Callable[[str, float], None] | None


class LeaseRenewer:
    """The leases of this process's running requests, and the thread that renews them."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._guard = threading.Condition(threading.Lock())
        self._held: dict[str, _Held] = {}
        self._thread: threading.Thread | None = None
        #: Actions :meth:`call_soon` left for the renewing thread (a lock-free, reentrant queue).
        self._later: SimpleQueue[Callable[[], object]] = SimpleQueue()
        #: Renewals made (for tests and benchmarks).
        self.renewals = 0

    def hold(
        self,
        store: Any,
        key: str,
        lease: str,
        seconds: float,
        renewed: Callable[[str, float], None] | None = None,
    ) -> None:
        """Renew ``lease`` (of ``key`` in ``store``, ``seconds`` long) until :meth:`drop`; ``renewed`` is
        told each renewal."""
        now = time.monotonic()
        with self._guard:
            self._held[lease] = _Held(store, key, seconds, now + seconds * RENEW_FRACTION, now + MAX_RENEWED_SECONDS, renewed)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vendorauth-lease-renewer", daemon=True)
                self._thread.start()
            else:
                self._guard.notify()

    def drop(self, lease: str) -> None:
        """The request of ``lease`` ended (or never was sent): no more renewals."""
        with self._guard:
            self._held.pop(lease, None)

    def call_soon(self, action: Callable[[], object]) -> None:
        """Run ``action`` soon on the renewing thread. Safe where no lock may be taken: a weakref finalizer
        or ``__del__``, run by the garbage collector on whatever thread allocates, maybe inside a section that
        holds a limiter's or this renewer's lock (taking it again there would hang that thread for good). It
        runs at the latest at the thread's next renewal or the next lease held."""
        self._later.put(action)
        if self._guard.acquire(blocking=False):  # never waits: a lock held (maybe by this very thread) is left
            try:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="vendorauth-lease-renewer", daemon=True)
                    self._thread.start()
                else:
                    self._guard.notify()
            finally:
                self._guard.release()

    def _run_later(self) -> None:
        while not self._later.empty():
            action = self._later.get()
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - one action failing must not end the renewals
                log.debug("A deferred quota action failed: %s: %s", type(exc).__name__, exc)

    def held(self) -> int:
        with self._guard:
            return len(self._held)

    def _due(self) -> list[tuple[str, _Held]] | None:
        """The leases to renew now, waiting until one is due; None: nothing held for :data:`IDLE_SECONDS`."""
        with self._guard:
            idle_since = time.monotonic()
            while True:
                now = time.monotonic()
                for lease in [k for k, h in self._held.items() if h.until <= now]:
                    del self._held[lease]
                due = [(lease, h) for lease, h in self._held.items() if h.due <= now]
                if due or not self._later.empty():
                    for _, h in due:
                        h.due = now + h.seconds * RENEW_FRACTION
                    return due
                if self._held:
                    idle_since = now
                    self._guard.wait(min(h.due for h in self._held.values()) - now)
                elif now - idle_since >= IDLE_SECONDS:
                    self._thread = None
                    return None
                else:
                    self._guard.wait(IDLE_SECONDS - (now - idle_since))

    def _run(self) -> None:
        try:
            self._renew_while_held()
        finally:  # ended, even by an exception: the next lease held (or call_soon) starts another thread
            with self._guard:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _renew_while_held(self) -> None:
        while (due := self._due()) is not None:
            self._run_later()
            batches: dict[tuple[int, str, float], list[tuple[str, _Held]]] = {}
            for lease, h in due:
                batches.setdefault((id(h.store), h.key, h.seconds), []).append((lease, h))
            for batch in batches.values():
                store, key, seconds = batch[0][1].store, batch[0][1].key, batch[0][1].seconds
                try:
                    store.renew(key, [lease for lease, _ in batch], seconds)
                except Exception as exc:  # noqa: BLE001 - a store gone: asked again at the next renewal
                    log.debug("Quota leases of %s not renewed in %s: %s: %s", key, getattr(store, "name", store),
                              type(exc).__name__, exc)
                    continue
                self.renewals += len(batch)
                for lease, h in batch:
                    if h.renewed is not None:
                        try:
                            h.renewed(lease, seconds)
                        except Exception as exc:  # noqa: BLE001 - a callback failing must not end the renewals
                            log.debug("Quota lease %s renewed, its callback failed: %s: %s", lease,
                                      type(exc).__name__, exc)


#: The renewer of this process's leases.
RENEWER = LeaseRenewer()
if hasattr(os, "register_at_fork"):  # a forked task process renews its own leases, not its parent's
    os.register_at_fork(after_in_child=RENEWER._reset)
