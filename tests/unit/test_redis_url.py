"""Redis URLs (auth/redis_url.py): one server, a Sentinel group, a Cluster, TLS; malformed ones refused
without their password; an Airflow Redis connection becomes the same URL; every key of one credential in
one hash slot."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_vendorauth.auth.redis_cache import credential_key
from airflow_vendorauth.auth.redis_url import RedisUrlError, parse_redis_url
from airflow_vendorauth.hooks.shared_cache import redis_address

PASSWORD = "hunter2-redis-secret"


def test_one_server_with_tls_files() -> None:
    target = parse_redis_url(
        f"rediss://app:{PASSWORD}@cache.example:6380/2?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
    )
    assert (target.topology, target.tls, target.nodes, target.db) == ("single", True, (("cache.example", 6380),), 2)
    assert (target.username, target.password) == ("app", PASSWORD)
    assert target.tls_options == {"ssl_ca_certs": "/ca.pem", "ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem"}
    assert PASSWORD not in repr(target) and target.shown() == "rediss://cache.example:6380/2"


def test_a_sentinel_group_names_its_sentinels_master_and_db() -> None:
    target = parse_redis_url(f"redis+sentinel://:{PASSWORD}@s1:26379,s2,s3:26380/mymaster/3?sentinel_auth=false")
    assert target.topology == "sentinel" and target.master == "mymaster" and target.db == 3
    assert target.nodes == (("s1", 26379), ("s2", 26379), ("s3", 26380))
    assert target.sentinel_auth is False and target.password == PASSWORD


def test_a_cluster_names_its_seed_nodes_over_tls() -> None:
    target = parse_redis_url("rediss+cluster://n1:7000,n2:7001?ssl_cert_reqs=none")
    assert (target.topology, target.tls, target.nodes) == ("cluster", True, (("n1", 7000), ("n2", 7001)))
    assert target.tls_options == {"ssl_cert_reqs": "none"}


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (f"redis://:{PASSWORD}@a,b/0", "redis+sentinel://"),
        (f"redis+sentinel://:{PASSWORD}@s1:26379", "names no master"),
        (f"redis+cluster://:{PASSWORD}@n1:7000/0", "no databases"),
        (f"redis://:{PASSWORD}@host:port/0", "not a number from 1 to 65535"),
        (f"redis://:{PASSWORD}@host/zero", "not a number"),
        (f"redis://:{PASSWORD}@host/0?ssl_ca_certs=/ca.pem", "use rediss://"),
        (f"rediss://:{PASSWORD}@host/0?ssl_ca=/ca.pem", "unknown parameter 'ssl_ca'"),
        (f"redis+cluster://:{PASSWORD}@n1:7000?sentinel_auth=true", "for redis+sentinel://"),
        (f"redis+sentinal://:{PASSWORD}@s1/m", "is not a Redis URL"),
        (f"redis://:{PASSWORD}@", "names no host"),
    ],
)
def test_a_malformed_url_is_refused_saying_why_never_with_its_password(url: str, said: str) -> None:
    with pytest.raises(RedisUrlError) as refused:
        parse_redis_url(url)
    assert said in str(refused.value)
    assert PASSWORD not in str(refused.value)


def connection(host: str, port: int | None = None, **extra: object) -> SimpleNamespace:
    return SimpleNamespace(host=host, port=port, login="app", password=PASSWORD, extra_dejson=extra)


def test_an_airflow_redis_connection_names_a_sentinel_group_a_cluster_or_tls_files() -> None:
    url, user, password = redis_address(connection("s1,s2:26380", sentinel_master="mymaster", db=2))
    assert url == "redis+sentinel://s1:26379,s2:26380/mymaster/2" and (user, password) == ("app", PASSWORD)
    url, _, _ = redis_address(connection("n1:7000,n2:7001", cluster=True, ssl=True, ssl_ca_certs="/ca.pem"))
    assert url == "rediss+cluster://n1:7000,n2:7001?ssl_ca_certs=%2Fca.pem"
    assert parse_redis_url(url).tls_options == {"ssl_ca_certs": "/ca.pem"}
    url, _, _ = redis_address(connection("cache", 6380, ssl="true", ssl_cert_reqs="none", db=1))
    assert url == "rediss://cache:6380/1?ssl_cert_reqs=none"


def test_every_key_of_a_credential_is_in_one_hash_slot() -> None:
    """The token, its fetch lock, the spend mark, the chain and the shared quota of one credential live in
    one Cluster slot (the scripts of redis_cache.py and redis_lock.py touch two of them at once)."""
    from redis.crc import key_slot

    fingerprint = "3f" * 32
    kinds = ("token", "lock", "spending", "chain", "quota:window")
    slots = {key_slot(credential_key(fingerprint, kind).encode()) for kind in kinds}
    assert len(slots) == 1
    assert len({key_slot(credential_key(f"{n:064x}", "chain").encode()) for n in range(50)}) > 1  # spread


def test_the_clients_carry_the_credentials_and_tls_files_nothing_else() -> None:
    """No server needed: what redis-py is asked to connect with (nothing connects until a command)."""
    master = parse_redis_url(
        f"rediss+sentinel://:{PASSWORD}@s1:26379,s2:26379/mymaster/2?ssl_ca_certs=/ca.pem"
    ).connect(socket_timeout=1.0)
    data = master.connection_pool.connection_kwargs
    assert (data["password"], data["db"], data["ssl_ca_certs"]) == (PASSWORD, 2, "/ca.pem")
    sentinels = master.connection_pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["password"] for s in sentinels] == [PASSWORD, PASSWORD]
    quiet = parse_redis_url(f"redis+sentinel://:{PASSWORD}@s1:26379/mymaster?sentinel_auth=false").connect()
    assert quiet.connection_pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs.get("password") is None
    one = parse_redis_url(f"rediss://user:{PASSWORD}@cache:6380/1?ssl_certfile=/c.pem&ssl_keyfile=/k.pem").connect()
    kwargs = one.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["ssl_certfile"], kwargs["ssl_keyfile"]) == (
        "user", PASSWORD, "/c.pem", "/k.pem")


def test_an_airflow_redis_connection_with_an_unusable_address_is_refused_naming_both_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from cryptography.fernet import Fernet

    from airflow_vendorauth.exceptions import ConnectionConfigError
    from airflow_vendorauth.hooks.shared_cache import forget_shared_caches
    from tests.unit.fakes import hook_for, set_connection

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_GROUP", json.dumps(
        {"conn_type": "redis", "host": "r1,r2", "port": 6379, "password": PASSWORD}))
    set_connection(monkeypatch, "kazi", extra={"cache": "redis_conn_id:redis_group"})
    forget_shared_caches()
    with pytest.raises(ConnectionConfigError) as refused:
        hook_for("kazi").client  # noqa: B018 - building the client reads the Redis connection
    said = str(refused.value)
    assert "'redis_group'" in said and "names 2 hosts" in said and "sentinel_master" in said
    assert PASSWORD not in said
