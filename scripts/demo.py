"""`make demo`: the sandbox vendors + the five example DAGs of ``DAGS`` through real Airflow (`airflow dags test`).

Sets up its own AIRFLOW_HOME under .demo/ with SQLite (nothing for the user to configure), starts the
sandbox, points a connection of each vendor at it through AIRFLOW_CONN_*, runs each of those DAGs (the other
four run in `make test`: mutual TLS, a workload token file, DPoP, a cluster's fan-out; README),
prints per vendor the token requests and API calls the sandbox saw and the records written, stops
the sandbox, and exits non-zero if any DAG failed. `--standalone` runs `airflow standalone` instead,
with the same sandbox and connections, to click through the UI and press Test on a connection.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflow_vendorauth.sandbox.client import Sandbox

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
DAGS = ["talent_pipeline", "keyavi_payloads", "kayzen_campaigns", "clazar_listings", "oauth2_items"]
LOGICAL_DATE = "2026-11-24"
VENDORS = ["smartrecruiters", "kazi", "keyavi", "kayzen", "clazar", "oauth2"]


def airflow_environment(sandbox: Sandbox, token_cache: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(sandbox.environment(token_cache=token_cache))
    env.update(
        {
            "AIRFLOW_HOME": str(DEMO / "airflow_home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags_examples"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR": str(DEMO / "token-cache"),
            "VENDORAUTH_DATA_DIR": str(DEMO / "data"),
            # `airflow standalone` starts its components as `airflow ...` found on PATH
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
    )
    return env


def airflow(args: list[str], env: dict[str, str], log: Path) -> int:
    with log.open("w") as out:
        return subprocess.call(
            [str(Path(sys.executable).parent / "airflow"), *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def run_dag(dag_id: str, env: dict[str, str]) -> bool:
    log = DEMO / "logs" / f"{dag_id}.log"
    started = time.monotonic()
    code = airflow(["dags", "test", dag_id, LOGICAL_DATE], env, log)
    finished = [line for line in log.read_text().splitlines() if "DagRun Finished" in line]
    ok = code == 0 and bool(finished) and "state=success" in finished[-1]
    print(
        f"  {dag_id:<18} {'success' if ok else 'FAILED':<8} {time.monotonic() - started:5.1f} s   log: {log.relative_to(ROOT)}"
    )
    return ok


def records_by_vendor() -> dict[str, list[tuple[Path, int]]]:
    day = DEMO / "data" / LOGICAL_DATE
    found: dict[str, list[tuple[Path, int]]] = {}
    for path in sorted(day.rglob("*.jsonl")):
        with path.open("rb") as handle:
            found.setdefault(path.parent.name, []).append((path, sum(1 for _ in handle)))
    return found


def xcom_records(env: dict[str, str]) -> dict[str, int]:
    """Records the demo's runs returned through XCom (a list of records, not a file's summary), per vendor.

    Read from the demo's own SQLite metadata database: each task's ``conn_id`` from its serialized DAG,
    the connection's type from its ``AIRFLOW_CONN_*`` variable."""
    conn_types = {
        name.removeprefix("AIRFLOW_CONN_").lower(): json.loads(value)["conn_type"]
        for name, value in env.items()
        if name.startswith("AIRFLOW_CONN_")
    }
    counts: dict[str, int] = {}
    with contextlib.closing(sqlite3.connect(DEMO / "airflow_home" / "airflow.db")) as db:
        conn_of: dict[tuple[str, str], str] = {}
        for dag_id, data in db.execute("SELECT dag_id, data FROM serialized_dag WHERE data IS NOT NULL"):
            for task in _loaded(data).get("dag", {}).get("tasks", []):
                fields = task.get("__var", task)
                if isinstance(fields.get("conn_id"), str):
                    conn_of[(dag_id, fields["task_id"])] = fields["conn_id"]
        rows = db.execute(  # the latest run of each DAG for the demo's date (a rerun makes another run)
            "SELECT x.dag_id, x.task_id, x.value FROM xcom x JOIN dag_run r ON r.dag_id = x.dag_id AND r.run_id = x.run_id"
            " WHERE x.key = 'return_value' AND r.id = (SELECT max(id) FROM dag_run WHERE dag_id = r.dag_id"
            " AND logical_date LIKE ?)",
            (f"{LOGICAL_DATE}%",),
        )
        for dag_id, task_id, value in rows:
            records = _loaded(value)
            vendor = conn_types.get(conn_of.get((dag_id, task_id), ""))
            if vendor and isinstance(records, list):
                counts[vendor] = counts.get(vendor, 0) + len(records)
    return counts


def _loaded(value: Any) -> Any:
    """A JSON column's value (SQLite may hand it back as text, or as JSON text inside a JSON string)."""
    while isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return value


def print_table(sandbox: Sandbox, env: dict[str, str]) -> None:
    stats = sandbox.stats()
    outputs = records_by_vendor()
    in_xcom = xcom_records(env)
    print(f"\n{'vendor':<16} {'token requests':>14} {'API calls':>10} {'records':>8}  output files")
    for vendor in VENDORS:
        files = outputs.get(vendor, [])
        names = ", ".join(str(p.relative_to(ROOT)) for p, _ in files) or "-"
        if in_xcom.get(vendor):
            names += f" (+ {in_xcom[vendor]} records through XCom)"
        s = stats.get(vendor, {})
        records = sum(n for _, n in files) + in_xcom.get(vendor, 0)
        print(f"{vendor:<16} {s.get('token_requests', 0):>14} {s.get('api_requests', 0):>10} {records:>8}  {names}")


def run_standalone(env: dict[str, str]) -> int:
    """`airflow standalone` in a process group of its own, stopped whole however this script ends."""
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "standalone"], env=env, start_new_session=True
    )
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
                break


def main() -> int:
    # a SIGTERM (a supervisor, `timeout`) unwinds like Ctrl-C: the sandbox and Airflow are stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--standalone", action="store_true", help="run `airflow standalone` with the sandbox")
    parser.add_argument(
        "--token-cache", default="file", help="token_cache of the connections (memory, file, redis://...)"
    )
    args = parser.parse_args()

    shutil.rmtree(DEMO / "data", ignore_errors=True)
    (DEMO / "logs").mkdir(parents=True, exist_ok=True)
    with Sandbox(log_path=DEMO / "logs" / "sandbox.log") as sandbox:
        env = airflow_environment(sandbox, args.token_cache)
        print(f"Sandbox vendors at {sandbox.url}; AIRFLOW_HOME={env['AIRFLOW_HOME']} (SQLite)")
        if airflow(["db", "migrate"], env, DEMO / "logs" / "db-migrate.log") != 0:
            print("airflow db migrate failed: see .demo/logs/db-migrate.log")
            return 1
        if args.standalone:
            print("Starting `airflow standalone` (Ctrl-C to stop); the connections are set through AIRFLOW_CONN_*.")
            return run_standalone(env)
        print(f"Running the example DAGs for {LOGICAL_DATE} with `airflow dags test`:")
        results = [run_dag(dag_id, env) for dag_id in DAGS]
        print_table(sandbox, env)
    if not all(results):
        print(f"\nFAILED: {sum(not r for r in results)} DAG(s) failed; their logs are listed above.")
        return 1
    print(f"\nAll {len(DAGS)} DAGs succeeded. Outputs under {(DEMO / 'data').relative_to(ROOT)}/.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
