"""Redis token cache: every worker of a cluster shares tokens.

Entries are Fernet-encrypted and expire with the token (``SET ... PX``). A miss is single flight
across workers through a Redis lock: its lease is short (:data:`LOCK_LEASE_SECONDS`) and renewed by the
holder while its fetch runs, so a slow fetch keeps it however long it takes, and a holder that died
(no more renewals) frees it within one lease. Waiters wait as long as a fetch may take.
Redis being slow or unreachable logs a warning once and degrades to "no cache": it never fails a task.
The ``redis`` package is an optional extra: ``pip install airflow-vendorauth[redis]``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from airflow_vendorauth.auth.cipher import CacheEntryUnreadable, TokenCipher
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.auth.warn_once import warn_once

PREFIX = "vendorauth:token:"
REFRESH_PREFIX = "vendorauth:refresh:"
#: A refresh token unused this long is dropped (servers expire idle ones sooner; re-seed after that).
REFRESH_TTL_MS = 90 * 24 * 3600 * 1000
#: How long a fetch lock lives without renewal: the most a dead holder can delay the others.
LOCK_LEASE_SECONDS = 10.0
#: Compare-and-delete, atomically: evict the entry only if it is still the one we read.
_DELETE_IF_EQUAL = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class RedisTokenCache:
    name = "redis"

    def __init__(
        self,
        url: str,
        cipher: TokenCipher,
        *,
        lease_seconds: float = LOCK_LEASE_SECONDS,
        socket_timeout: float = 2.0,
        logger: logging.Logger | None = None,
    ) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "the extra cache: redis:// needs the Redis client: install the redis extra "
                "(pip install 'airflow-vendorauth[redis]', or from a clone pip install '.[redis]') or pip install redis"
            ) from exc
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.client: Any = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self.url_shown = url.split("@")[-1]  # never log a password in the URL
        self.cipher = cipher
        self.lease_seconds = lease_seconds
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
        token = self.cipher.open_token_or_none(blob, self.name, f"redis {PREFIX}{key}", self.log)
        if token is None:
            with contextlib.suppress(*self._redis_errors):
                self.client.eval(_DELETE_IF_EQUAL, 1, PREFIX + key, blob)
        return token

    def store(self, key: str, token: AccessToken) -> None:
        ttl_ms = int(token.seconds_left() * 1000)
        if ttl_ms <= 0:
            return
        try:
            self.client.set(PREFIX + key, self.cipher.seal_token(token), px=ttl_ms)
        except self._redis_errors as exc:
            self._down(exc)

    def load_refresh_token(self, key: str) -> str | None:
        try:
            blob = self.client.get(REFRESH_PREFIX + key)
            return self.cipher.decrypt(blob) if blob is not None else None
        except self._redis_errors as exc:
            self._down(exc)
        except CacheEntryUnreadable:
            warn_once(self.log, f"redis-refresh:{key}", "Redis refresh token entry of %s unreadable", key)
        return None

    def store_refresh_token(self, key: str, refresh_token: str) -> None:
        try:
            self.client.set(REFRESH_PREFIX + key, self.cipher.encrypt(refresh_token), px=REFRESH_TTL_MS)
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
    def fetch_lock(self, key: str, wait_seconds: float) -> Iterator[None]:
        lock = self.client.lock(
            f"{PREFIX}{key}:lock", timeout=self.lease_seconds, blocking_timeout=wait_seconds, thread_local=False
        )
        try:
            acquired = lock.acquire()
        except self._redis_errors as exc:
            self._down(exc)
            acquired = False
        if not acquired:
            if self.log is not None:
                self.log.warning("Redis token cache lock not obtained in %.0f s: fetching a token directly", wait_seconds)
            yield
            return
        renewal = _LeaseRenewal(lock, self.lease_seconds / 3, self._redis_errors, self.log)
        renewal.start()
        try:
            yield
        finally:
            renewal.stop()
            with contextlib.suppress(*self._redis_errors):
                lock.release()


class _LeaseRenewal(threading.Thread):
    """Renews a held lock's lease every ``interval`` seconds until stopped: the lease outlives the fetch."""

    def __init__(
        self, lock: Any, interval: float, errors: tuple[type[BaseException], ...], log: logging.Logger | None
    ) -> None:
        super().__init__(name="vendorauth-lock-lease", daemon=True)
        self._lock, self._interval, self._errors, self._log = lock, interval, errors, log
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._lock.reacquire()
            except self._errors as exc:  # LockError (the lease was lost) is a RedisError
                if self._log is not None:
                    self._log.warning("Redis token cache lock lease not renewed (%s)", type(exc).__name__)
                return

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=self._interval + 1)
