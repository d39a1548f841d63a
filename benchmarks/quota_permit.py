"""What a permit costs each request: acquire and release against the memory store and a local redis-server
of its own (two round trips), with nothing declared and with two rates and a cap on requests at once.
``python benchmarks/quota_permit.py``; the README's Quotas section quotes it."""

from __future__ import annotations

import sys
import time
import uuid

from harness import ROOT

sys.path.insert(0, str(ROOT))

PERMITS = 2000


def main() -> None:
    import redis

    from airflow_vendorauth.quota.redis_store import RedisQuotaStore
    from airflow_vendorauth.quota.spec import Rate
    from airflow_vendorauth.quota.stores import MemoryQuotaStore, QuotaStore
    from tests.redis_server import RedisServer

    rates = (Rate(1_000_000, "second"), Rate(10_000_000, "day"))  # never binding: the cost, not a wait
    with RedisServer() as server:
        stores: list[tuple[str, QuotaStore]] = [
            ("memory", MemoryQuotaStore()),
            ("redis", RedisQuotaStore(redis.Redis.from_url(server.url()), (redis.RedisError,), "bench")),
        ]
        for name, store in stores:
            for declared, cap in (((), None), (rates, 8)):
                started = time.perf_counter()
                for _ in range(PERMITS):
                    lease = uuid.uuid4().hex
                    assert store.acquire("k", declared, cap, lease, 30.0).granted
                    store.release("k", lease)
                micros = (time.perf_counter() - started) / PERMITS * 1e6
                print(f"{name}, {'two rates and 8 at once' if declared else 'nothing declared'}: {micros:.0f} us a permit")


if __name__ == "__main__":
    main()
