"""The three quota stores the unit tests run their rules on: memory, file, and Redis on a redis-server of
the test's own (the rules are the same on each, and so is every test of them)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from airflow_vendorauth.quota.stores import FileQuotaStore, MemoryQuotaStore, QuotaStore

KINDS = ["memory", "file", "redis"]


@contextlib.contextmanager
def quota_store(kind: str, folder: Path) -> Iterator[QuotaStore]:
    if kind == "memory":
        yield MemoryQuotaStore()
    elif kind == "file":
        yield FileQuotaStore(folder)
    else:
        import redis

        from airflow_vendorauth.quota.redis_store import RedisQuotaStore
        from tests.redis_server import RedisServer

        with RedisServer() as server:
            yield RedisQuotaStore(redis.Redis.from_url(server.url()), (redis.RedisError, OSError), "test")
