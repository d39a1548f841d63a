"""Crash safety through real Airflow task retries: a scan task killed mid-scan (its process ends) is
retried by Airflow's scheduler and resumes from its last committed page (task_state_store): the output
has no duplicate and no gap. A real deployment (api-server, scheduler, dag-processor, triggerer,
LocalExecutor, SQLite) runs the DAG; the test only kills the process and reads the results.

Checkpoints are committed off the hot path (operators/checkpoints.py): the first page at once, then at
most every MIN_INTERVAL..MAX_INTERVAL seconds. So the bound is no longer "the 16 pages in flight": a
killed task fetches again the pages since its last commit. The test checks exactly that: the retry
starts from the committed page K the log names (K >= 1: resumed, not restarted), and the requests in
all are the killed try's plus the PAGES - K after K, nothing more."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import psutil
import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.harness.deployment import Deployment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: Long enough that the scan still runs when it is killed: it pages with the default concurrency="auto"
#: (up to Kazi's ceiling of 8 at once), so 120 pages of 250 ms take at least 3.75 s.
PAGES = 120
#: Requests seen before the kill: a restart would then need KILL_AFTER + PAGES requests in all.
KILL_AFTER = 30
RESUMED = re.compile(r"Resuming /tagging/v2/expectations from its last committed page: (\d+) pages")


def process_talking_to(port: int, exclude: set[int]) -> int | None:
    """The pid of the process holding an open connection to ``port`` (the task process)."""
    for conn in psutil.net_connections(kind="tcp"):
        if (
            conn.raddr
            and conn.raddr.port == port
            and conn.status == psutil.CONN_ESTABLISHED
            and conn.pid not in exclude
        ):
            return conn.pid
    return None


def kill_mid_scan(sandbox: Sandbox, vendor: str, after_requests: int, timeout: float = 180) -> int:
    """SIGKILL the task process once ``after_requests`` were seen; the API requests made by then (the
    pages in flight included: the sandbox counts a request when it arrives)."""
    port = int(sandbox.url.rsplit(":", 1)[1])
    exclude = {os.getpid(), sandbox.process.pid if sandbox.process else -1}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sandbox.api_requests(vendor) >= after_requests:
            pid = process_talking_to(port, exclude)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)  # requests already on the wire reach the sandbox's counter
                return sandbox.api_requests(vendor)
        time.sleep(0.05)
    raise TimeoutError("the scan never reached the point where it should be killed")


@pytest.mark.timeout(600)  # a deployment, a SIGKILLed task and its retry: its own wait allows 4 min after the start
def test_a_killed_scan_task_is_retried_by_airflow_and_resumes_from_its_last_page(
    vendor_sandbox: Sandbox, sandbox_connections: dict, tmp_path: Path
) -> None:
    vendor_sandbox.configure(sizes={"kazi.expectations": PAGES * 100})
    vendor_sandbox.add_fault(vendor="kazi", route="/tagging/v2/expectations", latency_ms=250)
    data = tmp_path / "data"
    env = {
        **sandbox_connections,
        "VENDORAUTH_DATA_DIR": str(data),
        "VENDORAUTH_SCAN_VENDORS": "kazi",
        "VENDORAUTH_SCAN_RETRIES": "2",
    }
    deployment = Deployment(
        root=tmp_path / "deployment", extra_env=env, dag_files=[ROOT / "tests" / "dags" / "vendor_scan.py"]
    )
    with deployment:
        deployment.trigger("vendor_scan", "crash-test")
        at_kill = kill_mid_scan(vendor_sandbox, "kazi", after_requests=KILL_AFTER)
        state = deployment.wait_for_run("vendor_scan", "crash-test", timeout=240)
        tries = deployment.task_tries("vendor_scan", "crash-test")
    assert state == "success", f"logs: {deployment.logs}"
    assert sorted((t[2], t[3]) for t in tries if t[0] == "scan_kazi") == [(1, "failed"), (2, "success")]
    (output,) = data.rglob("kazi.jsonl")
    ids = [json.loads(line)["id"] for line in output.open()]
    assert len(ids) == PAGES * 100 and len(set(ids)) == PAGES * 100  # no gap, no duplicate
    assert ids == sorted(ids)
    # resumed, not restarted: the retry started from the committed page K and fetched only what came after
    logs = "".join(p.read_text(errors="replace") for p in (deployment.logs / "tasks").rglob("*") if p.is_file())
    committed = [int(k) for k in RESUMED.findall(logs)]
    assert committed and committed[0] >= 1, "the retry did not resume from a committed page"
    fetched_again = at_kill - committed[0]
    assert vendor_sandbox.api_requests("kazi") == at_kill + PAGES - committed[0], (at_kill, committed)
    print(f"killed after {at_kill} page requests; resumed from page {committed[0]}: {fetched_again} fetched again")
