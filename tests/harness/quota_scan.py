"""Task processes scanning one API at once under one credential's quota: the workload of
``tests/integration/test_quotas.py`` and ``benchmarks/quotas.py``.

``run_round`` starts ``processes`` Python processes (``python -m tests.harness.quota_scan``); each builds
its hook, takes its token, waits for the common start time, scans ``/items`` of the sandbox's generic API
and prints one JSON line: records (and whether they are every one, once, in order), seconds, retries, the
quota's waits, or the error that ended it. Ways to scan (``how``):

- ``hook``: ``OAuth2Hook.paginate`` with ``concurrency="auto"`` (what ``VendorApiOperator`` runs);
- ``bridge``: page after page through Airflow's ``HttpHook`` with ``vendor_auth`` (``HttpOperator``'s way),
  retrying a 429 after its ``Retry-After`` as a user's ``retry_args`` would;
- ``operator``: ``VendorApiOperator`` (``concurrency="auto"``, checkpoints) run by ``dag.test()`` of
  ``benchmarks/bench_dags/quota_operator.py``, each process with its own copy of a migrated SQLite
  metadata database;
- ``hook-unlimited``, ``bridge-unlimited``, ``operator-unlimited``: the same with the quota limiter taken
  out (the provider before issue 34).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONN_ID = "oauth2_default"
OPERATOR_DAG = ROOT / "benchmarks" / "bench_dags" / "quota_operator.py"
HTTP_CONN_ID = "http_items"


@dataclass
class Round:
    """What a round of processes did, and what the sandbox saw."""

    results: list[dict[str, Any]]
    seconds: float
    api_requests: int
    answered_429: int
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [r.get("error") or "no answer" for r in self.results if not r.get("complete")]


def scan(how: str, records: int) -> dict[str, Any]:
    if how.startswith("operator"):
        return operator_scan(how, records)
    from airflow_vendorauth.hooks import quota
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

    if how.endswith("-unlimited"):  # every hook of this process is built without its limiter
        quota.limiter_for = lambda *args, **kwargs: None  # type: ignore[assignment,return-value]
    hook = OAuth2Hook(CONN_ID)
    hook.get_token()  # before the common start: the round measures the scan, not Airflow's imports
    if how.startswith("bridge"):
        return bridge_scan(hook, records)
    wait_for_start()
    started = time.monotonic()
    ids = [r["id"] for r in hook.paginate("/items", concurrency="auto")]
    limiter = hook.client.limiter
    return {
        "records": len(ids),
        "complete": ids == [f"ite-{i:06d}" for i in range(records)],
        "seconds": time.monotonic() - started,
        "retries": hook.api_retries,
        "quota_waits": limiter.waits if limiter else 0,
        "ended_at": time.time(),
    }


def operator_scan(how: str, records: int) -> dict[str, Any]:
    """``dag.test()`` of the operator's DAG in this process, with its own copy of the metadata database."""
    import shutil

    home = tempfile.mkdtemp(prefix="vendorauth-quota-home-")
    shutil.copy(Path(os.environ["QUOTA_AIRFLOW_TEMPLATE"]) / "airflow.db", home)
    work = Path(home)
    os.environ |= {"AIRFLOW_HOME": home, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
                   "AIRFLOW__CORE__DAGS_FOLDER": str(OPERATOR_DAG.parent), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                   "QUOTA_OUTPUT": str(work / "out.jsonl"), "QUOTA_RESULT": str(work / "result.json")}
    if how.endswith("-unlimited"):
        from airflow_vendorauth.hooks import quota

        quota.limiter_for = lambda *args, **kwargs: None  # type: ignore[assignment,return-value]
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1, 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    bag = DagBag(dag_folder=str(OPERATOR_DAG))
    assert not bag.import_errors, bag.import_errors
    run = bag.get_dag("quota_operator").test()
    result = json.loads((work / "result.json").read_text()) if (work / "result.json").exists() else {}
    ids = [json.loads(line)["id"] for line in (work / "out.jsonl").open()] if (work / "out.jsonl").exists() else []
    complete = run.state == "success" and ids == [f"ite-{i:06d}" for i in range(records)]
    return {"records": len(ids), "complete": complete, **result,
            **({} if complete else {"error": f"the DAG run ended {run.state}"})}


def bridge_scan(hook: Any, records: int) -> dict[str, Any]:
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_vendorauth.http import vendor_auth

    http = HttpHook(method="GET", http_conn_id=HTTP_CONN_ID, auth_type=vendor_auth(CONN_ID))
    per_page, ids, retries, page = 100, [], 0, 1
    wait_for_start()
    started = time.monotonic()
    while True:
        response = http.run("items", data={"page": page, "per_page": per_page}, extra_options={"check_response": False})
        if response.status_code == 429:
            retries += 1
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        response.raise_for_status()
        items = response.json()["items"]
        ids += [r["id"] for r in items]
        if len(items) < per_page or len(ids) >= records:
            break
        page += 1
    return {
        "records": len(ids),
        "complete": ids == [f"ite-{i:06d}" for i in range(records)],
        "seconds": time.monotonic() - started,
        "retries": retries,
        "ended_at": time.time(),
    }


def wait_for_start() -> None:
    """Say this process is ready, then wait for the round's go (every process ready: imports paid)."""
    rendezvous = Path(os.environ["QUOTA_SCAN_DIR"])
    (rendezvous / f"ready-{os.getpid()}").touch()
    while not (rendezvous / "go").exists():
        time.sleep(0.01)


def run_round(
    sandbox: Any,
    *,
    processes: int,
    how: str,
    records: int,
    extra: dict[str, Any],
    token_cache: str,
    env: dict[str, str] | None = None,
    during: Any = None,
) -> Round:
    """``processes`` scans at once; ``during(seconds_since_start)`` is called every 0.1 s while they run (a
    fault to inject: Redis killed mid-run)."""
    from cryptography.fernet import Fernet

    from airflow_vendorauth.sandbox.connections import oauth2_connection

    conn = oauth2_connection(sandbox.url, token_cache=token_cache, **extra)
    conn["extra"]["pagination"]["page_size"] = 100
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "AIRFLOW_CONN_" + CONN_ID.upper(): json.dumps(conn),
        "AIRFLOW_CONN_" + HTTP_CONN_ID.upper(): json.dumps({"conn_type": "http", "host": f"{sandbox.url}/oauth2-api"}),
        "AIRFLOW__CORE__FERNET_KEY": os.environ.get("AIRFLOW__CORE__FERNET_KEY") or Fernet.generate_key().decode(),
        "AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR": tempfile.mkdtemp(prefix="vendorauth-quota-"),
        "QUOTA_SCAN_DIR": tempfile.mkdtemp(prefix="vendorauth-quota-round-"),
        **(env or {}),
    }
    if how.startswith("operator"):
        environment["QUOTA_AIRFLOW_TEMPLATE"] = migrated_home()
    before = sandbox.stats().get("oauth2", {})
    logs = Path(environment["QUOTA_SCAN_DIR"])
    outputs = [(open(logs / f"out-{n}.log", "w+"), open(logs / f"err-{n}.log", "w+")) for n in range(processes)]
    children = [  # into files, not pipes: a task's log must never fill a pipe nobody reads yet
        subprocess.Popen(
            [sys.executable, "-m", "tests.harness.quota_scan", how, str(records)],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=err,
            text=True,
        )
        for out, err in outputs
    ]
    rendezvous = Path(environment["QUOTA_SCAN_DIR"])
    deadline = time.monotonic() + 180
    while len(list(rendezvous.glob("ready-*"))) < processes and time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            break  # one died before the start: the round reports it
        time.sleep(0.02)
    (rendezvous / "go").touch()
    go, start_at = time.time(), time.monotonic()
    while any(child.poll() is None for child in children):
        if during is not None:
            during(time.monotonic() - start_at)
        time.sleep(0.1)
    results = []
    for child, files in zip(children, outputs, strict=True):
        child.wait()
        for f in files:
            f.seek(0)
        out, err = (f.read() for f in files)
        for f in files:
            f.close()
        lines = [line for line in out.splitlines() if line.startswith('{"')]
        results.append(json.loads(lines[-1]) if lines else {"error": err[-1500:] or f"exit {child.returncode}"})
    # from the go to the end of the last scan (a process's exit, Airflow's teardown, is not the scan's)
    ends = [r["ended_at"] for r in results if "ended_at" in r]
    seconds = max(ends) - go if ends else time.monotonic() - start_at
    after = sandbox.stats().get("oauth2", {})

    def delta(name: str) -> int:
        return int(after.get(name, 0)) - int(before.get(name, 0))

    return Round(results, seconds, delta("api_requests"), delta("status_429"),
                 {k: delta(k) for k in after if k.startswith(("quota_", "status_"))})


_template: list[str] = []


def migrated_home() -> str:
    """An AIRFLOW_HOME with a migrated SQLite database, made once per process: each operator process
    copies it (six dag.test() at once on one SQLite file would wait on its lock)."""
    if not _template:
        home = tempfile.mkdtemp(prefix="vendorauth-quota-template-")
        env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True, env=env)
        _template.append(home)
    return _template[0]


def main() -> None:
    how, records = sys.argv[1], int(sys.argv[2])
    try:
        print(json.dumps(scan(how, records)), flush=True)
    except Exception as exc:  # noqa: BLE001 - the round reports it
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "ended_at": time.time()}), flush=True)
    sys.stdout.flush()
    os._exit(0)  # the scan is over: no need to wait for Airflow's and the pools' teardown


if __name__ == "__main__":
    main()
