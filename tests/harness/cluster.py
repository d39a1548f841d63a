"""`make cluster-demo`: the provider on a real CeleryExecutor deployment on this machine.

Metadata database in PostgreSQL on 127.0.0.1:5432 (a database of its own, created and dropped here),
Redis on 127.0.0.1:6379 as the Celery broker and as the connections' token cache (under key prefixes
and a queue of this run's own: nothing else in those databases is read, flushed or deleted, and two runs
at once do not share a queue), the sandbox, and
Airflow's api-server, scheduler, dag-processor, triggerer and TWO `airflow celery worker` processes
named worker1 and worker2. It runs `talent_pipeline` and `vendor_fanout` (20 mapped tasks per vendor),
once with `token_cache=redis://` and once with the in-memory cache, and prints per vendor the tasks
run, the workers they ran on, the API calls and the token requests the sandbox saw, and a quota row: in the
Redis run SmartRecruiters allows 1 request a second and 1 at once per credential, the connection declares
it, and both workers' mapped tasks share it through Redis (0 answers 429 expected). `--kill-worker`
also SIGKILLs the worker running a long Kazi scan and checks that Airflow retries it on the other
worker, resuming from the last committed page; the worker dies as a lost host would, with every task
process it started (Airflow puts each task in a process group of its own). Every process is stopped by
its own PID, also when a step fails; the logs folder is named at the end. The exit status is that of
every claim printed (see :func:`claims`), not only of the DAG runs.

`--sentinel` (``make cluster-demo CLUSTER_DEMO_ARGS=--sentinel``) puts the token cache of the Redis run on a
Sentinel group of its own (a primary, a replica, three sentinels on free ports: ``tests/redis_topologies.py``;
the Celery broker stays on 127.0.0.1:6379) and SIGKILLs its primary while the DAGs run: the runs must still
succeed, and the token requests and the failover's length are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_vendorauth.sandbox.client import Sandbox
from tests.harness.deployment import ROOT, Deployment

if TYPE_CHECKING:
    from tests.redis_topologies import SentinelGroup

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
REDIS = "redis://127.0.0.1:6379/{db}"
BROKER_DB, CACHE_DB = 10, 11
VENDORS = ["smartrecruiters", "kazi", "keyavi", "kayzen", "clazar"]
#: The quota row: SmartRecruiters allowing 1 request a second and 1 at once per credential (far tighter than
#: its real 10/s and 8, so two workers' mapped tasks cross it unless they share it), declared on its connection.
QUOTA_VENDOR, QUOTA_CONN = "smartrecruiters", "AIRFLOW_CONN_SMARTRECRUITERS_DEFAULT"
QUOTA: dict[str, Any] = {"rates": ["1/second"], "max_in_flight": 1}
DAG_FILES = [ROOT / "dags_examples" / n for n in ("_common.py", "talent_pipeline.py", "vendor_fanout.py")] + [
    ROOT / "tests" / "dags" / "vendor_scan.py"
]
#: The worker-death scan: long enough to be killed mid-way although it pages with concurrency="auto" (up to
#: Kazi's ceiling of 8 at once: 120 pages of 250 ms take at least 3.75 s).
SCAN_PAGES = 120
#: Requests seen before the worker dies: a restart would then need KILL_AFTER + SCAN_PAGES in all.
KILL_AFTER = 30
#: The retry's log line naming the page it resumed from (checkpoints are committed every second or few,
#: not after every page: a dead task fetches again the pages since its last commit, see
#: airflow_vendorauth/operators/checkpoints.py).
RESUMED = re.compile(r"Resuming /tagging/v2/expectations from its last committed page: (\d+) pages")


@dataclass
class ClusterReport:
    token_cache: str
    states: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    workers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    worker_death: dict[str, Any] = field(default_factory=dict)
    logs: Path | None = None
    redis_keys_deleted: int = 0
    #: The sandbox's quota rules after the run, with their counters (the Redis run's quota row).
    quota: list[dict[str, Any]] = field(default_factory=list)
    #: With --sentinel: (SIGKILL of the primary, replica promoted) in epoch seconds.
    failover: tuple[float, float] | None = None
    database: str = ""  # this run's own metadata database, dropped when the run ends


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


def delete_our_keys(run: str, environment: dict[str, str], *, cache_too: bool = True) -> int:
    """Delete what this run wrote to Redis, and only that: the broker's keys (under the run's prefix) and
    the token cache entries of its connections (by their credential fingerprints)."""
    import redis

    from airflow_vendorauth.auth.redis_cache import credential_key as redis_key
    from airflow_vendorauth.exceptions import ConnectionConfigError
    from airflow_vendorauth.hooks.base import credential_key
    from airflow_vendorauth.hooks.wiring import quota_key
    from airflow_vendorauth.quota.redis_store import quota_keys
    from airflow_vendorauth.vendors import VENDORS
    from airflow_vendorauth.vendors.profile import RawConnection

    broker = redis.Redis.from_url(REDIS.format(db=BROKER_DB))
    doomed = list(broker.scan_iter(f"{run}:*"))
    deleted = broker.delete(*doomed) if doomed else 0
    cache = redis.Redis.from_url(REDIS.format(db=CACHE_DB))
    for name, value in environment.items() if cache_too else ():
        if name.startswith("AIRFLOW_CONN_"):
            conn = json.loads(value)
            raw = RawConnection(name, conn["conn_type"], conn["host"], conn["login"], conn["password"], None, conn["extra"])
            profile = VENDORS[conn["conn_type"]]
            try:
                key = credential_key(profile, profile.resolve(raw))
            except ConnectionConfigError:  # e.g. workload identity without its token file: it fetched nothing
                continue
            deleted += cache.delete(*(redis_key(key, kind) for kind in ("token", "lock", "spending", "chain")))
            deleted += cache.delete(*quota_keys(quota_key(profile.resolve(raw))))  # every call's lease, the rates' state
    return int(deleted)


def run_cluster(
    root: Path,
    token_cache: str,
    *,
    kill_worker: bool = False,
    sandbox: Sandbox | None = None,
    sentinel: SentinelGroup | None = None,
) -> ClusterReport:
    """One deployment from start to stop; returns what the sandbox and the metadata database saw. With
    ``sentinel`` the token cache is that group, whose primary is killed once while the DAGs run."""
    report = ClusterReport(token_cache=token_cache)
    run = f"vendorauth-cluster-{secrets.token_hex(4)}"
    db = run.replace("-", "_")
    report.database = db
    own_sandbox = sandbox is None
    sandbox = sandbox or Sandbox(log_path=root / "sandbox.log").start()
    admin_postgres(f"CREATE DATABASE {db}")
    cache = sentinel.url if sentinel else REDIS.format(db=CACHE_DB) if token_cache == "redis" else token_cache
    connections = sandbox.environment(token_cache=cache)
    if token_cache == "redis":  # the quota row: the vendor's limits declared, shared by both workers
        quota_connection = json.loads(connections[QUOTA_CONN])
        quota_connection["extra"] |= {"rate_limit": QUOTA["rates"], "max_in_flight": QUOTA["max_in_flight"]}
        connections[QUOTA_CONN] = json.dumps(quota_connection)
    try:
        sandbox.reset()
        if token_cache == "redis":
            sandbox.add_quota(vendor=QUOTA_VENDOR, **QUOTA)
        env = {
            **connections,
            # this run's own queue and broker keys: two runs at once never take each other's tasks
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": run,
            "AIRFLOW__CELERY__DEFAULT_QUEUE": run,
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": f"{run}:",
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
            if sentinel is not None:  # once the tasks are calling: the primary dies
                wait_until = time.monotonic() + 300
                while sum(sandbox.api_requests(v) for v in VENDORS) < 20 and time.monotonic() < wait_until:
                    time.sleep(0.2)
                report.failover = sentinel.fail_over()
            for dag_id, run_id in runs.items():
                report.states[dag_id] = deployment.wait_for_run(dag_id, run_id, timeout=420)
                for task_id, _, _, _state, host in deployment.task_tries(dag_id, run_id):
                    vendor = vendor_of(task_id)
                    report.tasks[vendor] += 1
                    report.workers[vendor].add(host or "?")
            report.stats = sandbox.stats()
            report.quota = sandbox.quotas()
            if kill_worker:
                report.worker_death = kill_a_worker_mid_scan(deployment, sandbox, root / "data")
    finally:
        if own_sandbox:
            sandbox.stop()
        admin_postgres(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        report.redis_keys_deleted = delete_our_keys(run, connections, cache_too=sentinel is None)
    return report


def kill_a_worker_mid_scan(deployment: Deployment, sandbox: Sandbox, data: Path) -> dict[str, Any]:
    """SIGKILL the worker running a long Kazi scan; Airflow must retry it on the other one, resuming."""
    sandbox.configure(sizes={"kazi.expectations": SCAN_PAGES * 100})
    sandbox.add_fault(vendor="kazi", route="/tagging/v2/expectations", latency_ms=250)
    before = sandbox.api_requests("kazi")
    run_id = deployment.trigger("vendor_scan", "cluster-worker-death")
    deadline = time.monotonic() + 180
    victim = None
    while time.monotonic() < deadline and victim is None:
        if sandbox.api_requests("kazi") - before >= KILL_AFTER:
            hosts = [
                h
                for t, _, _, s, h in deployment.task_tries("vendor_scan", run_id)
                if t == "scan_kazi" and s == "running"
            ]
            victim = hosts[0] if hosts else None
        time.sleep(0.1)
    if victim is None:
        raise RuntimeError("the scan never got going on a worker")
    tree = deployment.process_tree(victim)
    deployment.kill_tree(victim)  # a lost host: the worker and every task process it started
    time.sleep(0.5)  # requests already on the wire reach the sandbox's counter
    at_kill = sandbox.api_requests("kazi") - before
    survivors = alive(tree)
    state = deployment.wait_for_run("vendor_scan", run_id, timeout=300)
    sandbox.clear_faults()
    tries = sorted((n, s, h) for t, _, n, s, h in deployment.task_tries("vendor_scan", run_id) if t == "scan_kazi")
    output = next(data.rglob("kazi.jsonl"), None)
    ids = [json.loads(line)["id"] for line in output.open()] if output else []
    logs = "".join(p.read_text(errors="replace") for p in (deployment.logs / "tasks").rglob("*") if p.is_file())
    resumed_from = [int(k) for k in RESUMED.findall(logs)]
    return {
        "killed": victim,
        "state": state,
        "tries": tries,
        "records": len(ids),
        "unique": len(set(ids)),
        "expected": SCAN_PAGES * 100,
        "scan_requests": sandbox.api_requests("kazi") - before,
        "requests_at_kill": at_kill,
        "resumed_from_page": resumed_from[0] if resumed_from else 0,
        "survivors": survivors,
    }


def alive(processes: list[Any]) -> int:
    """How many of ``processes`` (psutil) still run (zombies, which only wait for their parent, are dead)."""
    import psutil

    count = 0
    for process in processes:
        try:
            count += process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            continue
    return count


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
        for rule in r.quota:
            print(f"quota ({rule['vendor']}: {', '.join(rule['rates'])}, {rule['max_in_flight']} at once, declared, "
                  f"shared through {r.token_cache}): {rule['served']} calls on "
                  f"{', '.join(sorted(r.workers.get(rule['vendor'], set())))}, "
                  f"{rule['refused_rate'] + rule['refused_at_once']} answered 429, at most {rule['peak_in_flight']} at once")
    for r in reports:
        print(f"DAG runs with token_cache={r.token_cache}: {r.states}")
        if r.worker_death:
            print(f"worker death: {r.worker_death}")
        if r.failover:
            print(f"Sentinel failover during the run: primary SIGKILLed, replica promoted {r.failover[1] - r.failover[0]:.1f} s later")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kill-worker", action="store_true", help="also kill a worker mid-scan")
    parser.add_argument("--sentinel", action="store_true",
                        help="token cache on a Sentinel group of its own, its primary killed while the DAGs run")
    args = parser.parse_args()
    root = ROOT / ".cluster" / time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    with Sandbox(log_path=root / "sandbox.log") as sandbox:
        if args.sentinel:
            from tests.redis_topologies import SentinelGroup

            print("Cluster run 1/2: token_cache=redis+sentinel (a Sentinel group; its primary killed mid-run) ...",
                  flush=True)
            with SentinelGroup() as group:
                redis_run = run_cluster(root / "redis", "redis+sentinel", kill_worker=args.kill_worker,
                                        sandbox=sandbox, sentinel=group)
        else:
            print("Cluster run 1/2: token_cache=redis (two Celery workers, PostgreSQL, Redis broker) ...", flush=True)
            redis_run = run_cluster(root / "redis", "redis", kill_worker=args.kill_worker, sandbox=sandbox)
        print("Cluster run 2/2: token_cache=memory, for comparison ...", flush=True)
        memory_run = run_cluster(root / "memory", "memory", sandbox=sandbox)
    print_reports([redis_run, memory_run])
    print(f"\nLogs: {root}")
    failed = claims(redis_run, memory_run, kill_worker=args.kill_worker)
    for claim in failed:
        print(f"CLAIM FAILED: {claim}")
    print("Every claim held." if not failed else f"{len(failed)} claim(s) failed.")
    return 1 if failed else 0


def claims(redis_run: ClusterReport, memory_run: ClusterReport, *, kill_worker: bool) -> list[str]:
    """Every claim the demo prints, checked: the failed ones (empty when all hold)."""
    failed = [f"{dag} ended {state} ({r.token_cache})" for r in (redis_run, memory_run)
              for dag, state in r.states.items() if state != "success"]
    for vendor in VENDORS:
        shared = redis_run.stats.get(vendor, {}).get("token_requests", 0)
        alone = memory_run.stats.get(vendor, {}).get("token_requests", 0)
        if redis_run.failover is not None:  # a task that misses Redis mid-failover fetches its own token
            if shared < 1:
                failed.append(f"{vendor}: no token request seen")
        elif shared != 1:
            failed.append(f"{vendor}: {shared} token requests with Redis, not 1 for the whole cluster")
        if alone <= 1:
            failed.append(f"{vendor}: {alone} token request(s) with the memory cache: the comparison shows nothing")
    for rule in redis_run.quota:
        refused = rule["refused_rate"] + rule["refused_at_once"]
        if refused or not rule["served"]:
            failed.append(f"the quota row: {rule['served']} calls served, {refused} answered 429 (0 expected)")
    if set().union(*redis_run.workers.values()) != {"worker1", "worker2"}:
        failed.append(f"the work did not spread over both workers: {dict(redis_run.workers)}")
    if kill_worker:
        death = redis_run.worker_death
        if death.get("state") != "success":
            failed.append(f"the scan whose worker died ended {death.get('state')}")
        if not (death.get("records") == death.get("unique") == death.get("expected")):
            failed.append(f"after the worker's death: {death.get('records')} records, {death.get('unique')} unique, "
                          f"{death.get('expected')} expected")
        if death.get("survivors"):
            failed.append(f"{death['survivors']} process(es) of the killed worker lived on")
        resumed_from = death.get("resumed_from_page", 0)
        if resumed_from < 1:
            failed.append("the retried scan did not resume from a committed page: it started over")
        elif death.get("scan_requests") != death.get("requests_at_kill", 0) + SCAN_PAGES - resumed_from:
            failed.append(f"the retried scan made {death.get('scan_requests')} page requests: the dead try's "
                          f"{death.get('requests_at_kill')} + the {SCAN_PAGES - resumed_from} after page {resumed_from} expected")
        tries = death.get("tries", [])
        if len(tries) != 2 or tries[0][2] != death.get("killed") or tries[1][2] == death.get("killed"):
            failed.append(f"the scan was not retried on the other worker: {tries}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
