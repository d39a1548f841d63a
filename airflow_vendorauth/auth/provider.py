"""TokenProvider: a valid token for one credential, from the cheapest place that has one.

Order of look-up: this process's memory, then the shared cache (file or Redis) if the connection has
one, then the token endpoint (:class:`TokenEndpoint`, with its retries). Each miss is single flight per
credential for the whole process (every hook, thread and event loop), checked again once the lock is
taken, and across processes through the shared cache's fetch lock.

A refused credential (400/401/403 from the token endpoint) is remembered for
:data:`FAILURE_MEMORY_SECONDS`, so 50 mapped tasks with a wrong secret ask the identity provider once
and then replay its answer. ``force_refresh`` (the Test button) skips every cache and that memory.

Rotating refresh tokens (``grant_type=refresh_token``): the chain's rules (generations, spend, store,
offer-back, fence) live in :mod:`airflow_vendorauth.auth.refresh_chain`; this module only decides when a
token is needed and holds the locks under which the chain is spent.
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
    NO_LOCK,
    CacheLockUnavailable,
    HeldLock,
    MemoryTokenCache,
    RefreshChain,
    SharedTokenCache,
)
from airflow_vendorauth.auth.refresh_chain import RefreshChainKeeper
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.auth.token_endpoint import TokenEndpoint
from airflow_vendorauth.exceptions import TokenRequestError

FAILURE_MEMORY_SECONDS = 30.0

#: key -> (until, the refusal, the newest copy of a rotating chain known when it was raised).
_failures: dict[str, tuple[float, TokenRequestError, RefreshChain | None]] = {}
_failures_guard = threading.Lock()


class TokenProvider:
    """Obtains, caches and refreshes the token of one credential (``key``: its fingerprint)."""

    def __init__(
        self,
        endpoint: TokenEndpoint,
        *,
        key: str,
        shared: SharedTokenCache | None = None,
        refresh_seed: str | None = None,
        refresh_reuse_seconds: float = 0.0,
        on_new_token: Callable[[AccessToken], None] | None = None,
        logger: logging.Logger | None = None,
        memory: MemoryTokenCache = MEMORY_CACHE,
    ) -> None:
        self.endpoint = endpoint
        self.key = key
        self._shared = shared
        self._on_new_token = on_new_token
        self._log = logger or logging.getLogger(__name__)
        self._memory = memory
        #: The rotating refresh-token chain this credential spends, if its grant is refresh_token.
        self.chain = (
            RefreshChainKeeper(
                endpoint, key=key, seed=refresh_seed, shared=shared, memory=memory, logger=self._log,
                reuse_seconds=refresh_reuse_seconds,
            )
            if refresh_seed is not None
            else None
        )

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
            until, error, known = remembered
            if time.monotonic() >= until:
                del _failures[self.key]
                return
        if self.chain is not None and self.chain.moved_past(known):  # a late successor: followed, not doubted
            with _failures_guard:
                _failures.pop(self.key, None)
            return
        raise error

    def _remember(self, error: TokenRequestError) -> None:
        if not error.retryable:
            known = self.chain.newest_known() if self.chain is not None else None
            with _failures_guard:
                _failures[self.key] = (time.monotonic() + FAILURE_MEMORY_SECONDS, error, known)

    @property
    def shared(self) -> SharedTokenCache | None:
        """The shared cache (file, Redis) this credential's tokens go through, if any."""
        return self._shared

    @property
    def rotating(self) -> bool:
        """Whether this credential refreshes with a (rotating) refresh token: one spend too many can end it."""
        return self.chain is not None

    def _fetch(self, lock: HeldLock | None) -> AccessToken:
        try:
            return self.endpoint.fetch() if self.chain is None else self.chain.refresh(lock or NO_LOCK)
        except TokenRequestError as error:
            self._remember(error)
            raise

    def check_refresh_client(self) -> str:
        """Test for a rotating refresh token: check the endpoint and the client without spending the chain."""
        assert self.chain is not None
        return self.chain.probe()

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
        if self.chain is not None:  # a fresh token, a miss, a remembered refusal alike: copies kept in step
            self.chain.keep_published()
        if not force_refresh and (token := self._usable(self._memory.get(self.key))) is not None:
            return token
        with self._memory.lock(self.key):
            if force_refresh:
                return self._fetch_and_share()
            if (token := self._usable(self._memory.get(self.key))) is not None:
                return token
            self._replay_remembered_failure()
            if self._shared is None:
                return self._accept(self._fetch(None), "the token endpoint (fetched)")
            return self._through_shared()

    def _through_shared(self) -> AccessToken:
        assert self._shared is not None
        if (token := self._usable(self._shared.load(self.key))) is not None:
            return self._accept_shared(token)
        with self._shared_lock() as lock:
            if (token := self._usable(self._shared.load(self.key))) is not None:
                return self._accept_shared(token)
            return self._fetch_and_store("fetched", lock)

    def _accept_shared(self, token: AccessToken) -> AccessToken:
        assert self._shared is not None
        if self.chain is not None:
            self.chain.adopt_shared()
        return self._accept(token, f"the {self._shared.name} cache")

    def _fetch_and_share(self) -> AccessToken:
        """Ask the token endpoint, no cache consulted (nor a remembered refusal), and share the answer."""
        if self._shared is None:
            return self._accept(self._fetch(None), "the token endpoint (fetched on request)")
        with self._shared_lock() as lock:
            return self._fetch_and_store("fetched on request", lock)

    def _fetch_and_store(self, how: str, lock: HeldLock | None) -> AccessToken:
        assert self._shared is not None
        token = self._fetch(lock)
        if self._shared.store(self.key, token):
            return self._accept(token, f"the token endpoint ({how}, stored in the {self._shared.name} cache)")
        return self._accept(token, f"the token endpoint ({how}; not stored: the {self._shared.name} cache is unavailable)")

    @contextlib.contextmanager
    def _shared_lock(self) -> Iterator[HeldLock | None]:
        """The shared cache's fetch lock: required for a rotating refresh token, best effort otherwise. While
        this thread waits for it, this process keeps giving its copy of the chain back: the holder may be a
        refresher waiting for the copies of a chain Redis lost, and this one may hold the newest."""
        assert self._shared is not None
        waiting = self.chain.offering_back() if self.chain is not None else None
        try:
            with self._shared.fetch_lock(self.key, self.endpoint.budget_seconds, required=self.rotating) as held:
                if waiting is not None:
                    waiting.stop()  # the copies are this thread's to spend now
                yield held
        except CacheLockUnavailable as problem:  # raised only by fetch_lock: the chain turns a lost lock into
            raise self._lock_unavailable(problem) from None  # its own error, so the body raises no such thing
        finally:
            if waiting is not None:
                waiting.stop()

    def _lock_unavailable(self, problem: CacheLockUnavailable) -> TokenRequestError:
        assert self.chain is not None  # only a rotating chain requires the lock
        return self.chain.chain_error(
            f"no token refresh without the shared cache's lock: {problem}. A rotating refresh token is never "
            "spent without it (another worker may be spending it at the same moment). Fix: make the cache "
            "reachable from this process (Redis: host, port, password), or set Token cache to memory if only "
            "one process uses this connection",
            retryable=True,
        )

    def invalidate(self, token: AccessToken) -> None:
        """Forget ``token`` (it got a 401) here and in the shared cache, unless a newer one replaced it."""
        self.forget(token.access_token)

    def forget(self, access_token: str) -> None:
        """:meth:`invalidate` by the token's value (what a request carried in its Authorization header)."""
        self._memory.evict(self.key, access_token)
        if self._shared is not None:
            self._shared.evict(self.key, access_token)

    def close(self) -> None:
        """Give this process's copy of a rotating chain back once more, then close the token endpoint: a
        process that ends (a task done, or stopped by Airflow's SIGTERM) may be the last that knows the newest
        generation, if the shared cache restarted empty a moment before (the explorer's seed 500023: Redis
        restarted while the rotating worker was ending, and the other worker was killed)."""
        if self.chain is not None:
            self.chain.give_back_before_closing()
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
        if self.chain is not None:
            self.chain.keep_published()
        if not force_refresh and (token := self._usable(self._memory.get(self.key))) is not None:
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
