"""Benchmark 5 (the shared-cache issue): 20 tasks in parallel processes x 50 calls each against the
sandbox; token requests the sandbox saw per token_cache backend, next to a plain hook per task."""

from __future__ import annotations

import os
import socket
import tempfile
import time

from harness import prepare_airflow_home, require, run_python, table

TASKS = 20
CALLS = 50
WORKER = r"""
import os, subprocess, sys, tempfile, time
tasks, calls = int(sys.argv[1]), int(sys.argv[2])
barrier = tempfile.mkdtemp()
code = '''
import os, sys, time
from airflow_vendorauth.hooks.smartrecruiters import SmartRecruitersHook
barrier, tasks, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hook = SmartRecruitersHook("smartrecruiters_default")
hook.settings
open(os.path.join(barrier, str(os.getpid())), "w").close()
while len(os.listdir(barrier)) < tasks:
    time.sleep(0.005)
for _ in range(calls):
    hook.request("GET", "/jobs", params={"limit": 1})
'''
procs = [subprocess.Popen([sys.executable, "-c", code, barrier, str(tasks), str(calls)]) for _ in range(tasks)]
assert all(p.wait() == 0 for p in procs)
"""


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def main() -> str:
    prepare_airflow_home()
    from cryptography.fernet import Fernet

    from airflow_vendorauth.sandbox.client import Sandbox

    backends = {"memory (a plain hook per task)": "memory", "file": "file"}
    if redis_answers():
        backends["redis"] = "redis://127.0.0.1:6379/14"
    rows = []
    with Sandbox() as sandbox:
        for label, token_cache in backends.items():
            sandbox.reset()
            if token_cache.startswith("redis"):
                import redis

                client = redis.Redis.from_url(token_cache)
                for key in client.scan_iter("vendorauth:*"):
                    client.delete(key)
            env = {
                **os.environ,
                **sandbox.environment(token_cache=token_cache),
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR": tempfile.mkdtemp(prefix="vendorauth-bench-cache-"),
            }
            started = time.perf_counter()
            run_python(WORKER, str(TASKS), str(CALLS), env=env)
            seconds = time.perf_counter() - started
            stats = sandbox.stats().get("smartrecruiters", {})
            require(stats.get("api_requests", 0) >= TASKS * CALLS, f"{label}: the API saw {stats.get('api_requests', 0)} of {TASKS * CALLS} calls")
            rows.append([label, stats["token_requests"], stats["api_requests"], f"{seconds:.1f}"])
    return table(
        f"Token requests: {TASKS} tasks in parallel processes x {CALLS} calls",
        ["token_cache", "token requests", "API calls", "seconds"],
        rows,
    )


if __name__ == "__main__":
    main()
