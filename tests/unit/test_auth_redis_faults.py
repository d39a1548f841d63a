"""RedisTokenCache under faults, each against a redis-server of the test's own (tests/redis_server.py):
compare-and-delete under a concurrent write, lease renewal through BUSY answers, a holder that lost its
lock saying so, the lock a rotating refresh token requires, refresh token generations, and an
unreachable Redis said once, with its reason, never as a lock timeout nor a token "stored"."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pendulum
import pytest
from cryptography.fernet import Fernet

from airflow_vendorauth.auth.cache import CacheLockUnavailable, MemoryTokenCache, RefreshChain
from airflow_vendorauth.auth.cipher import TokenCipher
from airflow_vendorauth.auth.provider import TokenProvider
from airflow_vendorauth.auth.redis_cache import RedisTokenCache, credential_key
from airflow_vendorauth.auth.token import AccessToken
from tests.redis_server import RedisServer

#: Keeps a Redis busy running a script for ARGV[1] microseconds: other clients get BUSY meanwhile.
BUSY_SCRIPT = """
local start = redis.call('TIME')
while true do
  local now = redis.call('TIME')
  if (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > tonumber(ARGV[1]) then return 1 end
end
"""


def token(value: str, seconds: int = 3600) -> AccessToken:
    now = pendulum.now("UTC")
    return AccessToken(access_token=value, expires_at=now.add(seconds=seconds), obtained_at=now)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as started:
        yield started


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher([Fernet.generate_key().decode()])


@pytest.fixture
def cache(server: RedisServer, cipher: TokenCipher) -> RedisTokenCache:
    if server.process is None:
        server.start()
    made = RedisTokenCache(server.url(), cipher, lease_seconds=3.0, logger=logging.getLogger("test.redis"))
    made.client.flushdb()
    return made


def test_evict_never_deletes_a_token_another_process_stored_after_the_read(
    cache: RedisTokenCache, server: RedisServer, cipher: TokenCipher
) -> None:
    """evict reads the entry, compares, then deletes: another worker storing a new token in between must
    keep it. Here that worker writes exactly inside the window (when evict decrypts what it read); a plain
    DEL instead of the atomic compare-and-delete deletes the newer token."""
    cache.store("k", token("old"))
    other_worker = RedisTokenCache(server.url(), cipher)
    opened = cache.cipher.open_token

    def open_then_another_worker_stores(blob: bytes, source: str) -> AccessToken:
        read = opened(blob, source)
        other_worker.store("k", token("newer"))
        return read

    cache.cipher.open_token = open_then_another_worker_stores  # type: ignore[method-assign]
    try:
        cache.evict("k", "old")
    finally:
        cache.cipher.open_token = opened  # type: ignore[method-assign]
    kept = cache.load("k")
    assert kept is not None and kept.access_token == "newer", "the newer token was deleted"


def _busy(server: RedisServer, after: float, microseconds: int) -> threading.Thread:
    import redis

    def run() -> None:
        time.sleep(after)
        client = redis.Redis(host="127.0.0.1", port=server.port)
        client.eval(BUSY_SCRIPT, 0, microseconds)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_renewal_lives_through_busy_answers_and_keeps_the_lock(cache: RedisTokenCache, server: RedisServer) -> None:
    """Lease 3 s, renewed every second. Redis answers BUSY from 0.8 s to 2.6 s (a script runs): the
    renewal at 1 s fails. Giving up there let the lease lapse at 3 s and a waiter in while the holder still
    fetched (until 5 s); retrying within the lease renews it at 2.6 s and the waiter waits for the holder."""
    entered: list[float] = []
    started = time.monotonic()

    def waiter() -> None:
        time.sleep(0.3)
        with cache.fetch_lock("k", wait_seconds=30, required=True):  # required: a BUSY never lets it in
            entered.append(time.monotonic() - started)

    thread = threading.Thread(target=waiter)
    with cache.fetch_lock("k", wait_seconds=30):
        thread.start()
        busy = _busy(server, after=0.8 - (time.monotonic() - started), microseconds=1_800_000)
        time.sleep(5.0 - (time.monotonic() - started))
    held_until = time.monotonic() - started
    busy.join()
    thread.join()
    assert entered and entered[0] >= held_until - 0.05, (entered, held_until)


def test_a_holder_that_lost_its_lock_says_so(cache: RedisTokenCache, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), cache.fetch_lock("k", wait_seconds=5):
        cache.client.delete(credential_key("k", "lock"))  # the lease is gone (an operator, a failover to an empty replica)
        time.sleep(1.5)  # the next renewal (every lease / 3 = 1 s) finds the lock not ours
    assert "lost its Redis token cache lock" in caplog.text


def test_a_required_lock_waits_through_a_restart_then_is_held(cache: RedisTokenCache, server: RedisServer) -> None:
    server.kill()
    restarter = threading.Timer(1.0, server.start)
    restarter.start()
    started = time.monotonic()
    with cache.fetch_lock("k", wait_seconds=20, required=True):
        assert cache.client.exists(credential_key("k", "lock"))
    restarter.join()
    assert 0.9 <= time.monotonic() - started < 10


def test_a_required_lock_fails_past_its_wait_naming_redis_and_the_reason(
    cache: RedisTokenCache, server: RedisServer
) -> None:
    server.kill()
    try:
        with pytest.raises(CacheLockUnavailable, match=rf"127\.0\.0\.1:{server.port}.*cannot connect"):
            with cache.fetch_lock("k", wait_seconds=1.0, required=True):
                pytest.fail("no lock may be held with Redis down")
    finally:
        server.start()


def test_a_refresh_token_is_kept_only_over_a_lower_generation(cache: RedisTokenCache) -> None:
    assert cache.store_refresh_token("k", RefreshChain("rt-5", 5))
    assert cache.store_refresh_token("k", RefreshChain("rt-3", 3))  # an old copy republished: ignored
    assert cache.load_refresh_token("k") == RefreshChain("rt-5", 5)
    assert cache.store_refresh_token("k", RefreshChain("rt-6", 6))
    assert cache.load_refresh_token("k") == RefreshChain("rt-6", 6)
    assert b"rt-6" not in cache.client.hget(credential_key("k", "chain"), "rt")  # encrypted at rest


class _Endpoint:
    """The part of TokenEndpoint the provider uses: counts fetches, answers a fresh token."""

    vendor, conn_id, budget_seconds, requests_sent = "Kazi", "kazi_default", 2.0, 0

    def fetch(self, refresh_token: str | None = None) -> AccessToken:
        self.requests_sent += 1
        return token(f"at-{self.requests_sent}")

    def close(self) -> None:
        pass


def test_an_unreachable_redis_is_said_once_with_its_reason_never_as_a_lock_timeout_or_stored(
    cipher: TokenCipher, caplog: pytest.LogCaptureFixture
) -> None:
    """#27: ``cache: redis://nohost:6379/0``: every fetch succeeds; the log names the host once."""
    log = logging.getLogger("test.nohost")
    gone = RedisTokenCache("redis://nohost:6379/0", cipher, socket_timeout=0.5, logger=log)
    memory = MemoryTokenCache()
    provider: Any = TokenProvider(_Endpoint(), key="k", shared=gone, logger=log, memory=memory)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            provider.get_token()
            memory.clear()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and "cannot connect to nohost:6379" in said[0], said
    assert "lock" not in caplog.text and "stored in the redis cache" not in caplog.text
    assert caplog.text.count("not stored: the redis cache is unavailable") == 3


def test_a_missing_redis_client_names_the_cache_field_and_the_extra(
    cipher: TokenCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)  # as if the redis extra was not installed
    with pytest.raises(ImportError) as missing:
        RedisTokenCache("redis://127.0.0.1:6379/0", cipher)
    assert "cache:" in str(missing.value) and "airflow-vendorauth[redis]" in str(missing.value)
    assert "token_cache" not in str(missing.value)


def test_a_chain_kept_under_the_key_of_earlier_releases_is_read_once_then_moves_under_the_hash_tag(
    cache: RedisTokenCache, cipher: TokenCipher
) -> None:
    """Upgrading from keys without hash tags: the old chain is found (as a copy others may outrank), and
    the next rotation is stored under ``vendorauth:{<fingerprint>}:chain``."""
    from airflow_vendorauth.auth.redis_cache import LEGACY_CHAIN_PREFIX

    cache.client.hset(f"{LEGACY_CHAIN_PREFIX}k", mapping={"gen": 4, "rt": cipher.encrypt("rt-4")})
    found = cache.load_refresh_token("k")
    assert found is not None and (found.refresh_token, found.generation, found.republished) == ("rt-4", 4, True)
    assert cache.store_refresh_token("k", RefreshChain("rt-5", 5))
    moved = cache.load_refresh_token("k")
    assert moved is not None and (moved.refresh_token, moved.generation, moved.republished) == ("rt-5", 5, False)
    assert cache.client.exists(credential_key("k", "chain"))
