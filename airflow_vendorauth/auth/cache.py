"""Token caches. This module holds the contract and the in-process cache every hook starts with.

The memory cache is per process and shared by every hook instance in it; a cache key is a
fingerprint of the credential (see :func:`cache_key`), never a secret in clear. Single flight lives
here too: one lock per key, so 16 threads that miss at once cause one token request.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import Protocol

from airflow_vendorauth.auth.chain_copy import RefreshChain, newest, outranks
from airflow_vendorauth.auth.token import AccessToken

__all__ = [
    "MEMORY_CACHE",
    "CacheLockLost",
    "CacheLockUnavailable",
    "HeldLock",
    "MemoryTokenCache",
    "RefreshChain",
    "SharedTokenCache",
    "cache_key",
    "newest",
]


class CacheLockUnavailable(Exception):
    """A shared cache could not give its fetch lock to a caller that must not fetch without it (a
    rotating refresh token): the message says why (unreachable, or held past the wait)."""


class CacheLockLost(CacheLockUnavailable):
    """The fetch lock this process took is no longer its own (its lease lapsed, or Redis restarted and
    another process took it): nothing may be spent under it."""


class HeldLock(Protocol):
    """A fetch lock this process holds, as the refresh chain sees it (``auth/refresh_chain.py``)."""

    def confirm(self, seconds: float) -> None:
        """Prove, just before a refresh token is presented, that the lock is still this process's, and keep
        it at least ``seconds`` more (the longest one attempt may take); else raise :class:`CacheLockLost`."""

    def spend_over(self) -> None:
        """The attempts that :meth:`confirm` preceded are over (answered, failed or abandoned) and their outcome
        is stored in the cache (the successor, or the spend's mark): called only then."""

    def fence(self, seconds: float) -> None:
        """Wait while another process may still be presenting a token of this chain (a holder from before a
        restart of the cache, whose lock the restart erased), as long as its spend lasts. ``seconds``: the
        longest one attempt may take (a cache younger than that may have lost a mark about to be put back)."""


class NoLock:
    """The lock of a cache that is one process's own (memory): nothing else can hold it."""

    def confirm(self, seconds: float) -> None:
        return None

    def spend_over(self) -> None:
        return None

    def fence(self, seconds: float) -> None:
        return None


NO_LOCK = NoLock()


def cache_key(*parts: str | None) -> str:
    """A stable fingerprint of a credential's identity.

    The parts are the token URL, client id, grant, scope or resource and user, plus the secret, so
    two connections that differ only by secret never share a token. Everything is hashed together:
    a key in a file name or in Redis reveals nothing.
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update((part or "").encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class SharedTokenCache(Protocol):
    """A cache that outlives the process (file, Redis). Every method must swallow its own failures:
    a broken cache costs a token request, never a task."""

    name: str

    def load(self, key: str) -> AccessToken | None: ...

    def store(self, key: str, token: AccessToken) -> bool:
        """Share ``token``; False when it was not stored (the cache is unavailable): never said "stored"."""

    def evict(self, key: str, access_token: str) -> None:
        """Delete the entry only if it still holds ``access_token``, atomically with respect to
        :meth:`store`: a 401 on an old token must never delete the newer one."""

    def fetch_lock(
        self, key: str, wait_seconds: float, *, required: bool = False
    ) -> AbstractContextManager[HeldLock | None]:
        """Held while one process fetches; others wait up to ``wait_seconds`` (the longest a fetch
        may take), and a holder that dies frees it. Past the wait (or with the cache unreachable) the
        caller fetches without it (None is yielded), unless ``required``: then :class:`CacheLockUnavailable`
        is raised. The lock yielded proves its ownership before each spend (:class:`HeldLock`)."""

    def unreachable(self) -> str | None:
        """Why this cache cannot keep tokens from this process right now (for Test), or None when it can."""

    def load_refresh_token(self, key: str) -> RefreshChain | None:
        """The newest refresh token of a credential (rotating servers: the only one still valid)."""

    def store_refresh_token(self, key: str, chain: RefreshChain, *, republish: bool = False) -> bool:
        """Keep ``chain`` unless the cache already holds a copy of higher :func:`rank` (atomically); False
        when the write failed (the caller keeps it elsewhere and retries). ``republish``: a copy given back
        rather than a rotation's result; an entry created this way reads as ``republished`` until a
        rotation stores the next generation. A copy with a ``pending`` mark records a spend before it."""

    def settle_refresh_token(self, key: str, chain: RefreshChain) -> bool:
        """Remove ``chain``'s pending mark, only if the cache holds that very mark (atomically): the spend
        did not reach the server. False when the write failed."""


class MemoryTokenCache:
    """Tokens of this process, by key, and single flight per key for the whole process.

    One :class:`threading.Lock` per key serialises fetches across every thread and every event loop of
    the process; coroutines of one loop first queue on an :class:`asyncio.Lock` of that loop (so they
    wait without a thread each), then fetch in a thread that takes the thread lock itself.
    """

    name = "memory"

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._refresh_tokens: dict[str, RefreshChain] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )
        self._guard = threading.Lock()

    def get(self, key: str) -> AccessToken | None:
        return self._tokens.get(key)

    def put(self, key: str, token: AccessToken) -> None:
        with self._guard:  # the same guard as evict's compare-and-delete
            self._tokens[key] = token

    def evict(self, key: str, access_token: str) -> bool:
        """Drop the cached token only if it is the one that failed: a newer token stays."""
        with self._guard:
            current = self._tokens.get(key)
            if current is not None and current.access_token == access_token:
                del self._tokens[key]
                return True
            return False

    def load_refresh_token(self, key: str) -> RefreshChain | None:
        return self._refresh_tokens.get(key)

    def store_refresh_token(self, key: str, chain: RefreshChain, *, republish: bool = False) -> bool:
        """Keep the copy that :func:`outranks` the other of ``chain`` and the one held (a copy read from a
        shared cache never replaces a newer one this process made, nor a settled spend's mark its settle)."""
        with self._guard:
            held = self._refresh_tokens.get(key)
            if held is None or outranks(chain, held):
                self._refresh_tokens[key] = chain if held is None else chain.knowing(held)
        return True

    def settle_refresh_token(self, key: str, chain: RefreshChain) -> bool:
        with self._guard:
            held = self._refresh_tokens.get(key)
            if held is not None and held.generation == chain.generation and held.pending == chain.pending:
                self._refresh_tokens[key] = held.settle()
        return True

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()
            self._refresh_tokens.clear()
            self._locks.clear()
            self._loop_locks.clear()

    def _thread_lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Single flight for ``key`` (sync callers)."""
        with self._thread_lock(key):
            yield

    @contextmanager
    def lock_if_free(self, key: str) -> Iterator[bool]:
        """:meth:`lock` when nobody in this process holds it (True), else nothing (False), without waiting."""
        lock = self._thread_lock(key)
        taken = lock.acquire(blocking=False)
        try:
            yield taken
        finally:
            if taken:
                lock.release()

    @asynccontextmanager
    async def aqueue(self, key: str) -> AsyncIterator[None]:
        """Coroutines of one event loop that miss ``key`` queue here, one at a time, so they wait
        without a thread each. Single flight itself is :meth:`lock`, taken by the fetch's own thread:
        a cancelled waiter leaves this queue, but the fetch it started keeps the thread lock until it
        has stored its token."""
        loop = asyncio.get_running_loop()
        with self._guard:
            loop_lock = self._loop_locks.setdefault(loop, {}).setdefault(key, asyncio.Lock())
        async with loop_lock:
            yield


#: The process-wide memory cache every hook shares.
MEMORY_CACHE = MemoryTokenCache()
