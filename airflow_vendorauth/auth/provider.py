"""TokenProvider: a valid token for one credential, from the cheapest place that has one.

Order of look-up: this process's memory, then the shared cache (file or Redis) if the connection has
one, then the token endpoint (:class:`TokenEndpoint`, with its retries). Each miss is single flight per
credential for the whole process (every hook, thread and event loop), checked again once the lock is
taken, and across processes through the shared cache's fetch lock.

A refused credential (400/401/403 from the token endpoint) is remembered for
:data:`FAILURE_MEMORY_SECONDS`, so 50 mapped tasks with a wrong secret ask the identity provider once
and then replay its answer. ``force_refresh`` (the Test button) skips every cache and that memory.

Rotating refresh tokens (``grant_type=refresh_token``): each refresh spends the newest refresh token and
the server answers with the next one. The connection's refresh token only seeds the chain (generation
0; it is part of the credential's fingerprint, so a new seed starts a new chain); each rotation makes
the next generation. The guarantees:

- never spent twice by a group sharing a cache: a rotating refresh token is spent only under the shared
  cache's fetch lock (never without it: past the fetch budget the call fails naming the cache);
- never kept in one place only: the next token goes to this process's memory first, then to the shared
  cache, retried before the lock is released; a failed write is logged loudly, and the copy in memory
  is republished on this process's next token request;
- the newest copy wins: copies are ordered by generation and written only over a lower one, and each
  refresh spends the highest generation it can find (memory or shared cache). When the shared cache has
  lost the chain (a Redis restarted empty), every process gives its copy back (before it waits for the
  lock, and every :data:`CHAIN_REPUBLISH_SECONDS` while it makes calls), and the lock holder waits
  :data:`CHAIN_HEAL_SECONDS` for them before it spends the highest;
- a chain that is truly lost (the server refuses the newest copy) says so and how to re-seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from airflow_vendorauth.auth.cache import (
    MEMORY_CACHE,
    CacheLockUnavailable,
    MemoryTokenCache,
    RefreshChain,
    SharedTokenCache,
    newest,
)
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.auth.token_endpoint import TokenEndpoint
from airflow_vendorauth.exceptions import ScanStopped, TokenRequestError
from airflow_vendorauth.stopping import hold_stops, stop_asked

FAILURE_MEMORY_SECONDS = 30.0
#: How long a refresher waits for the other processes to republish their copies of a chain the shared
#: cache has lost (each one does before it queues for the lock, and every CHAIN_REPUBLISH_SECONDS
#: while it makes calls), before it spends the highest generation.
CHAIN_HEAL_SECONDS = 1.5
#: The same, once the task was told to stop (within stopping.HOLD_GRACE_SECONDS).
CHAIN_STORE_RETRY_SECONDS_WHEN_STOPPING = 1.0
#: How often a process that holds a chain (and makes calls) offers its copy back to the shared cache, in
#: a thread of its own: the process that rotated last holds a fresh token and would otherwise not touch
#: the cache until its next refresh, however long the others wait for the newest copy.
CHAIN_REPUBLISH_SECONDS = 0.5
#: How long the next refresh token's write to the shared cache is retried (under the lock) before
#: this process keeps it in memory only, and says so loudly.
CHAIN_STORE_RETRY_SECONDS = 5.0
_CHAIN_STORE_PAUSE_SECONDS = 0.2
#: What Test sends to a rotating refresh token's endpoint to check it without spending the chain.
PROBE_REFRESH_TOKEN = "vendorauth-test-probe-not-a-refresh-token"

_failures: dict[str, tuple[float, TokenRequestError]] = {}
_failures_guard = threading.Lock()
#: key -> when this process next offers its copy of the chain back to the shared cache.
_republish_due: dict[str, float] = {}


class TokenProvider:
    """Obtains, caches and refreshes the token of one credential (``key``: its fingerprint)."""

    def __init__(
        self,
        endpoint: TokenEndpoint,
        *,
        key: str,
        shared: SharedTokenCache | None = None,
        refresh_seed: str | None = None,
        on_new_token: Callable[[AccessToken], None] | None = None,
        logger: logging.Logger | None = None,
        memory: MemoryTokenCache = MEMORY_CACHE,
    ) -> None:
        self.endpoint = endpoint
        self.key = key
        self._shared = shared
        self._refresh_seed = refresh_seed
        self._on_new_token = on_new_token
        self._log = logger or logging.getLogger(__name__)
        self._memory = memory

    def __repr__(self) -> str:
        return f"TokenProvider({self.endpoint!r})"

    @property
    def requests_sent(self) -> int:
        """Token requests this provider sent (attempts included), for logs and benchmarks."""
        return self.endpoint.requests_sent

    @property
    def last_token(self) -> AccessToken | None:
        """This credential's current token in this process (error messages name its roles, redact it)."""
        return self._memory.get(self.key)

    # ---- the decisions, shared by sync and async -------------------------------------------------

    @staticmethod
    def _usable(token: AccessToken | None) -> AccessToken | None:
        return token if token is not None and token.is_fresh() else None

    def _replay_remembered_failure(self) -> None:
        with _failures_guard:
            remembered = _failures.get(self.key)
            if remembered is None:
                return
            until, error = remembered
            if time.monotonic() >= until:
                del _failures[self.key]
                return
        raise error

    def _remember(self, error: TokenRequestError) -> None:
        if not error.retryable:
            with _failures_guard:
                _failures[self.key] = (time.monotonic() + FAILURE_MEMORY_SECONDS, error)

    @property
    def shared(self) -> SharedTokenCache | None:
        """The shared cache (file, Redis) this credential's tokens go through, if any."""
        return self._shared

    @property
    def rotating(self) -> bool:
        """Whether this credential refreshes with a (rotating) refresh token: one spend too many can end it."""
        return self._refresh_seed is not None

    def _fetch(self) -> AccessToken:
        try:
            return self.endpoint.fetch() if self._refresh_seed is None else self._refresh()
        except TokenRequestError as error:
            self._remember(error)
            raise

    def _refresh(self) -> AccessToken:
        """Spend the newest refresh token and keep the one that replaces it (called under the fetch lock)."""
        assert self._refresh_seed is not None
        mine = self._memory.load_refresh_token(self.key)
        found = self._shared.load_refresh_token(self.key) if self._shared is not None else None
        if self._shared is not None and (found is None or found.republished):
            # No chain stored by a rotation in the shared cache: a first refresh, or the cache lost it (Redis
            # restarted empty) and holds at most copies given back since. The newest copy may still be in
            # another process's memory: each process republishes its own before it queues for this lock.
            # Give them a moment, then spend the highest generation published.
            self._publish(mine or RefreshChain(self._refresh_seed, 0))
            time.sleep(CHAIN_HEAL_SECONDS)
            found = self._shared.load_refresh_token(self.key)
        current = newest(found, mine) or RefreshChain(self._refresh_seed, 0)
        if self._shared is not None and mine is not None and (found is None or mine.generation > found.generation):
            self._store_chain(mine)  # an earlier write failed: it goes back before anyone else refreshes
        with hold_stops():
            if stop_asked():  # a rotation begun now could be cut by the SIGKILL: the chain would be lost
                raise ScanStopped("the task was told to stop (SIGTERM): its refresh token is not spent now")
            return self._spend(current)

    def _spend(self, current: RefreshChain) -> AccessToken:
        """Spend ``current`` and keep the refresh token that replaces it. A stop of the task (Airflow's
        SIGTERM) waits until it is done: cut between the server's rotation and the store of the new refresh
        token, the chain would be lost for good (``stopping.py``); the retries end once a stop is asked."""
        try:
            token = self.endpoint.fetch(current.refresh_token)
        except TokenRequestError as error:
            if error.error != "invalid_grant":
                raise
            again = newest(
                self._shared.load_refresh_token(self.key) if self._shared is not None else None,
                self._memory.load_refresh_token(self.key),
            )
            if again is None or again.generation <= current.generation:
                raise self._lost(error, current) from None
            try:
                token, current = self.endpoint.fetch(again.refresh_token), again
            except TokenRequestError as retried:
                raise self._lost(retried, again) if retried.error == "invalid_grant" else retried from None
        if token.refresh_token and token.refresh_token != current.refresh_token:
            following = RefreshChain(token.refresh_token, current.generation + 1)
            self._memory.store_refresh_token(self.key, following)  # first here: never in one place only
            if self._shared is not None:
                self._store_chain(following)
        return token

    def _publish(self, chain: RefreshChain | None) -> None:
        """Offer this process's copy of the chain to the shared cache (kept only over a lower generation)."""
        if chain is not None and self._shared is not None:
            self._shared.store_refresh_token(self.key, chain, republish=True)

    def _keep_chain_published(self) -> None:
        """Every :data:`CHAIN_REPUBLISH_SECONDS` at most, offer this process's copy of the chain back to the
        shared cache, off the caller's path (a no-op where the cache holds it or a newer one): a cache
        that lost the chain gets the newest copy back from whoever holds it, before anyone spends."""
        if not self.rotating or self._shared is None:
            return
        now = time.monotonic()
        with _failures_guard:
            if now < _republish_due.get(self.key, 0.0):
                return
            _republish_due[self.key] = now + CHAIN_REPUBLISH_SECONDS
        if (chain := self._memory.load_refresh_token(self.key)) is not None:
            threading.Thread(target=self._publish, args=(chain,), name="vendorauth-chain", daemon=True).start()

    def _adopt_shared_chain(self) -> None:
        """Keep the shared cache's copy of the chain in memory too: if the cache loses it, this process
        can give it back."""
        if self.rotating and self._shared is not None:
            if (chain := self._shared.load_refresh_token(self.key)) is not None:
                self._memory.store_refresh_token(self.key, chain)

    def _store_chain(self, chain: RefreshChain) -> None:
        """Write the next refresh token to the shared cache, retrying through a blip (under the lock)."""
        assert self._shared is not None
        started = time.monotonic()
        deadline = started + CHAIN_STORE_RETRY_SECONDS
        said = False
        while not self._shared.store_refresh_token(self.key, chain):
            if not said:
                self._log.warning(
                    "%s connection %r: the next refresh token could not be written to the %s cache; it is kept "
                    "in this process's memory and the write is retried for %.0f s",
                    self.endpoint.vendor, self.endpoint.conn_id, self._shared.name, CHAIN_STORE_RETRY_SECONDS,
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

    def _lost(self, error: TokenRequestError, spent: RefreshChain) -> TokenRequestError:
        said = ": ".join(p for p in (error.error, error.error_description) if p)
        where = "the connection's seed" if spent.generation == 0 else f"rotation {spent.generation} of the chain"
        sharing = (
            f"the {self._shared.name} cache and this process's memory"
            if self._shared is not None
            else "this process's memory (Token cache is memory: other processes cannot share the chain)"
        )
        why = (
            f"the refresh token chain is lost: the server refused the newest refresh token found in {sharing} "
            f"({where}; {said}): it was spent by another process or revoked (a process died between the server's "
            "answer and storing the next token, another deployment uses the same seed, or the grant was revoked). "
            "Fix: get a new refresh token from the authorization server and put it in Refresh token "
            "(refresh_token): a new seed starts a new chain; with more than one task process, set Token cache "
            "to file or Redis so they share it"
        )
        return self._chain_error(
            why, status=error.status, error=error.error, error_description=error.error_description
        )

    def _lock_unavailable(self, problem: CacheLockUnavailable) -> TokenRequestError:
        why = (
            f"no token refresh without the shared cache's lock: {problem}. A rotating refresh token is never "
            "spent without it (another worker may be spending it at the same moment). Fix: make the cache "
            "reachable from this process (Redis: host, port, password), or set Token cache to memory if only "
            "one process uses this connection"
        )
        return self._chain_error(why, retryable=True)

    def _chain_error(
        self,
        why: str,
        *,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        retryable: bool = False,
    ) -> TokenRequestError:
        """The refresh chain's refusals, worded alike: the connection first, ``why`` (with its fix) after;
        the task log's summary is ``why`` alone."""
        return TokenRequestError(
            f"{self.endpoint.vendor} connection {self.endpoint.conn_id!r}: {why}",
            summary=why[0].upper() + why[1:],
            vendor=self.endpoint.vendor,
            conn_id=self.endpoint.conn_id,
            status=status,
            error=error,
            error_description=error_description,
            retryable=retryable,
        )

    def check_refresh_client(self) -> str:
        """Test for a rotating refresh token without a shared cache: ask the token endpoint to refresh a
        token that cannot exist, so the client is authenticated but no chain is spent. ``invalid_grant``
        means the endpoint and client credentials are right; any other refusal is raised."""
        try:
            self.endpoint.fetch(PROBE_REFRESH_TOKEN)
        except TokenRequestError as error:
            if error.error != "invalid_grant":
                raise
            return "the token endpoint answered and accepted the client credentials"
        return "the token endpoint answered (it took a refresh token that cannot exist)"

    def _accept(self, token: AccessToken, origin: str) -> AccessToken:
        if self._on_new_token is not None:
            self._on_new_token(token)
        self._memory.put(self.key, token)
        self._log.info(
            "%s token for connection %r from %s: valid %d s more (lifetime %d s), refresh planned at %s",
            self.endpoint.vendor,
            self.endpoint.conn_id,
            origin,
            token.seconds_left(),
            token.lifetime_seconds,
            token.refresh_at.to_iso8601_string(),
        )
        return token

    # ---- sync ------------------------------------------------------------------------------------

    def get_token(self, force_refresh: bool = False) -> AccessToken:
        """A token that will not expire before the refresh leeway; fetched only when needed.

        ``force_refresh=True`` (the Test button) proves the credential at the token endpoint every
        time, whatever a cache holds, and shares the fresh token through the shared cache.
        """
        if not force_refresh and (token := self._usable(self._memory.get(self.key))) is not None:
            self._keep_chain_published()
            return token
        with self._memory.lock(self.key):
            if force_refresh:
                return self._fetch_and_share()
            if (token := self._usable(self._memory.get(self.key))) is not None:
                return token
            self._replay_remembered_failure()
            if self._shared is None:
                return self._accept(self._fetch(), "the token endpoint (fetched)")
            return self._through_shared()

    def _through_shared(self) -> AccessToken:
        assert self._shared is not None
        if (token := self._usable(self._shared.load(self.key))) is not None:
            self._adopt_shared_chain()
            return self._accept(token, f"the {self._shared.name} cache")
        if self.rotating:  # before queueing: a refresher may be waiting for the copies of a lost chain
            self._publish(self._memory.load_refresh_token(self.key))
        with self._shared_lock():
            if (token := self._usable(self._shared.load(self.key))) is not None:
                self._adopt_shared_chain()
                return self._accept(token, f"the {self._shared.name} cache")
            return self._fetch_and_store("fetched")

    def _fetch_and_share(self) -> AccessToken:
        """Ask the token endpoint, no cache consulted (nor a remembered refusal), and share the answer."""
        if self._shared is None:
            return self._accept(self._fetch(), "the token endpoint (fetched on request)")
        with self._shared_lock():
            return self._fetch_and_store("fetched on request")

    def _fetch_and_store(self, how: str) -> AccessToken:
        assert self._shared is not None
        token = self._fetch()
        if self._shared.store(self.key, token):
            return self._accept(token, f"the token endpoint ({how}, stored in the {self._shared.name} cache)")
        return self._accept(token, f"the token endpoint ({how}; not stored: the {self._shared.name} cache is unavailable)")

    @contextlib.contextmanager
    def _shared_lock(self) -> Iterator[None]:
        """The shared cache's fetch lock: required for a rotating refresh token, best effort otherwise."""
        assert self._shared is not None
        try:
            with self._shared.fetch_lock(self.key, self.endpoint.budget_seconds, required=self.rotating):
                yield
        except CacheLockUnavailable as problem:  # raised only by fetch_lock: the body raises no such thing
            raise self._lock_unavailable(problem) from None

    def invalidate(self, token: AccessToken) -> None:
        """Forget ``token`` (it got a 401) here and in the shared cache, unless a newer one replaced it."""
        self.forget(token.access_token)

    def forget(self, access_token: str) -> None:
        """:meth:`invalidate` by the token's value (what a request carried in its Authorization header)."""
        self._memory.evict(self.key, access_token)
        if self._shared is not None:
            self._shared.evict(self.key, access_token)

    def close(self) -> None:
        self.endpoint.close()

    # ---- async -----------------------------------------------------------------------------------

    async def aget_token(self, force_refresh: bool = False) -> AccessToken:
        """The async twin of :meth:`get_token` (for triggers): same decisions, and the same single
        flight: one fetch per credential for every hook, thread and event loop of the process.

        The fetch runs in a thread of its own that takes the process's lock, fetches and stores the token
        (memory, shared cache, the next refresh token): it runs to completion whatever happens to the
        coroutine that started it. A cancelled waiter (a trigger's timeout, a triggerer shutting down)
        neither leaves a fetch half done nor lets a second one start; the next waiter gets its token.
        """
        if not force_refresh and (token := self._usable(self._memory.get(self.key))) is not None:
            self._keep_chain_published()
            return token
        async with self._memory.aqueue(self.key):  # coroutines of this loop wait here without a thread each
            if not force_refresh and (token := self._usable(self._memory.get(self.key))) is not None:
                return token
            return await asyncio.to_thread(self.get_token, force_refresh)

    async def ainvalidate(self, token: AccessToken) -> None:
        self._memory.evict(self.key, token.access_token)
        if self._shared is not None:
            await asyncio.to_thread(self._shared.evict, self.key, token.access_token)


def forget_remembered_failures() -> None:
    """Clear the memory of refused credentials (tests; a user who fixed the connection meanwhile)."""
    with _failures_guard:
        _failures.clear()
        _republish_due.clear()
