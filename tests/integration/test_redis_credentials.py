"""Redis credentials out of clear text (hooks/shared_cache.py): ``cache: redis_conn_id:<id>`` takes the
Redis of an Airflow connection of type redis (its password a secret field), against a redis-server of
the test's own that requires a password; a password written in a Redis URL is registered with the
secrets masker; a connection id that does not exist is a clear error naming the field and the fix."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from cryptography.fernet import Fernet

from airflow_vendorauth.exceptions import ConnectionConfigError
from airflow_vendorauth.sandbox.client import Sandbox
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

PASSWORD = "redis-pass-Qx7-not-in-clear"


@pytest.fixture
def guarded_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    with RedisServer(password=PASSWORD) as server:
        yield server


def kazi_with_cache(monkeypatch: pytest.MonkeyPatch, sandbox_connections: dict, cache: str) -> None:
    conn = json.loads(sandbox_connections["AIRFLOW_CONN_KAZI_DEFAULT"])
    conn["extra"]["cache"] = cache
    monkeypatch.setenv("AIRFLOW_CONN_KAZI_DEFAULT", json.dumps(conn))


def test_the_cache_can_name_an_airflow_redis_connection(
    vendor_sandbox: Sandbox, sandbox_connections: dict, guarded_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_vendorauth.hooks.kazi import KaziHook

    redis_conn = {"conn_type": "redis", "host": "127.0.0.1", "port": guarded_redis.port, "password": PASSWORD,
                  "extra": {"db": 3}}
    monkeypatch.setenv("AIRFLOW_CONN_TOKEN_REDIS", json.dumps(redis_conn))
    kazi_with_cache(monkeypatch, sandbox_connections, "redis_conn_id:token_redis")
    masked: list[str] = []
    monkeypatch.setattr("airflow_vendorauth.hooks.masking.mask_secret", lambda value, name=None: masked.append(value))
    hook = KaziHook("kazi_default")
    hook.request("GET", "/tagging/v2/expectations")
    stored = redis.Redis(host="127.0.0.1", port=guarded_redis.port, password=PASSWORD, db=3)
    assert list(stored.scan_iter("vendorauth:{*}:token"))  # the token is shared through that Redis
    assert PASSWORD in masked
    assert PASSWORD not in repr(hook.settings) and "redis_conn_id:token_redis" in repr(hook.settings)
    KaziHook("kazi_default").request("GET", "/tagging/v2/expectations")
    assert vendor_sandbox.token_requests("kazi") == 1


def test_a_password_in_a_redis_url_is_registered_with_the_masker(
    vendor_sandbox: Sandbox, sandbox_connections: dict, guarded_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_vendorauth.hooks.kazi import KaziHook

    kazi_with_cache(monkeypatch, sandbox_connections, f"redis://:{PASSWORD}@127.0.0.1:{guarded_redis.port}/0")
    masked: list[str] = []
    monkeypatch.setattr("airflow_vendorauth.hooks.masking.mask_secret", lambda value, name=None: masked.append(value))
    KaziHook("kazi_default").get_token()
    assert PASSWORD in masked


def test_a_redis_connection_that_does_not_exist_is_named_with_the_fix(
    sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_vendorauth.hooks.kazi import KaziHook

    kazi_with_cache(monkeypatch, sandbox_connections, "redis_conn_id:no_such_redis")
    with pytest.raises(ConnectionConfigError, match=r"Token cache \(cache\).*'no_such_redis'.*type redis"):
        KaziHook("kazi_default").get_token()
