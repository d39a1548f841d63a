"""One quota for the cluster (issue 34), with real processes against the sandbox's real HTTP server and a
real redis-server of the test's own: six task processes scanning at once an API that allows 25 requests a
second and 8 at once per credential (40 ms a request)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_vendorauth.exceptions import QuotaExhausted
from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import oauth2_connection
from tests.harness.quota_scan import run_round
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

RECORDS = 3000  # 30 pages of 100 per process: 180 requests, a floor of 7.2 s at 25 a second
PROCESSES = 6
DECLARED = {"rate_limit": "25/second", "max_in_flight": 8}


@pytest.fixture
def quota_api(vendor_sandbox: Sandbox, sandbox_connections: dict) -> Iterator[Sandbox]:
    vendor_sandbox.configure(sizes={"oauth2.items": RECORDS})
    vendor_sandbox.add_fault(vendor="oauth2", route="/items", latency_ms=40)
    vendor_sandbox.add_quota(vendor="oauth2", route="/items", rates=["25/second"], max_in_flight=8)
    yield vendor_sandbox


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def floor_seconds(requests: int) -> float:
    return requests / 25


def test_six_processes_with_declared_limits_get_no_429(quota_api: Sandbox, redis: RedisServer) -> None:
    done = run_round(quota_api, processes=PROCESSES, how="hook", records=RECORDS, extra=DECLARED, token_cache=redis.url())
    assert done.failed == []
    assert all(r["complete"] for r in done.results)  # every record, once, in order
    assert done.answered_429 == 0, done.stats
    assert done.api_requests == PROCESSES * RECORDS // 100
    assert done.seconds < 1.3 * floor_seconds(done.api_requests), done.seconds


def test_declared_limits_keep_to_a_vendor_that_counts_a_sliding_window(
    vendor_sandbox: Sandbox, sandbox_connections: dict, redis: RedisServer
) -> None:
    """The sandbox counting the strictest way (an exact sliding log: never more than 25 in any second) still
    answers no 429: the shared quota sends no more than the count in any window. GCRA on the client (a burst
    of the count, then the pace) was refused here: 5 answers 429 of 185 requests, in the run that checked it."""
    vendor_sandbox.configure(sizes={"oauth2.items": RECORDS})
    vendor_sandbox.add_fault(vendor="oauth2", route="/items", latency_ms=40)
    vendor_sandbox.add_quota(vendor="oauth2", route="/items", rates=["25/second"], max_in_flight=8, algorithm="sliding")
    done = run_round(vendor_sandbox, processes=PROCESSES, how="hook", records=RECORDS, extra=DECLARED,
                     token_cache=redis.url())
    assert done.failed == [] and all(r["complete"] for r in done.results)
    assert done.answered_429 == 0, done.stats


def test_the_processes_of_one_machine_share_the_quota_through_the_file_cache(quota_api: Sandbox) -> None:
    done = run_round(quota_api, processes=3, how="hook", records=RECORDS, extra=DECLARED, token_cache="file")
    assert done.failed == [] and done.answered_429 == 0, done.stats


def test_without_declared_limits_the_cluster_learns_from_the_headers(quota_api: Sandbox, redis: RedisServer) -> None:
    done = run_round(quota_api, processes=PROCESSES, how="hook", records=RECORDS, extra={}, token_cache=redis.url())
    assert done.failed == [] and all(r["complete"] for r in done.results)
    [rule] = quota_api.quotas()
    late = [t for t in rule["refused_at"] if t > 2.0]
    assert len(late) <= 0.02 * done.api_requests, rule["refused_at"]
    assert done.seconds < 1.5 * floor_seconds(done.api_requests), done.seconds


def test_bridge_calls_share_the_quota_with_the_hooks(quota_api: Sandbox, redis: RedisServer) -> None:
    done = run_round(quota_api, processes=3, how="bridge", records=RECORDS, extra=DECLARED, token_cache=redis.url())
    assert done.failed == [] and done.answered_429 == 0, done.stats


def test_redis_killed_mid_run_every_task_completes_with_all_its_records(quota_api: Sandbox, redis: RedisServer) -> None:
    killed: list[float] = []

    def kill_at_two_seconds(elapsed: float) -> None:
        if elapsed > 2.0 and not killed:
            redis.kill()
            killed.append(elapsed)

    done = run_round(quota_api, processes=PROCESSES, how="hook", records=RECORDS, extra=DECLARED,
                     token_cache=redis.url(), during=kill_at_two_seconds)
    assert killed and done.seconds > killed[0]  # killed while they ran
    assert done.failed == []
    assert all(r["complete"] and r["records"] == RECORDS for r in done.results)


def test_a_spent_daily_quota_fails_within_seconds_naming_it_and_its_reset(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

    vendor_sandbox.configure(sizes={"oauth2.items": 5000})
    vendor_sandbox.add_quota(vendor="oauth2", route="/items", rates=["25/second", "20/day"])
    conn = oauth2_connection(vendor_sandbox.url, rate_limit=["25/second", "20/day"], quota_max_wait=30)
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(conn))
    started = time.monotonic()
    with pytest.raises(QuotaExhausted) as spent:
        list(OAuth2Hook().paginate("/items"))
    # at once, not after waiting (quota_max_wait is 30 s): 20 pages and the failure take about a second
    # alone, up to 10 on a machine busy with other tests
    assert time.monotonic() - started < 20
    assert spent.value.quota == "20/day" and "UTC" in str(spent.value)
    assert spent.value.resets_at > time.time() + 3600
    assert vendor_sandbox.stats()["oauth2"].get("status_429", 0) == 0


def test_an_undeclared_daily_quota_the_api_says_is_spent_fails_naming_the_apis_quota(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

    vendor_sandbox.configure(sizes={"oauth2.items": 5000})
    vendor_sandbox.add_quota(vendor="oauth2", route="/items", rates=["20/day"], headers="x")
    conn = oauth2_connection(vendor_sandbox.url)  # nothing declared
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(conn))
    started = time.monotonic()
    with pytest.raises(QuotaExhausted, match="the API's own quota"):
        list(OAuth2Hook().paginate("/items", concurrency=1))
    assert time.monotonic() - started < 10


# ---- the rate's sliding window across real processes ------------------------------------------------

#: One process asking a store for a permit of 10/second every 5 ms for three seconds, from a common start;
#: it prints, for each permit, the epoch before and after the store's answer (the store decided in between).
_ASKER = """
import json, sys, time
import redis
from airflow_vendorauth.quota.redis_store import RedisQuotaStore
from airflow_vendorauth.quota.spec import Rate
from airflow_vendorauth.quota.stores import FileQuotaStore
where, start = sys.argv[1], float(sys.argv[2])
store = (RedisQuotaStore(redis.Redis.from_url(where), (redis.RedisError,), "test") if where.startswith("redis")
         else FileQuotaStore(where))
rates, grants, n = (Rate(10, "second"),), [], 0
time.sleep(max(0.0, start - time.time()))
while time.time() < start + 3.0:
    before = time.time()
    n += 1
    if store.acquire("k", rates, None, f"{n}-{id(store)}-{before}", 5.0).granted:
        grants.append((before, time.time()))
    time.sleep(0.005)
print(json.dumps(grants))
"""


@pytest.mark.parametrize("where", ["redis", "file"])
def test_processes_sharing_a_rate_never_get_more_than_its_count_in_any_window(
    where: str, redis: RedisServer, tmp_path: Any
) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    target = redis.url() if where == "redis" else str(tmp_path)
    start = time.time() + 2.0  # every process started and its imports done
    askers = [subprocess.Popen([sys.executable, "-c", _ASKER, target, repr(start)], stdout=subprocess.PIPE, text=True,
                               env=env) for _ in range(4)]
    outputs = [asker.communicate(timeout=60)[0] for asker in askers]
    assert all(asker.returncode == 0 for asker in askers), outputs
    grants = sorted(tuple(g) for out in outputs for g in json.loads(out))
    # surely more than 10 in one second: the 11th after a permit decided less than a second after it
    assert not any(grants[i + 10][1] - grants[i][0] < 1.0 for i in range(len(grants) - 10)), grants
    assert len(grants) >= 27  # and close to the count each window: 10 at once, then 10 every 1.05 s
