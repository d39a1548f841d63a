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

from airflow_vendorauth.auth.token import AccessToken


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

    def store(self, key: str, token: AccessToken) -> None: ...

    def evict(self, key: str, access_token: str) -> None:
        """Delete the entry only if it still holds ``access_token``, atomically with respect to
        :meth:`store`: a 401 on an old token must never delete the newer one."""

    def fetch_lock(self, key: str, wait_seconds: float) -> AbstractContextManager[None]:
        """Held while one process fetches; others wait up to ``wait_seconds`` (the longest a fetch
        may take), and a holder that dies frees it."""

    def load_refresh_token(self, key: str) -> str | None:
        """The newest refresh token of a credential (rotating servers: the only one still valid)."""

    def store_refresh_token(self, key: str, refresh_token: str) -> None: ...


#: Between two polls of a thread lock that another event loop or thread holds.
_POLL_SECONDS = (0.005, 0.01, 0.02, 0.05)


class MemoryTokenCache:
    """Tokens of this process, by key, and single flight per key for the whole process.

    One :class:`threading.Lock` per key serialises fetches across every thread and every event loop of
    the process; coroutines of one loop first queue on an :class:`asyncio.Lock` of that loop (so they
    wait without a thread each), then take the thread lock without blocking the loop.
    """

    name = "memory"

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._refresh_tokens: dict[str, str] = {}
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

    def load_refresh_token(self, key: str) -> str | None:
        return self._refresh_tokens.get(key)

    def store_refresh_token(self, key: str, refresh_token: str) -> None:
        with self._guard:
            self._refresh_tokens[key] = refresh_token

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

    @asynccontextmanager
    async def alock(self, key: str) -> AsyncIterator[None]:
        """Single flight for ``key`` (coroutines): the same thread lock as :meth:`lock`, never blocking
        the event loop (polled, so a cancelled waiter can never leave it taken)."""
        loop = asyncio.get_running_loop()
        with self._guard:
            loop_lock = self._loop_locks.setdefault(loop, {}).setdefault(key, asyncio.Lock())
        thread_lock = self._thread_lock(key)
        async with loop_lock:
            attempt = 0
            while not thread_lock.acquire(blocking=False):
                await asyncio.sleep(_POLL_SECONDS[min(attempt, len(_POLL_SECONDS) - 1)])
                attempt += 1
            try:
                yield
            finally:
                thread_lock.release()


#: The process-wide memory cache every hook shares.
MEMORY_CACHE = MemoryTokenCache()
