"""Redis token cache: every worker of a cluster shares tokens.

Entries are Fernet-encrypted and expire with the token (``SET ... PX``). A miss is single flight
across workers through a Redis lock with a timeout, so a lock whose holder died expires by itself.
Redis being slow or unreachable logs a warning once and degrades to "no cache": it never fails a task.
The ``redis`` package is an optional extra: ``pip install airflow-vendorauth[redis]``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from airflow_vendorauth.auth.cipher import CacheEntryUnreadable, TokenCipher
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.auth.warn_once import warn_once

PREFIX = "vendorauth:token:"
#: Compare-and-delete, atomically: evict the entry only if it is still the one we read.
_DELETE_IF_EQUAL = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class RedisTokenCache:
    name = "redis"

    def __init__(
        self,
        url: str,
        cipher: TokenCipher,
        *,
        lock_timeout: float = 30.0,
        socket_timeout: float = 2.0,
        logger: logging.Logger | None = None,
    ) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "token_cache=redis:// needs the redis extra: pip install 'airflow-vendorauth[redis]'"
            ) from exc
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.client: Any = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self.url_shown = url.split("@")[-1]  # never log a password in the URL
        self.cipher = cipher
        self.lock_timeout = lock_timeout
        self.log = logger

    def _down(self, exc: BaseException) -> None:
        warn_once(
            self.log,
            f"redis:{self.url_shown}",
            "Redis token cache at %s is unavailable (%s): fetching tokens directly",
            self.url_shown,
            type(exc).__name__,
        )

    def load(self, key: str) -> AccessToken | None:
        try:
            blob = self.client.get(PREFIX + key)
        except self._redis_errors as exc:
            self._down(exc)
            return None
        if blob is None:
            return None
        try:
            return self.cipher.open_token(blob, self.name)
        except CacheEntryUnreadable as exc:
            warn_once(
                self.log,
                f"redis-corrupt:{key}",
                "Redis token cache entry unreadable (%s): replacing it",
                type(exc).__name__,
            )
            with contextlib.suppress(*self._redis_errors):
                self.client.eval(_DELETE_IF_EQUAL, 1, PREFIX + key, blob)
            return None

    def store(self, key: str, token: AccessToken) -> None:
        ttl_ms = int(token.seconds_left() * 1000)
        if ttl_ms <= 0:
            return
        try:
            self.client.set(PREFIX + key, self.cipher.seal_token(token), px=ttl_ms)
        except self._redis_errors as exc:
            self._down(exc)

    def evict(self, key: str, access_token: str) -> None:
        try:
            blob = self.client.get(PREFIX + key)
            if blob is None:
                return
            try:
                current = self.cipher.open_token(blob, self.name)
            except CacheEntryUnreadable:
                current = None
            if current is None or current.access_token == access_token:
                self.client.eval(_DELETE_IF_EQUAL, 1, PREFIX + key, blob)
        except self._redis_errors as exc:
            self._down(exc)

    @contextlib.contextmanager
    def fetch_lock(self, key: str) -> Iterator[None]:
        lock = self.client.lock(f"{PREFIX}{key}:lock", timeout=self.lock_timeout, blocking_timeout=self.lock_timeout)
        try:
            acquired = lock.acquire()
        except self._redis_errors as exc:
            self._down(exc)
            acquired = False
        if not acquired:
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(*self._redis_errors):
                lock.release()
