"""A rotating refresh-token chain shared through Redis survives Redis itself (issue 23's "done when").

Four task processes share one ``oauth2`` connection (grant_type refresh_token, 5-second access tokens,
the sandbox's strict rotation: each refresh token works once, reuse is counted) through a redis-server
this test owns. For 20 s they call the API while the test kills that redis-server and restarts it empty,
twice. Expected: no failed call beyond the outages, no refresh token spent twice. Then the same with a
process whose waiters are cancelled at random (a trigger's timeout); then Test from a separate process
(the ``airflow connections test`` CLI) while workers run: the workers' chain stays intact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import oauth2_connection
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

LIFETIME = 5

WORKER = """
import asyncio, json, os, random, sys, time
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
barrier, count, seconds, style = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
hook = OAuth2Hook("oauth2_default")
hook.settings
open(os.path.join(barrier, str(os.getpid())), "w").close()
while len(os.listdir(barrier)) < count:
    time.sleep(0.005)
calls, failures, cancelled = 0, [], 0
end = time.monotonic() + seconds

async def cancelling() -> None:
    global calls, cancelled
    while time.monotonic() < end:
        waiter = asyncio.ensure_future(hook.aget_token())  # a trigger's wait, cancelled at random
        await asyncio.sleep(random.uniform(0, 0.03))
        if not waiter.done():
            waiter.cancel()
            cancelled += 1
        try:
            await hook.arequest("GET", "/items", params={"per_page": 1})
            calls += 1
        except Exception as error:
            failures.append([time.time(), str(error)[:400]])
        await asyncio.sleep(0.05)

if style == "cancelling":
    asyncio.run(cancelling())
else:
    while time.monotonic() < end:
        try:
            hook.request("GET", "/items", params={"per_page": 1})
            calls += 1
        except Exception as error:  # every failure is reported with its time
            failures.append([time.time(), str(error)[:400]])
        time.sleep(0.05)
print(json.dumps({"calls": calls, "failures": failures, "cancelled": cancelled}))
"""


def chain_environment(sandbox: Sandbox, cache: str, tmp_path: Path) -> dict[str, str]:
    sandbox.configure(lifetimes={"oauth2": LIFETIME})
    conn = oauth2_connection(sandbox.url, grant_type="refresh_token", token_cache=cache)
    conn["extra"]["refresh_token"] = sandbox.seed_refresh_token(conn["login"])
    return {
        **os.environ,
        "AIRFLOW_CONN_OAUTH2_DEFAULT": json.dumps(conn),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR": str(tmp_path / "tokens"),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }


def start_workers(env: dict[str, str], styles: list[str], seconds: float) -> tuple[list[subprocess.Popen[str]], str]:
    barrier = tempfile.mkdtemp(prefix="vendorauth-barrier-")
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, barrier, str(len(styles)), str(seconds), style],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for style in styles
    ]
    deadline = time.monotonic() + 120
    while len(os.listdir(barrier)) < len(styles) and time.monotonic() < deadline:
        time.sleep(0.05)
    return procs, barrier


def reports_of(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        reports.append(json.loads([line for line in out.splitlines() if line.startswith('{"calls"')][-1]))
    return reports


def outside(failures: list[list[Any]], outages: list[tuple[float, float]]) -> list[str]:
    """Failures that did not happen while Redis was down (plus one second for the answer to arrive)."""
    return [text for at, text in failures if not any(start <= at <= end + 1.0 for start, end in outages)]


@pytest.mark.parametrize("styles", [["plain"] * 4, ["plain"] * 3 + ["cancelling"]], ids=["4-workers", "cancelled-waiters"])
@pytest.mark.timeout(600)  # four processes for 20 s, redis-server killed twice: its own waits allow 6 min
def test_four_processes_keep_their_chain_while_redis_is_killed_and_restarted_empty_twice(
    styles: list[str], vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    seconds = 20.0
    with RedisServer() as redis_server:
        env = chain_environment(vendor_sandbox, redis_server.url(), tmp_path)
        procs, _ = start_workers(env, styles, seconds)
        started = time.time()
        outages = []
        for at in (5.5, 12.5):
            time.sleep(max(0.0, started + at - time.time()))
            # Right after a rotation: the newest refresh token is then in the rotator's memory and the
            # cache only; the other processes still hold the one before (the hardest moment to lose Redis).
            before = vendor_sandbox.token_requests("oauth2")
            while vendor_sandbox.token_requests("oauth2") == before and time.time() < started + at + 6:
                time.sleep(0.01)
            time.sleep(0.05)
            down = time.time()
            redis_server.kill()
            time.sleep(0.5)  # half a second without Redis, then an empty one
            redis_server.start()
            outages.append((down, time.time()))
        reports = reports_of(procs)
    stats = vendor_sandbox.stats()["oauth2"]
    failures = [f for r in reports for f in r["failures"]]
    print(f"{styles}: {sum(r['calls'] for r in reports)} calls, {len(failures)} failed "
          f"({len(outside(failures, outages))} beyond the outages), {stats['token_requests']} refreshes, "
          f"reuse {stats.get('refresh_reuse', 0)}, waiters cancelled {sum(r['cancelled'] for r in reports)}")
    assert outside(failures, outages) == [], failures
    assert stats.get("refresh_reuse", 0) == 0  # no spent refresh token sent again
    assert stats.get("status_401", 0) == 0
    assert all(r["calls"] > 100 for r in reports)
    if "cancelling" in styles:
        assert sum(r["cancelled"] for r in reports) > 0


@pytest.mark.parametrize("test_cache", ["redis", "memory"])
@pytest.mark.timeout(600)  # workers and `airflow connections test` as processes: its own waits allow 8 min
def test_test_from_a_separate_process_leaves_the_workers_chain_intact(
    test_cache: str, vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    """Workers share the chain through Redis; the api-server's Test (here the CLI) uses the same Redis,
    or (memory) a connection whose cache the workers cannot see: neither spends a token twice."""
    with RedisServer() as redis_server:
        env = chain_environment(vendor_sandbox, redis_server.url(), tmp_path)
        tester_env = dict(env)
        if test_cache == "memory":
            conn = json.loads(env["AIRFLOW_CONN_OAUTH2_DEFAULT"])
            conn["extra"]["cache"] = "memory"
            tester_env["AIRFLOW_CONN_OAUTH2_DEFAULT"] = json.dumps(conn)
        procs, _ = start_workers(env, ["plain", "plain"], 12.0)
        time.sleep(3.0)  # the workers have refreshed at least once: the seed is spent
        airflow = Path(sys.executable).parent / "airflow"
        tested = subprocess.run([str(airflow), "connections", "test", "oauth2_default"], env=tester_env,
                                capture_output=True, text=True, timeout=240)
        reports = reports_of(procs)
    stats = vendor_sandbox.stats()["oauth2"]
    print(test_cache, tested.stdout[-600:])
    assert "Connection success!" in tested.stdout, tested.stdout[-2000:] + tested.stderr[-2000:]
    if test_cache == "memory":  # Test sent a refresh token that cannot exist: one refusal, nothing spent
        assert stats.get("status_400", 0) == 1
    assert [r["failures"] for r in reports] == [[], []]
    assert stats.get("refresh_reuse", 0) == 0
