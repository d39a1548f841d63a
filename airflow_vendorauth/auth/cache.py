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
from dataclasses import dataclass, field
from typing import Protocol

from airflow_vendorauth.auth.token import AccessToken


@dataclass(frozen=True, repr=False)
class RefreshChain:
    """The newest refresh token of a rotating chain and its generation (how many rotations made it).

    Generations order the copies a chain leaves behind (this process's memory, the shared cache, a copy
    republished after Redis lost its data): the highest one is the only token the server still takes.
    The connection's seed is generation 0.
    """

    refresh_token: str
    generation: int
    #: Read from a shared cache that had lost the chain and holds copies processes gave back since (no
    #: rotation stored it yet): a higher generation may still be on its way from another process.
    republished: bool = field(default=False, compare=False)

    def __repr__(self) -> str:
        return f"RefreshChain(generation={self.generation}, refresh_token='***')"


def newest(*chains: RefreshChain | None) -> RefreshChain | None:
    """The chain of the highest generation among those known (None when none is)."""
    known = [c for c in chains if c is not None]
    return max(known, key=lambda c: c.generation) if known else None


class CacheLockUnavailable(Exception):
    """A shared cache could not give its fetch lock to a caller that must not fetch without it (a
    rotating refresh token): the message says why (unreachable, or held past the wait)."""


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

    def fetch_lock(self, key: str, wait_seconds: float, *, required: bool = False) -> AbstractContextManager[None]:
        """Held while one process fetches; others wait up to ``wait_seconds`` (the longest a fetch
        may take), and a holder that dies frees it. Past the wait (or with the cache unreachable) the
        caller fetches without it, unless ``required``: then :class:`CacheLockUnavailable` is raised."""

    def load_refresh_token(self, key: str) -> RefreshChain | None:
        """The newest refresh token of a credential (rotating servers: the only one still valid)."""

    def store_refresh_token(self, key: str, chain: RefreshChain, *, republish: bool = False) -> bool:
        """Keep ``chain`` unless the cache already holds a higher generation (atomically); False when
        the write failed (the caller keeps it elsewhere and retries). ``republish``: a copy given back
        rather than a rotation's result; an entry created this way reads as ``republished`` until a
        rotation stores the next generation."""


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
        """Keep the higher generation of ``chain`` and the one held (a copy read from a shared cache
        never replaces a newer one this process made)."""
        with self._guard:
            self._refresh_tokens[key] = newest(self._refresh_tokens.get(key), chain) or chain
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
