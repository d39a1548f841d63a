"""`make cluster-demo`: the provider on a real CeleryExecutor deployment on this machine.

Metadata database in PostgreSQL on 127.0.0.1:5432 (a database of its own, created and dropped here),
Redis on 127.0.0.1:6379 as the Celery broker and as the connections' token cache, the sandbox, and
Airflow's api-server, scheduler, dag-processor, triggerer and TWO `airflow celery worker` processes
named worker1 and worker2. It runs `talent_pipeline` and `vendor_fanout` (20 mapped tasks per vendor),
once with `token_cache=redis://` and once with the in-memory cache, and prints per vendor the tasks
run, the workers they ran on, the API calls and the token requests the sandbox saw. `--kill-worker`
also SIGKILLs the worker running a long Kazi scan and checks that Airflow retries it on the other
worker, resuming from the last committed page. Every process is stopped by its own PID, also when a
step fails; the logs folder is named at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_vendorauth.sandbox.client import Sandbox
from tests.harness.deployment import ROOT, Deployment

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
REDIS = "redis://127.0.0.1:6379/{db}"
BROKER_DB, CACHE_DB = 10, 11
VENDORS = ["smartrecruiters", "kazi", "keyavi", "kayzen", "clazar"]
DAG_FILES = [ROOT / "dags_examples" / n for n in ("_common.py", "talent_pipeline.py", "vendor_fanout.py")] + [
    ROOT / "tests" / "dags" / "vendor_scan.py"
]
SCAN_PAGES = 40


@dataclass
class ClusterReport:
    token_cache: str
    states: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    workers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    worker_death: dict[str, Any] = field(default_factory=dict)
    logs: Path | None = None


def vendor_of(task_id: str) -> str:
    for vendor in VENDORS:
        if vendor in task_id:
            return vendor
    return "other"


def admin_postgres(sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def admin_postgres_databases() -> list[str]:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database")
            return [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()


def flush_redis(*dbs: int) -> None:
    import redis

    for db in dbs:
        redis.Redis.from_url(REDIS.format(db=db)).flushdb()


def run_cluster(
    root: Path, token_cache: str, *, kill_worker: bool = False, sandbox: Sandbox | None = None
) -> ClusterReport:
    """One deployment from start to stop; returns what the sandbox and the metadata database saw."""
    report = ClusterReport(token_cache=token_cache)
    db = f"vendorauth_cluster_{secrets.token_hex(4)}"
    own_sandbox = sandbox is None
    sandbox = sandbox or Sandbox(log_path=root / "sandbox.log").start()
    admin_postgres(f"CREATE DATABASE {db}")
    try:
        flush_redis(BROKER_DB, CACHE_DB)
        sandbox.reset()
        cache = REDIS.format(db=CACHE_DB) if token_cache == "redis" else token_cache
        env = {
            **sandbox.environment(token_cache=cache),
            "VENDORAUTH_DATA_DIR": str(root / "data"),
            "VENDORAUTH_SCAN_VENDORS": "kazi",
            "VENDORAUTH_SCAN_RETRIES": "2",
            # a dead worker's task is failed (and retried elsewhere) after 20 s without a heartbeat
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        }
        deployment = Deployment(
            root=root / "deployment",
            executor="CeleryExecutor",
            sql_alchemy_conn=POSTGRES.format(db=db),
            celery_broker=REDIS.format(db=BROKER_DB),
            workers=2,
            extra_env=env,
            dag_files=DAG_FILES,
        )
        report.logs = deployment.logs
        with deployment:
            runs = {
                dag_id: deployment.trigger(dag_id, f"cluster-{dag_id}")
                for dag_id in ("talent_pipeline", "vendor_fanout")
            }
            for dag_id, run_id in runs.items():
                report.states[dag_id] = deployment.wait_for_run(dag_id, run_id, timeout=420)
                for task_id, _, _, _state, host in deployment.task_tries(dag_id, run_id):
                    vendor = vendor_of(task_id)
                    report.tasks[vendor] += 1
                    report.workers[vendor].add(host or "?")
            report.stats = sandbox.stats()
            if kill_worker:
                report.worker_death = kill_a_worker_mid_scan(deployment, sandbox, root / "data")
    finally:
        if own_sandbox:
            sandbox.stop()
        admin_postgres(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    return report


def kill_a_worker_mid_scan(deployment: Deployment, sandbox: Sandbox, data: Path) -> dict[str, Any]:
    """SIGKILL the worker running a long Kazi scan; Airflow must retry it on the other one, resuming."""
    sandbox.configure(sizes={"kazi.expectations": SCAN_PAGES * 100})
    sandbox.add_fault(vendor="kazi", route="/tagging/v2/expectations", latency_ms=150)
    before = sandbox.api_requests("kazi")
    run_id = deployment.trigger("vendor_scan", "cluster-worker-death")
    deadline = time.monotonic() + 180
    victim = None
    while time.monotonic() < deadline and victim is None:
        if sandbox.api_requests("kazi") - before >= 12:
            hosts = [
                h
                for t, _, _, s, h in deployment.task_tries("vendor_scan", run_id)
                if t == "scan_kazi" and s == "running"
            ]
            victim = hosts[0] if hosts else None
        time.sleep(0.1)
    if victim is None:
        raise RuntimeError("the scan never got going on a worker")
    deployment.kill(victim, signal.SIGKILL)
    state = deployment.wait_for_run("vendor_scan", run_id, timeout=300)
    sandbox.clear_faults()
    tries = sorted((n, s, h) for t, _, n, s, h in deployment.task_tries("vendor_scan", run_id) if t == "scan_kazi")
    output = next(data.rglob("kazi.jsonl"), None)
    ids = [json.loads(line)["id"] for line in output.open()] if output else []
    return {
        "killed": victim,
        "state": state,
        "tries": tries,
        "records": len(ids),
        "unique": len(set(ids)),
        "expected": SCAN_PAGES * 100,
        "scan_requests": sandbox.api_requests("kazi") - before,
    }


def print_reports(reports: list[ClusterReport]) -> None:
    print(f"\n{'vendor':<16} {'tasks':>5}  {'workers':<18}", end="")
    for r in reports:
        print(f" {'API calls':>9} {'token requests (' + r.token_cache + ')':>28}", end="")
    print()
    for vendor in VENDORS:
        first = reports[0]
        print(
            f"{vendor:<16} {first.tasks.get(vendor, 0):>5}  {', '.join(sorted(first.workers.get(vendor, set()))):<18}",
            end="",
        )
        for r in reports:
            s = r.stats.get(vendor, {})
            print(f" {s.get('api_requests', 0):>9} {s.get('token_requests', 0):>28}", end="")
        print()
    for r in reports:
        print(f"DAG runs with token_cache={r.token_cache}: {r.states}")
        if r.worker_death:
            print(f"worker death: {r.worker_death}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kill-worker", action="store_true", help="also kill a worker mid-scan")
    args = parser.parse_args()
    root = ROOT / ".cluster" / time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    with Sandbox(log_path=root / "sandbox.log") as sandbox:
        print("Cluster run 1/2: token_cache=redis (two Celery workers, PostgreSQL, Redis broker) ...", flush=True)
        redis_run = run_cluster(root / "redis", "redis", kill_worker=args.kill_worker, sandbox=sandbox)
        print("Cluster run 2/2: token_cache=memory, for comparison ...", flush=True)
        memory_run = run_cluster(root / "memory", "memory", sandbox=sandbox)
    print_reports([redis_run, memory_run])
    print(f"\nLogs: {root}")
    ok = all(s == "success" for r in (redis_run, memory_run) for s in r.states.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
