"""Redis token cache: every worker of a cluster shares tokens.

Entries are Fernet-encrypted and expire with the token (``SET ... PX``). A miss is single flight
across workers through a Redis lock: its lease is short (:data:`LOCK_LEASE_SECONDS`) and renewed by the
holder while its fetch runs, so a slow fetch keeps it however long it takes, and a holder that died
(no more renewals) frees it within one lease. Renewal lives through transient errors (``BUSY``,
``READONLY`` during a failover, a dropped connection) by retrying until the lease would lapse; a holder
that lost its lock says so. Waiters wait as long as a fetch may take.

Redis being unreachable is said once per process, with the reason, and degrades to "no cache" for
grants that may fetch anywhere; a rotating refresh token is never spent without the lock
(``required=True``: the caller fails clearly instead). Rotating refresh tokens are kept with their
generation (a hash ``gen``/``rt``), written only over a lower generation, atomically.
The ``redis`` package is an optional extra: ``pip install 'airflow-vendorauth[redis]'``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from airflow_vendorauth.auth.cache import CacheLockUnavailable, RefreshChain
from airflow_vendorauth.auth.cipher import CacheEntryUnreadable, TokenCipher
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.auth.warn_once import warn_once

PREFIX = "vendorauth:token:"
#: Before refresh tokens had generations: a plain encrypted string (read once, as generation 1).
LEGACY_REFRESH_PREFIX = "vendorauth:refresh:"
CHAIN_PREFIX = "vendorauth:chain:"
#: A refresh token unused this long is dropped (servers expire idle ones sooner; re-seed after that).
REFRESH_TTL_MS = 90 * 24 * 3600 * 1000
#: How long a fetch lock lives without renewal: the most a dead holder can delay the others.
LOCK_LEASE_SECONDS = 10.0
#: Between two attempts at the lock while Redis does not answer (a restart, a failover).
RECONNECT_PAUSE_SECONDS = 0.2
#: Attempts at the lock through errors (a timeout, BUSY) before a grant that may fetch anywhere does
#: so; a Redis that refuses the connection outright is given up at once (and said once).
OPTIONAL_LOCK_ATTEMPTS = 3
#: Compare-and-delete, atomically: evict the entry only if it is still the one we read.
_DELETE_IF_EQUAL = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
#: Keep a refresh token only over a lower generation (or none): an old copy never replaces a newer one.
#: ARGV[4] = 1 for a copy given back (republished): an entry it creates is marked ``republished``; a
#: rotation's result (ARGV[4] = 0) clears the mark.
_STORE_IF_NEWER = """
local held = redis.call('HGET', KEYS[1], 'gen')
if held and tonumber(held) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'rt', ARGV[2])
if ARGV[4] == '0' then redis.call('HDEL', KEYS[1], 'republished')
elseif not held then redis.call('HSET', KEYS[1], 'republished', '1') end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


def describe_redis_error(exc: BaseException, where: str) -> str:
    """Why Redis did not answer, in words (never the URL's password: redis-py's messages name only the
    host and port)."""
    import redis

    if isinstance(exc, (redis.ConnectionError, OSError)) and not isinstance(exc, redis.AuthenticationError):
        detail = str(exc).strip().rstrip(".")
        return f"cannot connect to {where}" + (f": {detail}" if detail else "")
    return f"{type(exc).__name__}: {str(exc).strip()}" if str(exc).strip() else type(exc).__name__


class RedisTokenCache:
    name = "redis"

    def __init__(
        self,
        url: str,
        cipher: TokenCipher,
        *,
        username: str | None = None,
        password: str | None = None,
        lease_seconds: float = LOCK_LEASE_SECONDS,
        socket_timeout: float = 2.0,
        logger: logging.Logger | None = None,
    ) -> None:
        try:
            import redis
            from redis.backoff import ExponentialBackoff
            from redis.retry import Retry
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "cache: a Redis URL (or redis_conn_id:...) needs the redis client: install the redis extra "
                "(pip install 'airflow-vendorauth[redis]', or from a clone pip install '.[redis]') or pip install redis"
            ) from exc
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._lost_errors: tuple[type[BaseException], ...] = (redis.exceptions.LockNotOwnedError,)
        #: Connection refused or no such host (not a timeout): nobody is there to wait for.
        self._refused: tuple[type[BaseException], ...] = (redis.ConnectionError,)
        credentials = {k: v for k, v in (("username", username), ("password", password)) if v}
        self.client: Any = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            # A short reconnect, not redis-py's default of seconds: the lock loop below retries itself.
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
            **credentials,
        )
        parts = urlsplit(url)
        self.address = f"{parts.hostname}:{parts.port or 6379}"
        self.url_shown = f"{self.address}{parts.path or ''}"  # never log a password in the URL
        self.cipher = cipher
        self.lease_seconds = lease_seconds
        self.log = logger

    def _down(self, exc: BaseException) -> None:
        warn_once(
            self.log,
            f"redis:{self.url_shown}",
            "Redis token cache at %s is unavailable (%s): tokens are fetched directly and not shared "
            "(said once per process)",
            self.url_shown,
            describe_redis_error(exc, self.address),
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

    def store(self, key: str, token: AccessToken) -> bool:
        """Share ``token``; False when it was not stored (Redis unavailable, said once)."""
        ttl_ms = int(token.seconds_left() * 1000)
        if ttl_ms <= 0:
            return False
        try:
            self.client.set(PREFIX + key, self.cipher.seal_token(token), px=ttl_ms)
        except self._redis_errors as exc:
            self._down(exc)
            return False
        return True

    def load_refresh_token(self, key: str) -> RefreshChain | None:
        try:
            held = self.client.hmget(CHAIN_PREFIX + key, "gen", "rt", "republished")
            if held[0] is not None and held[1] is not None:
                return RefreshChain(self.cipher.decrypt(held[1]), int(held[0]), republished=held[2] is not None)
            legacy = self.client.get(LEGACY_REFRESH_PREFIX + key)
            return RefreshChain(self.cipher.decrypt(legacy), 1) if legacy is not None else None
        except self._redis_errors as exc:
            self._down(exc)
        except (CacheEntryUnreadable, ValueError):
            warn_once(self.log, f"redis-refresh:{key}", "Redis refresh token entry of %s unreadable", key)
        return None

    def store_refresh_token(self, key: str, chain: RefreshChain, *, republish: bool = False) -> bool:
        try:
            sealed = self.cipher.encrypt(chain.refresh_token)
            self.client.eval(
                _STORE_IF_NEWER, 1, CHAIN_PREFIX + key, chain.generation, sealed, REFRESH_TTL_MS, int(republish)
            )
        except self._redis_errors as exc:
            self._down(exc)
            return False
        return True

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
    def fetch_lock(self, key: str, wait_seconds: float, *, required: bool = False) -> Iterator[None]:
        lock = self.client.lock(f"{PREFIX}{key}:lock", timeout=self.lease_seconds, thread_local=False)
        deadline = time.monotonic() + wait_seconds
        failure: BaseException | None = None
        acquired, attempts = False, 0
        while True:
            try:
                acquired = lock.acquire(blocking_timeout=max(0.0, deadline - time.monotonic()))
                failure = None
                break
            except self._redis_errors as exc:
                failure, attempts = exc, attempts + 1
                if not required and (isinstance(exc, self._refused) or attempts >= OPTIONAL_LOCK_ATTEMPTS):
                    self._down(exc)  # said once; other grants fetch directly
                    break
                if time.monotonic() + RECONNECT_PAUSE_SECONDS >= deadline:
                    break
                time.sleep(RECONNECT_PAUSE_SECONDS)  # a slow answer, BUSY, a restart, a failover: try again
        if not acquired:
            if required:
                why = describe_redis_error(failure, self.address) if failure else "held by another process"
                raise CacheLockUnavailable(
                    f"the fetch lock of the Redis token cache at {self.url_shown} was not obtained in "
                    f"{wait_seconds:.0f} s ({why})"
                )
            if failure is None and self.log is not None:  # a real wait, not an unreachable Redis
                self.log.warning(
                    "Redis token cache lock at %s not obtained in %.0f s (held by another process): "
                    "fetching a token directly",
                    self.url_shown,
                    wait_seconds,
                )
            yield
            return
        renewal = _LeaseRenewal(lock, self.lease_seconds, self._redis_errors, self._lost_errors, self.log)
        renewal.start()
        try:
            yield
        finally:
            renewal.stop()
            with contextlib.suppress(*self._redis_errors):
                lock.release()


class _LeaseRenewal(threading.Thread):
    """Renews a held lock's lease every third of a lease until stopped: the lease outlives the fetch.

    A transient error (``BUSY``, ``READONLY``, a dropped connection) is retried every
    :data:`RECONNECT_PAUSE_SECONDS` until the lease would lapse; only then, or when Redis says the lock
    is no longer ours, the holder says it lost the lock (another process may now fetch too).
    """

    def __init__(
        self,
        lock: Any,
        lease: float,
        errors: tuple[type[BaseException], ...],
        lost: tuple[type[BaseException], ...],
        log: logging.Logger | None,
    ) -> None:
        super().__init__(name="vendorauth-lock-lease", daemon=True)
        self._lock, self._lease, self._errors, self._lost, self._log = lock, lease, errors, lost, log
        self._stopped = threading.Event()
        #: Set when the lease was lost: read by tests and said in the log.
        self.lost = False

    def run(self) -> None:
        renewed = time.monotonic()
        pause = self._lease / 3
        while not self._stopped.wait(pause):
            try:
                self._lock.reacquire()
            except self._lost as exc:
                return self._say_lost(f"Redis says it is no longer ours ({type(exc).__name__})")
            except self._errors as exc:
                if time.monotonic() - renewed + RECONNECT_PAUSE_SECONDS >= self._lease:
                    return self._say_lost(f"the lease lapsed while Redis answered {type(exc).__name__}")
                pause = RECONNECT_PAUSE_SECONDS  # transient: try again soon, within the lease
                continue
            renewed, pause = time.monotonic(), self._lease / 3

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
