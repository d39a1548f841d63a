"""Token caches. This module holds the contract and the in-process cache every hook starts with.

The memory cache is per process and shared by every hook instance in it; a cache key is a
fingerprint of the credential (see :func:`cache_key`), never a secret in clear. Single flight lives
here too: one lock per key, so 16 threads that miss at once cause one token request.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
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

    def evict(self, key: str, access_token: str) -> None: ...

    def fetch_lock(self, key: str) -> AbstractContextManager[None]: ...


class MemoryTokenCache:
    """Tokens of this process, by key, with a lock per key for single flight."""

    name = "memory"

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str) -> AccessToken | None:
        return self._tokens.get(key)

    def put(self, key: str, token: AccessToken) -> None:
        self._tokens[key] = token

    def evict(self, key: str, access_token: str) -> bool:
        """Drop the cached token only if it is the one that failed: a newer token stays."""
        with self._guard:
            current = self._tokens.get(key)
            if current is not None and current.access_token == access_token:
                del self._tokens[key]
                return True
            return False

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield


#: The process-wide memory cache every hook shares.
MEMORY_CACHE = MemoryTokenCache()
