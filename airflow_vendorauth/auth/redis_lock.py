"""The Redis fetch lock once taken: its lease, the proof before each spend, and the fence after a restart.

**Lease.** The lock key lives :data:`~airflow_vendorauth.auth.redis_cache.LOCK_LEASE_SECONDS` without
renewal; a thread renews it every third of that while the holder works, so a slow fetch keeps it and a dead
holder frees it within one lease. Renewal lives through transient errors (``BUSY``, ``READONLY`` during a
failover, a dropped connection) by retrying until the lease would lapse.

**Proof.** Just before a refresh token is presented, :meth:`HeldRedisLock.confirm` runs one script: if the
lock still holds this process's token, its lease is stretched over the attempt (the longest one may take,
:attr:`TokenEndpoint.attempt_seconds`) and a *spend mark* ``...:spending`` is set with the same lease;
otherwise nothing is sent (:class:`CacheLockLost`). The mark is removed once what came of the spend is
stored (the successor, or the pending or refused mark), never before: a holder that dies in between leaves it
to lapse with its lease.

**Fence.** A Redis that restarts empty (or a promoted replica that missed them) forgets both keys, while the holder's attempt may still be in flight.
So while it spends, the holder's renewal thread puts its mark back every :data:`SPEND_TICK_SECONDS` (``SET
NX``: never over another's), and :meth:`HeldRedisLock.fence`, run by every holder before it reads the chain,
waits while another's spend mark stands; on a Redis younger than one attempt (``INFO`` ``uptime``: a
restart, told even to a process that never saw the old server), or on another server than the one that
stored the chain's last rotation (its ``run_id`` stamp: a failover to a replica, which is not young), it
first gives a spender from before :data:`REASSERT_SECONDS` to put its mark back. The spender then stores its successor (or its
pending mark) there, which the waiter reads instead of spending the same token. A spender that died leaves
a mark that lapses with its lease. The same wait covers a lock whose key vanished under a live spender.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from airflow_vendorauth.auth.cache import CacheLockLost

if TYPE_CHECKING:
    from airflow_vendorauth.auth.redis_cache import RedisTokenCache

#: Between two attempts at the lock while Redis does not answer (a restart, a failover).
RECONNECT_PAUSE_SECONDS = 0.2
#: How often a spending holder puts its spend mark back (after a restart that erased it).
SPEND_TICK_SECONDS = 0.2
#: How long a holder of the lock of a young Redis waits for a spender from before its restart to put
#: its mark back: several ticks, and a reconnect.
REASSERT_SECONDS = 1.0
#: Between two looks at another's spend mark.
_FENCE_POLL_SECONDS = 0.05
#: If the lock still holds ARGV[1]: stretch it to ARGV[2] ms and set the spend mark (KEYS[2]) alike.
_CONFIRM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
"""
_DELETE_IF_EQUAL = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class HeldRedisLock:
    """A fetch lock this process holds (see the module docstring); :meth:`release` ends it."""

    def __init__(self, cache: RedisTokenCache, lock: Any, spend_key: str, fingerprint: str) -> None:
        self._cache, self._lock, self._spend_key, self._fingerprint = cache, lock, spend_key, fingerprint
        self._token: bytes = lock.local.token
        #: While an attempt is in flight: when its mark lapses (monotonic), else None.
        self.spending_until: float | None = None
        self._renewal = _LeaseRenewal(self, cache.lease_seconds, cache.log)
        self._renewal.start()

    @property
    def _where(self) -> str:
        return f"the fetch lock of the Redis token cache at {self._cache.url_shown}"

    def confirm(self, seconds: float) -> None:
        lease = max(self._cache.lease_seconds, seconds)
        self._lock.timeout = lease  # the renewals keep this lease from now on
        try:
            held = self._cache.client.eval(_CONFIRM, 2, self._lock.name, self._spend_key, self._token, int(lease * 1000))
        except self._cache.redis_errors as exc:
            raise CacheLockLost(f"{self._where} could not be confirmed ({_said(exc, self._cache)})") from None
        if not held:
            raise CacheLockLost(
                f"{self._where} is no longer this process's (its lease lapsed, or Redis restarted and another "
                "process took it)"
            )
        self.spending_until = time.monotonic() + lease

    def spend_over(self) -> None:
        """The spend is over and its outcome stored (the successor, or the pending mark): the spend mark goes."""
        self.spending_until = None
        self._lock.timeout = self._cache.lease_seconds
        with contextlib.suppress(*self._cache.redis_errors):
            self._cache.client.eval(_DELETE_IF_EQUAL, 1, self._spend_key, self._token)

    def fence(self, seconds: float) -> None:
        """Wait while another's spend mark stands, however long: its holder keeps it up only while its spend
        is out (attempts, retries, the store of their answer) and a dead holder's lapses within its lease, so
        the wait is bounded by that spend. A cap would let this holder read the chain while the spend is still
        out, find no successor, and present the same token."""
        uptime, moved = self._cache.fence_state(self._fingerprint)
        if uptime is None or uptime < seconds or moved:  # restarted, failed over (or unknown): a spender from
            time.sleep(REASSERT_SECONDS)  # before may be putting its mark back here
        while True:
            try:
                mark = self._cache.client.get(self._spend_key)
            except self._cache.redis_errors:
                mark = None  # Redis gone again: the spend's own lock confirmation will fail
            if mark is None or mark == self._token:
                return
            time.sleep(_FENCE_POLL_SECONDS)

    def renew(self) -> None:
        """Stretch the lock's lease again (the renewal thread); raises what Redis raised."""
        self._lock.reacquire()

    def put_mark_back(self) -> None:
        """While spending: the spend mark, if a restart erased it (never over another's)."""
        if (until := self.spending_until) is not None and (left := until - time.monotonic()) > 0:
            self._cache.client.set(self._spend_key, self._token, px=max(1, int(left * 1000)), nx=True)

    def release(self) -> None:
        self._renewal.stop()
        self.spend_over()
        with contextlib.suppress(*self._cache.redis_errors):
            self._lock.release()


def _said(exc: BaseException, cache: RedisTokenCache) -> str:
    from airflow_vendorauth.auth.redis_cache import describe_redis_error

    return describe_redis_error(exc, cache.address)


class _LeaseRenewal(threading.Thread):
    """Renews a held lock's lease every third of a lease until stopped, and puts the spend mark back while
    an attempt is in flight. A transient error is retried every :data:`RECONNECT_PAUSE_SECONDS` until the
    lease would lapse; only then, or when Redis says the lock is no longer ours, the holder says it lost
    the lock (another process may now fetch too). The spend mark is kept up whatever happened to the lock."""

    def __init__(self, held: HeldRedisLock, lease: float, log: logging.Logger | None) -> None:
        super().__init__(name="vendorauth-lock-lease", daemon=True)
        self._held, self._lease, self._log = held, lease, log
        self._stopped = threading.Event()
        #: Set when the lease was lost: read by tests and said in the log.
        self.lost = False

    def run(self) -> None:
        cache = self._held._cache
        renewed = time.monotonic()
        due = renewed + self._lease / 3
        # Awake every tick, whatever the lease: a spend may begin at any moment, and its mark must be back
        # within a tick of a restart.
        while not self._stopped.wait(min(SPEND_TICK_SECONDS, max(0.0, due - time.monotonic()))):
            if self._held.spending_until:
                with contextlib.suppress(*cache.redis_errors):
                    self._held.put_mark_back()
            if self.lost or time.monotonic() < due:
                continue
            try:
                self._held.renew()
            except cache.lost_errors as exc:
                self._say_lost(f"Redis says it is no longer ours ({type(exc).__name__})")
                continue
            except cache.redis_errors as exc:
                if time.monotonic() - renewed + RECONNECT_PAUSE_SECONDS >= self._lease:
                    self._say_lost(f"the lease lapsed while Redis answered {type(exc).__name__}")
                due = time.monotonic() + RECONNECT_PAUSE_SECONDS  # transient: try again soon, within the lease
                continue
            renewed, due = time.monotonic(), time.monotonic() + self._lease / 3

    def _say_lost(self, why: str) -> None:
        self.lost = True
        if self._log is not None:
            self._log.warning(
                "This process lost its Redis token cache lock while fetching (%s): another process may "
                "fetch at the same time",
                why,
            )

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=self._lease + 1)
