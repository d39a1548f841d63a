"""RedisTokenCache (auth/redis_cache.py) against the real Redis on 127.0.0.1:6379: encrypted entries
that expire with the token, atomic compare-and-delete, and a fetch lock whose lease the holder renews."""

from __future__ import annotations

import threading
import time

import pendulum
import pytest
from cryptography.fernet import Fernet

from airflow_vendorauth.auth.cipher import TokenCipher
from airflow_vendorauth.auth.redis_cache import RedisTokenCache, credential_key
from airflow_vendorauth.auth.token import AccessToken
from tests.services import require_redis

URL = "redis://127.0.0.1:6379/13"


def token(value: str, seconds: int = 3600) -> AccessToken:
    now = pendulum.now("UTC")
    return AccessToken(access_token=value, expires_at=now.add(seconds=seconds), obtained_at=now)


@pytest.fixture
def cache() -> RedisTokenCache:
    require_redis()
    made = RedisTokenCache(URL, TokenCipher([Fernet.generate_key().decode()]), lease_seconds=1.5)
    for key in made.client.scan_iter("vendorauth:{unit-*"):
        made.client.delete(key)
    return made


def test_an_entry_is_encrypted_and_expires_with_the_token(cache: RedisTokenCache) -> None:
    cache.store("unit-k", token("redis-token-value", seconds=120))
    raw = cache.client.get(credential_key("unit-k", "token"))
    assert raw is not None and b"redis-token-value" not in raw
    assert 110_000 < cache.client.pttl(credential_key("unit-k", "token")) <= 120_000
    assert cache.load("unit-k").access_token == "redis-token-value"  # type: ignore[union-attr]


def test_evict_is_compare_and_delete(cache: RedisTokenCache) -> None:
    cache.store("unit-k", token("current"))
    cache.evict("unit-k", "older")
    assert cache.load("unit-k") is not None
    cache.evict("unit-k", "current")
    assert cache.load("unit-k") is None


def test_an_unreadable_entry_is_dropped(cache: RedisTokenCache) -> None:
    cache.client.set(credential_key("unit-k", "token"), b"garbage")
    assert cache.load("unit-k") is None
    assert cache.client.get(credential_key("unit-k", "token")) is None


def test_the_holder_renews_its_lease_while_its_fetch_runs(cache: RedisTokenCache) -> None:
    """A lease of 1.5 s and a fetch of 4 s: without renewal a waiter would get in after 1.5 s."""
    entered: list[float] = []
    started = time.monotonic()

    def waiter() -> None:
        time.sleep(0.2)
        with cache.fetch_lock("unit-k", wait_seconds=30):
            entered.append(time.monotonic() - started)

    thread = threading.Thread(target=waiter)
    with cache.fetch_lock("unit-k", wait_seconds=30):
        thread.start()
        time.sleep(4.0)
    thread.join()
    assert entered and entered[0] >= 4.0


def test_a_dead_holder_frees_the_lock_within_a_lease(cache: RedisTokenCache) -> None:
    cache.client.set(credential_key("unit-k", "lock"), b"a-worker-that-died", px=1500)  # no renewal will come
    started = time.monotonic()
    with cache.fetch_lock("unit-k", wait_seconds=30):
        assert time.monotonic() - started < 3


def test_an_unreachable_redis_is_no_cache_not_a_failure() -> None:
    gone = RedisTokenCache("redis://127.0.0.1:1/0", TokenCipher([Fernet.generate_key().decode()]), socket_timeout=0.2)
    gone.store("unit-k", token("t"))
    assert gone.load("unit-k") is None
    gone.evict("unit-k", "t")
    with gone.fetch_lock("unit-k", wait_seconds=1):
        pass
