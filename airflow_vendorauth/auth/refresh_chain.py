"""The rules of a rotating refresh-token chain: when a refresh token may be spent, and where its successor goes.

With ``grant_type=refresh_token`` on a rotating server (RFC 9700), each refresh spends the newest refresh
token and the answer carries the next one. Presenting a spent token again is the theft signal: strict
servers refuse it and may revoke the whole grant (Auth0, Okta). So the one promise this module keeps is:
**a refresh token is presented at most once** (within a reuse interval the connection declares, a spend
whose answer was lost may be presented again, as the server allows), and **its successor is never kept
in one place only**. The rules, each where it is enforced:

Generations (``auth/chain_copy.py``). The connection's refresh token seeds generation 0; each rotation
makes the next. Copies of the chain (this process's memory, the shared cache, copies given back after the
cache lost its data) are ordered by generation; each refresh spends the highest copy it can find, and a
copy is written only over a lower one, so an old copy never overwrites a newer one.

Spend (:meth:`RefreshChainKeeper.refresh`). Only under the shared cache's fetch lock (file or Redis; a
process's own memory lock when the cache is ``memory``), one process and thread at a time.

Write-ahead (:class:`~airflow_vendorauth.auth.chain_copy.Pending`). Before a token is presented, a pending
mark is stored with it (memory, then the shared cache: no cache write, no spend) and read back: the write
keeps a copy only over a lower one and says nothing when it keeps the cache's, so a newer generation given
back meanwhile would otherwise send a spent token. The mark stays until the successor is stored (it then
goes with the old generation) or the spend is known not to have reached the server (a refused connection,
429, 503: it is settled, and stays settled: a copy still carrying that mark, taken by another process while
the spend was out, never brings it back, ``chain_copy.outranks``). A mark that stays says "this token was presented
and nobody stored an answer": the spender died between the server's rotation and the store (a SIGKILL), or
the answer was lost (a read timeout, a 502). Whoever finds it does not present the token again: it waits
for the spender to give back a successor (:data:`CHAIN_HEAL_SECONDS`), then says the chain is in doubt and
how to re-seed, unless the server's reuse interval (``refresh_reuse_interval``) is still open, which is
checked just before each attempt (``TokenEndpoint.spend``): once it has passed, that token is not sent
again. A successor given back after this process said so is followed at its next call (the provider's
memory of the refusal lapses once a newer copy is known). A token the server refused keeps a ``refused``
mark, so the other processes say the chain is lost instead of presenting it once each.

Store (:meth:`RefreshChainKeeper._store`). The successor goes to memory first, then to the shared cache,
retried for :data:`CHAIN_STORE_RETRY_SECONDS` under the lock (longer for a cache that fails over: its
``failover_seconds``, a Redis Sentinel group or Cluster); a failed write is said loudly, and the copy
in memory is given back on this process's next token request and by :meth:`keep_published`.

Offer-back. When the shared cache lost the chain (a Redis restarted empty), every process gives its copy
back: every :data:`CHAIN_REPUBLISH_SECONDS` while it makes calls, and while it waits for the lock. The lock
holder that finds no chain (or only copies given back) waits for them before it spends.

Fence. A lock only protects a spend if its holder still holds it when the token leaves. So (1) just before
each attempt, the holder proves the lock is still its own and stretches the lease over the attempt
(``HeldLock.confirm``: one atomic script on Redis, which also sets a spend mark; a lost lock spends
nothing); and (2) a Redis that restarted has forgotten every lock and mark: a holder from before the
restart may have confirmed its lock a moment before and still be presenting a token. It puts its spend
mark back at once (its renewal thread, every 0.2 s) and removes it only once the spend's outcome is stored,
and every holder of the lock, before it reads the chain, waits while another's spend mark stands, however
long (its spender keeps it only while its spend is out; a dead one's lapses with its lease); on a Redis
younger than one attempt (its uptime: a restart, told even to a process that never saw the old server), or
one that is not the server that stored the chain's last rotation (a failover: the rotation stamps the chain
with the server's ``run_id``, which a promoted replica does not share), it first leaves a spender from
before a second to put its mark back (``HeldLock.fence``, ``auth/redis_lock.py``). The spender then stores
its successor there, which the waiter spends instead. Such a chain also reads as republished: a promoted
replica may have missed the newest generation, which the processes' copies give back (Offer-back, above).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from airflow_vendorauth.auth.cache import CacheLockLost, HeldLock, MemoryTokenCache, SharedTokenCache
from airflow_vendorauth.auth.chain_copy import REFUSED, Pending, RefreshChain, newest, outranks
from airflow_vendorauth.auth.chain_errors import in_doubt_why, lost_why
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.auth.token_endpoint import TokenEndpoint
from airflow_vendorauth.exceptions import ScanStopped, TokenRequestError
from airflow_vendorauth.redact import redact
from airflow_vendorauth.stopping import hold_stops, stop_asked

#: How long a refresher waits for the other processes to give back their copies of a chain the shared
#: cache has lost, or a successor to a pending spend, before it decides on the copies it has.
CHAIN_HEAL_SECONDS = 1.5
#: How often a process that holds a chain (and makes calls) offers its copy back to the shared cache.
CHAIN_REPUBLISH_SECONDS = 0.5
#: How long closing waits for its give-back to the shared cache (a Redis that accepts and does not answer
#: would otherwise hold it a socket timeout and a retry for the read, and again for the write: 8 s, past the
#: 5 s between Airflow's SIGTERM and its SIGKILL); the give-back goes on in its thread meanwhile.
CLOSE_GIVE_BACK_SECONDS = 2.5
#: How long the successor's write to the shared cache is retried (under the lock) before this process
#: keeps it in memory only, and says so loudly.
CHAIN_STORE_RETRY_SECONDS = 5.0
#: The same, once the task was told to stop (within stopping.HOLD_GRACE_SECONDS).
CHAIN_STORE_RETRY_SECONDS_WHEN_STOPPING = 1.0
_CHAIN_STORE_PAUSE_SECONDS = 0.2
#: What Test sends to a rotating refresh token's endpoint to check it without spending the chain.
PROBE_REFRESH_TOKEN = "vendorauth-test-probe-not-a-refresh-token"


class RefreshChainKeeper:
    """Spends and keeps one credential's rotating refresh-token chain (the module docstring's rules)."""

    def __init__(
        self,
        endpoint: TokenEndpoint,
        *,
        key: str,
        seed: str,
        shared: SharedTokenCache | None,
        memory: MemoryTokenCache,
        logger: logging.Logger,
        reuse_seconds: float = 0.0,
    ) -> None:
        self.endpoint, self.key, self._seed = endpoint, key, RefreshChain(seed, 0)
        self._shared, self._memory, self._log = shared, memory, logger
        self._reuse_seconds = reuse_seconds
        self._republish_due = 0.0
        #: The refresh tokens this keeper presented: what a vendor echoes back is masked in its errors.
        self._presented: list[str] = []

    # ---- spending, under the lock ------------------------------------------------------------------------

    def refresh(self, lock: HeldLock) -> AccessToken:
        """Spend the newest refresh token and keep its successor (the caller holds the fetch lock)."""
        lock.fence(self.endpoint.attempt_seconds)  # another's spend from before a restart of the cache ends first
        current = self._newest_copy()
        if current.pending is not None and not self._may_repeat(current.pending):
            current = self._wait_for_a_successor(current)
        with hold_stops():
            if stop_asked():  # a rotation begun now could be cut by the SIGKILL: the chain would be lost
                raise ScanStopped("the task was told to stop (SIGTERM): its refresh token is not spent now")
            return self._spend(current, lock)

    def _newest_copy(self) -> RefreshChain:
        mine = self._memory.load_refresh_token(self.key)
        if self._shared is None:
            return mine or self._seed
        found = self._read_shared()
        if found is None or found.republished:
            # No rotation stored in the shared cache since it started: a first refresh, or the cache lost the
            # chain (Redis restarted empty). The newest copy may be in another process's memory (each gives
            # its own back before it queues for this lock, and every CHAIN_REPUBLISH_SECONDS while it makes
            # calls). Give them time, then spend the highest copy published.
            self._publish(mine or self._seed)
            time.sleep(CHAIN_HEAL_SECONDS)
            found = self._read_shared()
        current = newest(found, mine) or self._seed
        if mine is not None and (found is None or outranks(mine, found)):
            self._store(mine)  # an earlier write failed: it goes back before anyone else refreshes
        return current

    def _read_shared(self) -> RefreshChain | None:
        """The shared cache's copy, kept in memory too (with its pending mark): if the cache loses it, this
        process gives it back, and a spend without an answer stays known."""
        assert self._shared is not None
        found = self._shared.load_refresh_token(self.key)
        if found is not None:
            self._memory.store_refresh_token(self.key, found)
        return found

    def _may_repeat(self, pending: Pending) -> bool:
        """A token presented before without an answer may be presented again within the reuse interval."""
        return pending.state != REFUSED and time.time() < pending.since + self._reuse_seconds

    def _wait_for_a_successor(self, current: RefreshChain) -> RefreshChain:
        """``current`` was presented and no successor stored: its spender may yet give one back (its write
        to the cache failed); otherwise the chain is in doubt, or lost, and presenting it again would be reuse."""
        if self._shared is not None and current.pending is not None and current.pending.state != REFUSED:
            time.sleep(CHAIN_HEAL_SECONDS)
            current = newest(self._read_shared(), self._memory.load_refresh_token(self.key)) or current
        if current.pending is None or self._may_repeat(current.pending):
            return current
        raise self._in_doubt(current)

    def _spend(self, current: RefreshChain, lock: HeldLock) -> AccessToken:
        """Present ``current`` (marked pending first) and keep its successor. A stop of the task (Airflow's
        SIGTERM) waits until it is done: cut between the server's rotation and the store of the successor,
        the chain would be lost for good (``stopping.py``); the retries end once a stop is asked."""
        marked = current.marked(current.pending or Pending.new())
        self._memory.store_refresh_token(self.key, marked)
        if self._shared is not None and not self._shared.store_refresh_token(self.key, marked):
            self._memory.settle_refresh_token(self.key, marked)
            raise self.chain_error(
                f"the refresh token was not spent: the {self._shared.name} cache could not record the spend first "
                "(a token presented without that record could be presented twice). Fix: make the cache reachable",
                retryable=True,
            )
        if self._shared is not None and not self._record_is_mine(marked):
            self._memory.settle_refresh_token(self.key, marked)
            raise self.chain_error(
                f"the refresh token was not spent: read back, the {self._shared.name} cache holds another copy of the "
                "chain than this spend's record (a newer generation given back, or another process's spend, arrived "
                "meanwhile, or the cache lost it); the next token request spends the newest copy",
                retryable=True,
            )
        try:
            return self._present(current, marked, lock)
        finally:
            # Only now, with the successor (or what became of the spend) stored: the spend mark is what a
            # holder of the lock of a restarted Redis waits on, and without it nor a successor it would
            # present the token just spent. A process that dies before this line leaves the mark to lapse.
            lock.spend_over()

    def _record_is_mine(self, marked: RefreshChain) -> bool:
        """Whether the shared copy, read back, is this spend's record: the write keeps a copy only over a lower
        one and says nothing when it keeps the cache's, so a newer generation given back (or another's mark)
        between this process's read and its write would otherwise send a token already spent."""
        found = self._read_shared()
        return found is not None and found.generation == marked.generation and found.pending == marked.pending

    def _present(self, current: RefreshChain, marked: RefreshChain, lock: HeldLock) -> AccessToken:
        """Send ``current`` (its spend recorded as ``marked``) and store what came of it."""
        assert marked.pending is not None
        repeat_until = marked.pending.since + self._reuse_seconds if self._reuse_seconds else None
        self._presented = [*self._presented[-3:], current.refresh_token]
        try:
            token = self.endpoint.spend(
                current.refresh_token,
                before_send=lambda: lock.confirm(self.endpoint.attempt_seconds),
                repeat_until=repeat_until,
                presented_before=current.pending is not None,
            )
        except CacheLockLost as lost:
            if current.pending is None:  # nothing of this spend reached the server: undo the mark
                self._settle(marked)
            raise self.chain_error(f"the refresh token was not spent: {lost}", retryable=True) from None
        except TokenRequestError as error:
            if error.error == "invalid_grant":
                self._mark(marked, REFUSED)
                again = newest(
                    self._shared.load_refresh_token(self.key) if self._shared is not None else None,
                    self._memory.load_refresh_token(self.key),
                )
                if again is None or again.generation <= current.generation:
                    raise self._lost(error, current) from None
                return self._spend(again, lock)  # a newer copy came back meanwhile (a process gave it back late)
            if not error.maybe_spent:
                if current.pending is None:
                    self._settle(marked)  # it did not reach the server: the token is still good
                raise
            raise self._in_doubt(marked, error) from None
        if token.refresh_token and token.refresh_token != current.refresh_token:
            following = RefreshChain(token.refresh_token, current.generation + 1)
            self._memory.store_refresh_token(self.key, following)  # first here: never in one place only
            if self._shared is not None:
                self._store(following)
        else:
            self._settle(marked)  # the server does not rotate: the same token stays good
        return token

    def _mark(self, chain: RefreshChain, state: str) -> None:
        assert chain.pending is not None
        changed = chain.marked(Pending(chain.pending.since, chain.pending.owner, state))
        for cache in (self._memory, self._shared):
            if cache is not None:
                cache.store_refresh_token(self.key, changed)

    def _settle(self, chain: RefreshChain) -> None:
        self._memory.settle_refresh_token(self.key, chain)
        if self._shared is not None:
            self._shared.settle_refresh_token(self.key, chain)

    def _store(self, chain: RefreshChain) -> None:
        """Write the successor to the shared cache, retrying through a blip (under the lock)."""
        assert self._shared is not None
        started = time.monotonic()
        budget = max(CHAIN_STORE_RETRY_SECONDS, getattr(self._shared, "failover_seconds", 0.0))
        deadline = started + budget
        said = False
        while not self._shared.store_refresh_token(self.key, chain):
            if not said:
                self._log.warning(
                    "%s connection %r: the next refresh token could not be written to the %s cache; it is kept "
                    "in this process's memory and the write is retried for %.0f s",
                    self.endpoint.vendor, self.endpoint.conn_id, self._shared.name, budget,
                )
                said = True
            if stop_asked():  # the SIGKILL comes 5 s after the SIGTERM: leave time for the scan's commit
                deadline = min(deadline, time.monotonic() + CHAIN_STORE_RETRY_SECONDS_WHEN_STOPPING)
            if time.monotonic() >= deadline:
                self._log.error(
                    "%s connection %r: the newest refresh token (generation %d) is kept ONLY in this process's "
                    "memory: the %s cache refused it for %.0f s. This process gives it back to the cache on its "
                    "next token request; if it ends first, the chain is lost and needs a new seed",
                    self.endpoint.vendor, self.endpoint.conn_id, chain.generation, self._shared.name,
                    time.monotonic() - started,
                )
                return
            time.sleep(_CHAIN_STORE_PAUSE_SECONDS)
        if said:
            self._log.warning("%s connection %r: the next refresh token is now in the %s cache too",
                              self.endpoint.vendor, self.endpoint.conn_id, self._shared.name)

    # ---- offering copies back --------------------------------------------------------------------------

    def offer_back(self) -> None:
        """Give this process's copy to the shared cache (kept only over a lower rank), before queueing for
        the lock: a refresher may be waiting for the copies of a chain the cache lost."""
        self._publish(self._memory.load_refresh_token(self.key))

    def offering_back(self) -> OfferingBack:
        """While the calling thread waits for the fetch lock: this process's copy goes back at once and every
        :data:`CHAIN_REPUBLISH_SECONDS` until :meth:`OfferingBack.stop` (this thread holds the process's
        single flight, so nothing of this process spends meanwhile)."""
        return OfferingBack(self.offer_back)

    def _publish(self, chain: RefreshChain | None) -> None:
        if chain is not None and self._shared is not None:
            self._shared.store_refresh_token(self.key, chain, republish=True)

    def keep_published(self) -> None:
        """Every :data:`CHAIN_REPUBLISH_SECONDS` at most, off the caller's path, keep this process's copy and
        the shared cache's in step: the process that rotated last holds the newest copy and would otherwise
        not touch the cache until its next refresh, however long the others wait for it; and the others
        hold it too within a moment, not only at their own next refresh (a task that rotated and ended would
        otherwise leave the newest copy in Redis alone)."""
        if self._shared is None or time.monotonic() < self._republish_due:
            return
        self._republish_due = time.monotonic() + CHAIN_REPUBLISH_SECONDS
        threading.Thread(target=self._republish_now, name="vendorauth-chain", daemon=True).start()

    def give_back_before_closing(self) -> None:
        """Now, on the caller's thread: the process's copy goes to the shared cache if the cache holds none as
        new (kept only over a lower rank, so never over a newer generation). Skipped while this process
        refreshes (that refresh stores its own successor); a cache that does not answer is said, not waited
        for: a stopping task has seconds before its SIGKILL."""
        if self._shared is None:
            return
        shared = self._shared

        def give_back() -> None:
            try:
                self._republish_now()
            except Exception as error:  # noqa: BLE001 - closing must not fail on the way out; said, not raised
                self._log.warning("%s connection %r: could not give the refresh token chain back to the %s cache "
                                  "while closing (%s)", self.endpoint.vendor, self.endpoint.conn_id, shared.name,
                                  type(error).__name__)

        # In a thread of its own, waited for CLOSE_GIVE_BACK_SECONDS at most: a cache that does not answer
        # never holds a stopping task past its SIGKILL (an atomic write, finished or not, harms nothing).
        giving = threading.Thread(target=give_back, name="vendorauth-chain-close", daemon=True)
        giving.start()
        giving.join(CLOSE_GIVE_BACK_SECONDS)
        if giving.is_alive():
            self._log.warning("%s connection %r: the %s cache did not answer within %.1f s while closing: the refresh "
                              "token chain was not given back", self.endpoint.vendor, self.endpoint.conn_id,
                              shared.name, CLOSE_GIVE_BACK_SECONDS)

    def _republish_now(self) -> None:
        # Both ways: take the shared copy (another process's rotation) into memory, so that a Redis that
        # restarts empty after that process ended still gets it back from here; then give back this
        # process's copy if it is the newer. Never while this process refreshes: a copy read before its
        # spend settled could bring back a pending mark the spend has just removed.
        with self._memory.lock_if_free(self.key) as free:
            if free:
                self._read_shared()
                self.offer_back()

    def newest_known(self) -> RefreshChain | None:
        """The newest copy this process holds (memory), e.g. when the chain was said in doubt or lost."""
        return self._memory.load_refresh_token(self.key)

    def moved_past(self, known: RefreshChain | None) -> bool:
        """Whether a copy of higher rank than ``known`` is now here or in the shared cache: a successor given
        back late (after this process said the chain was in doubt) is followed, not doubted until the
        memory of that refusal lapses."""
        now = newest(self._read_shared() if self._shared is not None else None, self.newest_known())
        return now is not None and (known is None or outranks(now, known))

    def adopt_shared(self) -> None:
        """Keep the shared cache's copy in memory too: if the cache loses it, this process gives it back."""
        if self._shared is not None:
            self._read_shared()

    # ---- Test ---------------------------------------------------------------------------------------------

    def probe(self) -> str:
        """Check the token endpoint and the client credentials without spending the chain: refresh a token
        that cannot exist. ``invalid_grant`` means both are right; any other refusal is raised."""
        try:
            self.endpoint.fetch(PROBE_REFRESH_TOKEN)
        except TokenRequestError as error:
            if error.error != "invalid_grant":
                raise
            return "the token endpoint answered and accepted the client credentials"
        return "the token endpoint answered (it took a refresh token that cannot exist)"

    # ---- what a broken chain says ---------------------------------------------------------------------------

    def _where(self) -> str:
        return (
            f"the {self._shared.name} cache and this process's memory"
            if self._shared is not None
            else "this process's memory (Token cache is memory: other processes cannot share the chain)"
        )

    def _lost(self, error: TokenRequestError, spent: RefreshChain) -> TokenRequestError:
        why = lost_why(error, spent, self._where())
        return self.chain_error(why, status=error.status, error=error.error, error_description=error.error_description)

    def _in_doubt(self, chain: RefreshChain, error: TokenRequestError | None = None) -> TokenRequestError:
        return self.chain_error(in_doubt_why(chain, error), status=error.status if error else None)

    def chain_error(
        self,
        why: str,
        *,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        retryable: bool = False,
    ) -> TokenRequestError:
        """The refresh chain's refusals, worded alike: the connection first, ``why`` (with its fix) after;
        the task log's summary is ``why`` alone. What the vendor said may quote a refresh token (some servers
        echo the one they refuse): the message, the summary and ``error_description`` are redacted with every
        token of this chain this process knows (the seed, its memory's copy, the one just presented)."""
        held = self._memory.load_refresh_token(self.key)
        known = (self._seed.refresh_token, held.refresh_token if held else None, *self._presented)
        return TokenRequestError(
            f"{self.endpoint.vendor} connection {self.endpoint.conn_id!r}: {why}",
            summary=why[0].upper() + why[1:],
            vendor=self.endpoint.vendor,
            conn_id=self.endpoint.conn_id,
            status=status,
            error=error,
            error_description=redact(error_description, known) if error_description else None,
            retryable=retryable,
            secrets=tuple(t for t in known if t),
        )


class OfferingBack:
    """A thread that calls ``offer`` now and every :data:`CHAIN_REPUBLISH_SECONDS` until :meth:`stop`."""

    def __init__(self, offer: Callable[[], None]) -> None:
        self._offer, self._stopped = offer, threading.Event()
        offer()
        self._thread = threading.Thread(target=self._run, name="vendorauth-chain-offer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(CHAIN_REPUBLISH_SECONDS):
            self._offer()

    def stop(self) -> None:
        """Idempotent; returns once no offer is being made."""
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

