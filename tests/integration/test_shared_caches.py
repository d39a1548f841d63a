"""Tokens shared across processes and workers: the file and Redis caches, and their failure modes.

Each "task" here is a separate Python process, as Airflow runs tasks, talking to the real sandbox.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from airflow_vendorauth.sandbox.client import Sandbox
from tests.services import require_redis

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/13"

TASK = """
import os, sys, time
from airflow_vendorauth.hooks.clazar import ClazarHook
barrier, count, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hook = ClazarHook("clazar_default")
hook.settings  # read the connection before the start line, as a task would
open(os.path.join(barrier, str(os.getpid())), "w").close()
deadline = time.time() + 60
while len(os.listdir(barrier)) < count and time.time() < deadline:
    time.sleep(0.005)
for _ in range(calls):
    hook.request("GET", "/listings/", params={"page_size": 5})
print(hook.token_requests)
"""


def flush_redis_tokens() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter("vendorauth:*"):
        client.delete(key)


@pytest.fixture
def cache_env(vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
    env["AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR"] = str(tmp_path / "token-cache")
    return env


def with_cache(env: dict[str, str], token_cache: str) -> dict[str, str]:
    conn = json.loads(env["AIRFLOW_CONN_CLAZAR_DEFAULT"])
    conn["extra"]["cache"] = token_cache
    return {**env, "AIRFLOW_CONN_CLAZAR_DEFAULT": json.dumps(conn)}


def run_tasks(env: dict[str, str], count: int, calls: int = 3) -> list[int]:
    """Start ``count`` task processes; they import Airflow, meet at a barrier, then all call at once."""
    import tempfile

    barrier = tempfile.mkdtemp(prefix="vendorauth-barrier-")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TASK, barrier, str(count), str(calls)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results.append(int(out.strip().splitlines()[-1]))
    return results


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_eight_processes_at_once_cause_one_token_request(
    backend: str, cache_env: dict, vendor_sandbox: Sandbox
) -> None:
    if backend == "redis":
        require_redis()
        flush_redis_tokens()
    vendor_sandbox.add_fault(vendor="clazar", route="token", latency_ms=300)  # widen the race window
    per_process = run_tasks(with_cache(cache_env, backend if backend == "file" else REDIS_URL), 8)
    assert vendor_sandbox.token_requests("clazar") == 1
    assert sorted(per_process) == [0] * 7 + [1]


def test_without_a_shared_cache_each_process_fetches_its_own(cache_env: dict, vendor_sandbox: Sandbox) -> None:
    run_tasks(with_cache(cache_env, "memory"), 4, calls=2)
    assert vendor_sandbox.token_requests("clazar") == 4


def test_file_entries_are_private_and_encrypted(cache_env: dict, vendor_sandbox: Sandbox) -> None:
    run_tasks(with_cache(cache_env, "file"), 1)
    directory = Path(cache_env["AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR"])
    assert directory.stat().st_mode & 0o777 == 0o700
    (entry,) = directory.glob("*.token")
    assert entry.stat().st_mode & 0o777 == 0o600
    assert b"access_token" not in entry.read_bytes()
    assert b"CLA-" not in entry.read_bytes()


def test_a_corrupt_entry_falls_back_and_is_replaced(cache_env: dict, vendor_sandbox: Sandbox) -> None:
    env = with_cache(cache_env, "file")
    run_tasks(env, 1)
    (entry,) = Path(cache_env["AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR"]).glob("*.token")
    entry.write_bytes(b"\x00garbage")
    assert run_tasks(env, 1) == [1]
    assert run_tasks(env, 1) == [0]  # the replaced entry serves again


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_a_wrong_fernet_key_falls_back(backend: str, cache_env: dict, vendor_sandbox: Sandbox) -> None:
    if backend == "redis":
        require_redis()
        flush_redis_tokens()
    env = with_cache(cache_env, backend if backend == "file" else REDIS_URL)
    run_tasks(env, 1)
    other_key = {**env, "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode()}
    assert run_tasks(other_key, 1) == [1]


def test_a_lock_whose_holder_died_does_not_block(cache_env: dict, vendor_sandbox: Sandbox) -> None:
    directory = Path(cache_env["AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR"])
    from airflow_vendorauth.auth.cache import cache_key

    conn = json.loads(cache_env["AIRFLOW_CONN_CLAZAR_DEFAULT"])
    key = cache_key("clazar", f"{conn['host']}/authenticate/", conn["login"], conn["password"])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import filelock, os, sys, time\n"
            f"os.makedirs({str(directory)!r}, mode=0o700, exist_ok=True)\n"
            f"lock = filelock.FileLock({str(directory / (key + '.lock'))!r}); lock.acquire(); print('held', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)  # the holder dies with the lock taken
    holder.wait()
    started = time.monotonic()
    assert run_tasks(with_cache(cache_env, "file"), 1) == [1]
    assert time.monotonic() - started < 20


def test_a_stale_redis_lock_expires(cache_env: dict, vendor_sandbox: Sandbox) -> None:
    require_redis()
    import redis

    from airflow_vendorauth.auth.cache import cache_key
    from airflow_vendorauth.auth.redis_cache import credential_key as credential_key_in_redis

    flush_redis_tokens()
    conn = json.loads(cache_env["AIRFLOW_CONN_CLAZAR_DEFAULT"])
    key = cache_key("clazar", f"{conn['host']}/authenticate/", conn["login"], conn["password"])
    redis.Redis.from_url(REDIS_URL).set(credential_key_in_redis(key, "lock"), b"dead-worker", px=2000)
    started = time.monotonic()
    assert run_tasks(with_cache(cache_env, REDIS_URL), 1) == [1]
    assert time.monotonic() - started < 20


def test_redis_down_mid_run_falls_back(cache_env: dict, vendor_sandbox: Sandbox, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        env = with_cache(cache_env, f"redis://127.0.0.1:{port}/0")
        assert run_tasks(env, 1) == [1]
        assert run_tasks(env, 1) == [0]
    finally:
        server.kill()
        server.wait()
    vendor_sandbox.revoke("clazar")  # the cached token is refused; Redis is gone
    assert run_tasks(env, 2) == [1, 1]


def test_a_401_evicts_the_token_from_the_shared_cache(cache_env: dict, vendor_sandbox: Sandbox) -> None:
    env = with_cache(cache_env, "file")
    assert run_tasks(env, 1) == [1]
    vendor_sandbox.revoke("clazar")
    assert run_tasks(env, 1) == [1]  # got 401 with the cached token, evicted it, fetched a new one
    assert run_tasks(env, 2) == [0, 0]  # nobody reuses the revoked token
    assert vendor_sandbox.stats()["clazar"]["status_401"] == 1
