"""What every request of a credential does before it is sent, and after: :class:`QuotaLimiter`.

Before: take a permit (a lease on one of the requests at once, and a slot of every rate) from the
credential's store; when none is free, wait as long as the store says, or fail at once with
:class:`~airflow_vendorauth.exceptions.QuotaExhausted` (the quota named, and when it resets) when the wait
is longer than ``quota_max_wait``. After: give the lease back, and tell the store what the answer said:
a 429's ``Retry-After`` blocks every process of the credential until then; ``RateLimit-Policy`` teaches the
rate; ``RateLimit``/``X-RateLimit-*`` correct what remains (another client may share the quota), and a
window they say is spent blocks until its reset; a 429 while the rate still has room teaches how many
requests the API takes at once.

The store unreachable (Redis down): each process goes on with :data:`FALLBACK_SHARE` of every declared
limit, kept in its own memory, says so once, and asks the store again every :data:`RETRY_STORE_SECONDS`.
A lease the store granted and could not take back meanwhile (its primary killed mid-request) is given back
as soon as the store answers again: a failover's promoted replica holds the leases the old primary had,
and would count them in flight until they expire (one ``timeout`` plus 5 s: the credential stalled).

A lease is renewed while its request runs (:mod:`.renewal`: httpx's timeout bounds each read, not the
request), until it is given back; a process that dies stops renewing, and its leases lapse.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow_vendorauth import stopping
from airflow_vendorauth.auth.warn_once import warn_once
from airflow_vendorauth.exceptions import QuotaExhausted, VendorApiError
from airflow_vendorauth.quota import headers as quota_headers
from airflow_vendorauth.quota.renewal import RENEWER
from airflow_vendorauth.quota.spec import QuotaSpec, Rate
from airflow_vendorauth.quota.state import Decision
from airflow_vendorauth.quota.stores import MemoryQuotaStore, QuotaStore
from airflow_vendorauth.retry import parse_retry_after

#: Each process's share of the declared limits while the shared store cannot be reached: a quarter, so up
#: to four processes at once stay within the quota (more may draw 429s, which are retried).
FALLBACK_SHARE = 0.25
#: How often a process that fell back asks the shared store again.
RETRY_STORE_SECONDS = 5.0
#: The longest single sleep of a waiting request before it asks the store again (a release, a lesson).
MAX_SLEEP_SECONDS = 1.0
#: A 429 that names no wait blocks the credential this long.
DEFAULT_BLOCK_SECONDS = 1.0
#: Waiters of a block return at its end spread over this many seconds, each at random: a block gathers
#: every request of the credential (a scan's pages, every task's) and each 429 of the crowd released at
#: once extends it, so the crowd would return in lock step again and again until some request ran out of
#: tries (a scan of 32 pages at once against an API taking 4 failed so; ``benchmarks/ceiling.py``).
BLOCK_SPREAD_SECONDS = 0.5
#: The longest the API's word (``Retry-After``, a window's reset) blocks the credential: a day (a daily
#: quota's reset). An absurd or hostile value (years, a reset in milliseconds read as seconds) would
#: otherwise fail every task of the cluster until then; past a day, the next refusal says it again.
MAX_BLOCK_SECONDS = 86400.0


def _pause(decision: Decision) -> float:
    """How long a refused caller sleeps before it asks again: the wait, at most :data:`MAX_SLEEP_SECONDS`;
    past the end of the API's block, a random share of :data:`BLOCK_SPREAD_SECONDS` more."""
    if decision.blocked and decision.wait <= MAX_SLEEP_SECONDS:
        return decision.wait + random.uniform(0.0, BLOCK_SPREAD_SECONDS)
    return min(decision.wait, MAX_SLEEP_SECONDS)


def _quota_news(headers: Mapping[str, str]) -> bool:
    return any(name.lower().startswith(("ratelimit", "x-ratelimit", "x-rate-limit")) for name in headers)


#: The fallback quotas of this process, by credential.
FALLBACK = MemoryQuotaStore()

T = TypeVar("T")


class HeldLease:
    """The lease of a request that gives it back itself (sent through the client directly, or by the HTTP
    bridge): by its answer's hook, or when the request is dropped without one (a transport error: neither
    httpx nor requests runs a response hook then). Renewed until given back, so it must not wait to lapse."""

    def __init__(self, limiter: QuotaLimiter, lease: str) -> None:
        self.limiter = limiter
        self.lease: str | None = lease

    def give_back(self) -> bool:
        """Once: False when it was given back already."""
        lease, self.lease = self.lease, None
        if lease is None:
            return False
        self.limiter.release(lease)
        return True


def hold_until_answered(request: Any, limiter: QuotaLimiter, lease: str) -> HeldLease:
    """``lease`` held for ``request``: given back by the caller's answer hook, or when the request is freed.
    The finalizer runs wherever the garbage collector runs (maybe under a lock of the limiter's): it hands the
    give-back to the renewing thread, never gives back on the spot."""
    held = HeldLease(limiter, lease)
    weakref.finalize(request, RENEWER.call_soon, held.give_back)
    return held


class _Handoff:
    """Who gives back a permit granted to a caller that was cancelled while the store decided: the
    deciding thread if the caller left first, the caller if the grant came first (exactly one of them)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._abandoned = self._granted = False

    def decided(self, granted: bool) -> bool:
        """The store answered; True: the caller is gone, so the deciding thread gives a grant back."""
        with self._guard:
            self._granted = granted
            return granted and self._abandoned

    def abandon(self) -> bool:
        """The caller was cancelled; True: the grant came first, so the caller gives it back."""
        with self._guard:
            self._abandoned = True
            return self._granted


class QuotaLimiter:
    """The quota of one credential (``key``) as one connection declares it (``spec``), in ``store``."""

    def __init__(
        self,
        key: str,
        spec: QuotaSpec,
        store: QuotaStore,
        *,
        vendor: str,
        conn_id: str,
        lease_seconds: float,
        logger: logging.Logger | None = None,
        where: str = "",
        retry_after_cap: float = 60.0,
    ) -> None:
        self.key, self.spec, self.store = key, spec, store
        #: A ``Retry-After`` blocks the credential at most this long (the retry policy's cap: a proxy that
        #: says 3600 does not hold every worker for an hour; a spent window the headers announce does).
        self.retry_after_cap = retry_after_cap
        self.vendor, self.conn_id = vendor, conn_id
        self.lease_seconds = lease_seconds
        self.log = logger or logging.getLogger("airflow_vendorauth")
        self.where = where or store.name
        self._store_down_until = 0.0
        #: Leases the shared store granted and not yet taken back, and those it could not take back (gone
        #: meanwhile): given back when it answers again.
        self._store_leases: OrderedDict[str, float] = OrderedDict()  # lease -> when it expires (monotonic)
        self._unreleased: dict[str, float] = {}
        self._leases_guard = threading.Lock()
        #: Rates the API announced (``RateLimit-Policy``), by name: corrections apply to them too.
        self._learnt: dict[str, Rate] = {}
        #: Permits waited for, and seconds spent waiting (for logs and benchmarks).
        self.waits = 0
        self.waited_seconds = 0.0

    def __repr__(self) -> str:
        return f"QuotaLimiter(conn_id={self.conn_id!r}, {self.spec.describe()}, store={self.store.name})"

    # ---- the store, or this process's share when it cannot answer --------------------------------------

    def _use(self, action: Callable[[QuotaStore, QuotaSpec], T]) -> T:
        if time.monotonic() >= self._store_down_until:
            try:
                answer = action(self.store, self.spec)
            except self.store.errors as exc:
                self._store_down_until = time.monotonic() + RETRY_STORE_SECONDS
                warn_once(
                    self.log,
                    f"quota-store-down:{self.where}",
                    "Quota store %s is unavailable (%s: %s): each process goes on alone with %d %% of the declared "
                    "limits of its connections (%s: %s), asking the store again every %.0f s (said once per process)",
                    self.where,
                    type(exc).__name__,
                    exc,
                    FALLBACK_SHARE * 100,
                    self.conn_id,
                    self.spec.scaled(FALLBACK_SHARE).describe(),
                    RETRY_STORE_SECONDS,
                )
            else:
                if self._unreleased:
                    self._give_back()
                return answer
        return action(FALLBACK, self.spec.scaled(FALLBACK_SHARE))

    def _decide(self, lease: str) -> Decision:
        def ask(store: QuotaStore, spec: QuotaSpec) -> Decision:
            decision = store.acquire(self.key, spec.rates, spec.max_in_flight, lease, self.lease_seconds)
            if decision.granted and store is self.store:
                now = time.monotonic()
                with self._leases_guard:
                    while self._store_leases and next(iter(self._store_leases.values())) <= now:
                        self._store_leases.popitem(last=False)  # never given back: expired by itself
                    self._store_leases[lease] = now + self.lease_seconds
                RENEWER.hold(store, self.key, lease, self.lease_seconds, self._renewed)
            elif decision.granted:
                RENEWER.hold(store, self.key, lease, self.lease_seconds)
            return decision

        return self._use(ask)

    def _renewed(self, lease: str, seconds: float) -> None:
        """The store renewed ``lease``: it expires ``seconds`` from now (what :meth:`_give_back` goes by)."""
        with self._leases_guard:
            if lease in self._store_leases:
                self._store_leases[lease] = time.monotonic() + seconds
                self._store_leases.move_to_end(lease)

    def _release(self, lease: str) -> None:
        RENEWER.drop(lease)  # its request ended: no more renewals
        FALLBACK.release(self.key, lease)  # where it was taken: the fallback, or the shared store
        with self._leases_guard:
            expires = self._store_leases.pop(lease, None)
        if time.monotonic() >= self._store_down_until:
            try:
                self.store.release(self.key, lease)
                return
            except self.store.errors:
                pass
        if expires is not None:  # the store's: given back when it answers again (or it expires by itself)
            with self._leases_guard:
                self._unreleased[lease] = expires

    def _give_back(self) -> None:
        """Take back the store's leases it could not take back while it was gone (they still count there)."""
        with self._leases_guard:
            leases, self._unreleased = self._unreleased, {}
        for lease, expires in leases.items():
            if expires <= time.monotonic():
                continue
            try:
                self.store.release(self.key, lease)
            except self.store.errors:
                with self._leases_guard:
                    self._unreleased[lease] = expires

    def _too_long(self, decision: Decision, waited: float = 0.0) -> QuotaExhausted:
        resets = time.time() + decision.wait
        when = datetime.datetime.fromtimestamp(resets, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        if decision.wait <= self.spec.max_wait:  # each wait short, but no permit came in quota_max_wait
            message = (
                f"{self.vendor} API quota {decision.why!r} of connection {self.conn_id!r} gave this request no permit "
                f"in {waited:.1f} s of waiting, longer than quota_max_wait ({self.spec.max_wait:g} s): other requests "
                f"hold it (slow or stuck requests at once, or more callers than the rate serves). Retry the task "
                f"later, run fewer tasks of this connection at once, or raise quota_max_wait"
            )
        else:
            message = (
                f"{self.vendor} API quota {decision.why!r} of connection {self.conn_id!r} allows the next request at "
                f"{when} (in {decision.wait:.0f} s), later than quota_max_wait ({self.spec.max_wait:g} s): the quota "
                f"is spent until then. Retry the task after it resets (or raise quota_max_wait to wait in the task)"
            )
        return QuotaExhausted(
            message,
            vendor=self.vendor,
            conn_id=self.conn_id,
            quota=decision.why,
            resets_at=resets,
        )

    def _stopped(self) -> VendorApiError:
        return VendorApiError(
            f"{self.vendor} API call of connection {self.conn_id!r} stopped while waiting for its quota",
            vendor=self.vendor,
            conn_id=self.conn_id,
            status=None,
        )

    # ---- before a request -------------------------------------------------------------------------

    def _pause_or_fail(self, decision: Decision, started: float) -> float:
        """How long a refused caller waiting since ``started`` sleeps (counted), or :class:`QuotaExhausted`
        when the wait would pass ``quota_max_wait``: the one rule of :meth:`acquire` and :meth:`aacquire`."""
        waited = time.monotonic() - started
        if decision.wait > self.spec.max_wait or waited + min(decision.wait, MAX_SLEEP_SECONDS) > self.spec.max_wait:
            raise self._too_long(decision, waited)
        self.waits += 1
        pause = _pause(decision)
        self.waited_seconds += pause
        return pause

    def acquire(self) -> str:
        """Wait for a permit (blocking) and return its lease; give it back with :meth:`release`."""
        lease, started = uuid.uuid4().hex, time.monotonic()
        try:
            while not (decision := self._decide(lease)).granted:
                if stopping.wait(self._pause_or_fail(decision, started)):
                    raise self._stopped()
        except BaseException:  # a SIGTERM's exception (Airflow's) just after the store granted: give it back
            self._release(lease)
            raise
        return lease

    async def aacquire(self) -> str:
        lease, started = uuid.uuid4().hex, time.monotonic()
        while not (decision := await self._adecide(lease)).granted:
            await asyncio.sleep(self._pause_or_fail(decision, started))
        return lease

    async def _adecide(self, lease: str) -> Decision:
        """The store's decision, asked in a thread; a caller cancelled meanwhile (a trigger the triggerer
        dropped, a scan's page cancelled) has the permit given back once the store granted it, not held
        (and renewed) with nobody to release it. Whichever comes second of the grant and the cancellation
        gives it back, in a thread of its own: never through the loop, whose executor takes no more work
        once ``asyncio.run`` is returning, and never blocking the loop on the store."""
        handoff = _Handoff()

        def decide() -> Decision:
            decision = self._decide(lease)
            if handoff.decided(decision.granted):  # the caller is gone already
                self._release(lease)
            return decision

        asked = asyncio.get_running_loop().run_in_executor(None, decide)
        try:
            return await asyncio.shield(asked)
        except asyncio.CancelledError:
            if handoff.abandon():  # granted, but the caller never got it
                threading.Thread(target=self._release, args=(lease,), name="vendorauth-quota-release", daemon=True).start()
            raise

    def release(self, lease: str) -> None:
        """Give a permit's lease back (the request ended); a lease never given back expires by itself."""
        self._release(lease)

    async def arelease(self, lease: str) -> None:
        """:meth:`release` off the event loop when the store is not this process's memory."""
        if self.store.name == "memory":
            self._release(lease)
        else:
            await asyncio.to_thread(self._release, lease)

    async def aobserve(self, status: int, headers: Mapping[str, str]) -> None:
        """:meth:`observe` off the event loop when it has something to tell a store that is not memory."""
        if self.store.name == "memory" or (status != 429 and not _quota_news(headers)):
            self.observe(status, headers)
        else:
            await asyncio.to_thread(self.observe, status, headers)

    # ---- after an answer --------------------------------------------------------------------------

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from an answer (its lease still held): see the module's docstring."""
        said = quota_headers.read(headers)
        if not said.policies and not said.windows and status != 429:
            return
        self._use(lambda store, spec: self._learn(store, spec, status, headers, said))

    def _learn(
        self, store: QuotaStore, spec: QuotaSpec, status: int, headers: Mapping[str, str], said: quota_headers.Said
    ) -> None:
        for rate in said.policies:
            if rate.name not in self._learnt and all(r.name != rate.name for r in spec.rates):
                store.learn_rate(self.key, rate)
                self._learnt[rate.name] = rate
        known = (*spec.rates, *self._learnt.values())
        room = False
        for window in said.windows:
            if window.remaining <= 0:
                seconds = min(window.reset if window.reset is not None else DEFAULT_BLOCK_SECONDS, MAX_BLOCK_SECONDS)
                limit = f"{window.limit} requests" if window.limit else "its window"
                store.block(self.key, seconds, f"the API's own quota ({limit}, said spent by its RateLimit headers)")
                continue
            room = True
            matching = [r for r in known if r.count == window.limit] if window.limit else known[:1] if len(known) == 1 else []
            for rate in matching[:1]:
                store.correct(self.key, rate, window.remaining)
        if status != 429:
            return
        retry_after = parse_retry_after(headers.get("Retry-After"))
        # refused while a window had room: too many at once, unless nothing else ran (this one given back):
        # then a window the API did not announce refused it (a per-second burst beside an hourly quota)
        running = store.in_flight(self.key) if room and spec.max_in_flight is None else 0
        if not room or (spec.max_in_flight is None and running == 0):
            # a refusal of the rate (or of nothing said): every process waits it out
            seconds = min(retry_after, self.retry_after_cap) if retry_after is not None else DEFAULT_BLOCK_SECONDS
            seconds = min(seconds, MAX_BLOCK_SECONDS)
            store.block(self.key, seconds, f"the API's 429 (Retry-After {seconds:g} s)")
        elif spec.max_in_flight is None:
            store.learn_in_flight(self.key, running)  # what still runs is allowed
