"""Rotating refresh tokens across task processes: seven processes share one connection (grant_type
refresh_token, 4-second access tokens) through the file cache and through Redis, call the API for 15 s,
and never fail a call nor spend a refresh token twice; the group refreshes about once per half lifetime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import oauth2_connection
from tests.services import require_redis

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/13"
SECONDS = 15.0
LIFETIME = 4

TASK = """
import json, os, sys, time
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
barrier, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
hook = OAuth2Hook("oauth2_default")
hook.settings
open(os.path.join(barrier, str(os.getpid())), "w").close()
while len(os.listdir(barrier)) < count:
    time.sleep(0.005)
calls, failures = 0, []
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        hook.request("GET", "/items", params={"per_page": 1})
        calls += 1
    except Exception as error:  # every failure is reported, none may happen
        failures.append(str(error)[:300])
    time.sleep(0.05)
print(json.dumps({"calls": calls, "failures": failures, "token_requests": hook.token_requests}))
"""


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_seven_processes_share_a_rotating_refresh_token(
    backend: str, vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    if backend == "redis":
        require_redis()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter("vendorauth:*"):
            client.delete(key)
    vendor_sandbox.configure(lifetimes={"oauth2": LIFETIME})
    cache = "file" if backend == "file" else REDIS_URL
    conn = oauth2_connection(vendor_sandbox.url, grant_type="refresh_token", token_cache=cache)
    conn["extra"]["refresh_token"] = vendor_sandbox.seed_refresh_token(conn["login"])
    env = {
        **os.environ,
        "AIRFLOW_CONN_OAUTH2_DEFAULT": json.dumps(conn),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR": str(tmp_path / "tokens"),
    }
    barrier = tempfile.mkdtemp(prefix="vendorauth-barrier-")
    procs = [
        subprocess.Popen([sys.executable, "-c", TASK, barrier, "7", str(SECONDS)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(7)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    stats = vendor_sandbox.stats()["oauth2"]
    refreshes = stats["token_requests"]
    print(f"{backend}: {sum(r['calls'] for r in reports)} calls by 7 processes in {SECONDS:.0f} s, "
          f"{refreshes} refreshes, refresh token reuse {stats.get('refresh_reuse', 0)}")
    assert [r["failures"] for r in reports] == [[]] * 7  # no failed call
    assert all(r["calls"] > 50 for r in reports)
    assert stats.get("refresh_reuse", 0) == 0  # no spent refresh token sent again
    assert stats.get("status_400", 0) == 0 and stats.get("status_401", 0) == 0
    half_lifetimes = SECONDS / (LIFETIME / 2)
    assert 0.6 * half_lifetimes <= refreshes <= 1.5 * half_lifetimes + 1  # about one per half lifetime, in all
