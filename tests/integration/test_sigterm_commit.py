"""A scan told to stop commits what it wrote: Airflow's SIGTERM to a task process mid-scan, then its retry.

The task process is a real one: ``dag.test()`` of tests/dags/stopped_scan.py in a process of its own,
which runs the task through Airflow's task runner (``task_runner.run``: its SIGTERM handler, ``_on_term``,
calls the operator's ``on_kill``; the same handler as in a task process under a worker's supervisor),
with the real ``task_state_store`` (the task API, the metadata database) and the sandbox's Kazi API at
LATENCY_MS a page. The test sends SIGTERM to that process once STOP_AFTER pages were requested.

Checkpoints are committed off the hot path at most every MIN_INTERVAL..MAX_INTERVAL seconds
(operators/checkpoints.py); the child stretches both to 10 minutes, so during the scan only its first page
is committed and whatever the store holds past page 1 when the try ends was committed *because the try was
stopped*. The test then reads, between the stopped try and its retry (STOP_RETRY_DELAY apart), the stored
checkpoint and the ``.partial`` output: the checkpoint covers every page in the file. The retry resumes
from it and asks the API for exactly the pages that remained: nothing written before the stop is fetched
again, and every record is in the final output exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_vendorauth.sandbox.client import Sandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAG_ID, TASK_ID, KEY = "stopped_scan", "scan", "vendorauth_checkpoint"
#: Kazi's pages hold 100 records; one page at a time (concurrency=1), LATENCY_MS each.
PAGES, PAGE_SIZE, LATENCY_MS = 120, 100, 60
#: Page requests before the SIGTERM: far past the first (and, here, only) interval commit, on page 1.
STOP_AFTER = 30
#: Seconds between the stopped try and its retry, in which the test reads the checkpoint and the output.
RETRY_DELAY = 6
#: The task process: dag.test() with the commit intervals stretched (the final commit is then the only one
#: that can hold more than the first page).
DAG_TEST = """
import os, sys
import pendulum
from airflow_vendorauth.operators import checkpoints
checkpoints.MIN_INTERVAL = checkpoints.MAX_INTERVAL = 600.0
from tests.integration.conftest import dagbag

dag_id = os.environ.get("STOP_DAG", "stopped_scan")
bag = dagbag(dag_folder=os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], dag_id + ".py"))
run = bag.get_dag(dag_id).test(logical_date=pendulum.now("UTC"))
print("dag.test() ended:", run.state, run.run_id, flush=True)
"""
STOPPED = re.compile(r"stopped after (\d+) pages: (\d+) records are in")
RESUMED = re.compile(r"Resuming /tagging/v2/expectations from its last committed page: (\d+) pages, (\d+) records")


def query(sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of the session's metadata database (the one the task process writes)."""
    from sqlalchemy import create_engine, text

    from airflow_vendorauth.compat import conf

    engine = create_engine(conf.get("database", "sql_alchemy_conn"))
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def scan_state(dag_id: str = DAG_ID) -> tuple[str | None, str | None]:
    """(run_id, state) of the scan task in the latest run of the DAG."""
    rows = query(
        "SELECT ti.run_id, ti.state FROM task_instance ti JOIN dag_run dr ON dr.run_id = ti.run_id AND "
        "dr.dag_id = ti.dag_id WHERE ti.dag_id = :d AND ti.task_id = :t ORDER BY dr.id DESC LIMIT 1",
        d=dag_id,
        t=TASK_ID,
    )
    return rows[0] if rows else (None, None)


def wait_for(what: str, condition: Any, child: subprocess.Popen[bytes], log: Path, timeout: float) -> Any:
    """Poll ``condition`` until it returns something true; fail with the task process's output if it
    ends first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        if child.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail(f"{what}: not seen (task process exit code {child.poll()}); its output:\n{log.read_text()[-6000:]}")


@contextlib.contextmanager
def task_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """dag.test() of ``env["STOP_DAG"]`` (stopped_scan by default) in a process of its own, its output in
    ``log``; killed if the test leaves it running."""
    with log.open("wb") as sink:
        child = subprocess.Popen(
            [sys.executable, "-c", DAG_TEST], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.timeout(600)  # a task process, its stop and its retry: its own waits allow 6 min
def test_a_scan_task_told_to_stop_commits_every_page_it_wrote_and_its_retry_fetches_none_again(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, tmp_path: Path
) -> None:
    vendor_sandbox.configure(sizes={"kazi.expectations": PAGES * PAGE_SIZE})
    vendor_sandbox.add_fault(vendor="kazi", route="/tagging/v2/expectations", latency_ms=LATENCY_MS)
    output, log = tmp_path / "kazi.jsonl", tmp_path / "task-process.log"
    env = {
        **os.environ,
        "STOP_OUTPUT": str(output),
        "STOP_RETRY_DELAY": str(RETRY_DELAY),
        "STOP_CONCURRENCY": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with task_process(env, log) as child:
        wait_for("the scan's first pages", lambda: vendor_sandbox.api_requests("kazi") >= STOP_AFTER, child, log, 180)
        child.send_signal(signal.SIGTERM)  # what the supervisor sends when the task must stop
        run_id = wait_for(
            "the stopped try waiting for its retry (up_for_retry)",
            lambda: (lambda s: s[0] if s[1] == "up_for_retry" else None)(scan_state()),
            child,
            log,
            60,
        )
        # between the stopped try and its retry: what the store holds, what the file holds, what was asked
        asked_by_first_try = vendor_sandbox.api_requests("kazi")
        (stored,) = query(
            "SELECT value FROM task_state_store WHERE dag_id = :d AND run_id = :r AND task_id = :t AND key = :k",
            d=DAG_ID,
            r=run_id,
            t=TASK_ID,
            k=KEY,
        )
        checkpoint = json.loads(stored[0])
        partial = Path(str(output) + ".partial").read_bytes()
        assert (scan_state()[1], child.poll()) == ("up_for_retry", None), "the retry started before the reading"
        child.wait(timeout=180)
    said = log.read_text(errors="replace")
    assert child.returncode == 0 and "dag.test() ended: success" in said, said[-6000:]
    # Airflow's own SIGTERM handler (task_runner._on_term -> on_kill) ended the try, which Airflow retried
    assert "in _on_term" in said and "ScanStopped: the task was told to stop" in said, said[-6000:]

    # the checkpoint stored when the task stopped covers every page in the partial output
    records_in_file = partial.count(b"\n")
    assert checkpoint["bytes_written"] == len(partial), (checkpoint, len(partial))
    assert checkpoint["records"] == records_in_file == checkpoint["pages"] * PAGE_SIZE, (checkpoint, records_in_file)
    assert checkpoint["pages"] >= STOP_AFTER - 1, f"only the interval commit's pages were stored: {checkpoint}"
    assert [int(p) for p in STOPPED.findall(said)[0]] == [checkpoint["pages"], checkpoint["records"]]
    # the retry resumed from it and fetched exactly the pages that remained, none again
    assert [int(p) for p in RESUMED.findall(said)[0]] == [checkpoint["pages"], checkpoint["records"]]
    asked_by_retry = vendor_sandbox.api_requests("kazi") - asked_by_first_try
    assert asked_by_retry == PAGES - checkpoint["pages"], (asked_by_first_try, asked_by_retry, checkpoint)
    ids = [json.loads(line)["id"] for line in output.open()]
    assert len(ids) == len(set(ids)) == PAGES * PAGE_SIZE and ids == sorted(ids)  # every record exactly once
    print(
        f"SIGTERM after {asked_by_first_try} page requests; {checkpoint['pages']} pages committed on stop; "
        f"the retry asked for {asked_by_retry}"
    )


@pytest.mark.timeout(600)  # a task process, its stop and its retry: its own waits allow 6 min
def test_a_task_told_to_stop_while_it_waits_for_its_kazi_scan_ends_at_once_and_its_retry_reconnects(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, tmp_path: Path
) -> None:
    """KaziScanOperator not deferrable: the task sleeps between status calls a minute apart. Told to stop
    there, it ends at once (not at the supervisor's SIGKILL, 5 s later), and its retry reconnects to the
    same scan, whose id ResumableJobMixin kept in task_state_store: one scan submitted in all."""
    dag_id = "stopped_kazi_wait"
    vendor_sandbox.configure(scan_seconds=2)
    vendor_sandbox.add_fault(vendor="kazi", route="/tagging/v2/job-scans")  # counts the submits
    vendor_sandbox.add_fault(vendor="kazi", route="/tagging/v2/job-scans/*")  # the status calls (and results)
    output, log = tmp_path / "kazi-scan.jsonl", tmp_path / "task-process.log"
    env = {
        **os.environ,
        "STOP_DAG": dag_id,
        "STOP_OUTPUT": str(output),
        "STOP_RETRY_DELAY": "4",  # the scan (2 s) is done by then: the retry collects its results at once
        "STOP_POLL_INTERVAL": "60",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }

    def served() -> list[int]:
        return [rule["served"] for rule in vendor_sandbox.faults()]

    with task_process(env, log) as child:
        wait_for("the scan submitted and its first status call", lambda: served() == [1, 1], child, log, 180)
        time.sleep(0.5)  # into the wait between status calls
        child.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_for(
            "the stopped try ended (up_for_retry, or its retry running)",
            lambda: scan_state(dag_id)[1] in ("up_for_retry", "running") and "ScanStopped" in log.read_text(),
            child,
            log,
            60,
        )
        ended_after = time.monotonic() - signalled
        child.wait(timeout=180)
    said = log.read_text(errors="replace")
    assert child.returncode == 0 and "dag.test() ended: success" in said, said[-6000:]
    assert said.count("ScanStopped: the task was told to stop (SIGTERM) while Kazi job scan") == 1, said[-6000:]
    assert "in poll_until_complete" in said  # ended in the wait, by the operator, not by a kill
    assert ended_after < 5, f"the try ended {ended_after:.1f} s after the SIGTERM: past the supervisor's SIGKILL"
    submits, _ = served()
    assert submits == 1, "the retry submitted a second scan instead of reconnecting to the first"
    ids = [json.loads(line)["jobId"] for line in output.open()]
    assert len(ids) == len(set(ids)) == 250  # every job's tags once
