"""A task cleared after its endpoint changed never resumes the other scan's checkpoint (issue 31, case 4).

Airflow keeps ``task_state_store`` rows when a task is cleared. A real task process (``dag.test()`` of
tests/dags/cleared_scan.py, as tests/integration/test_sigterm_commit.py runs it) scans Clazar's buyers
(80 records, 10 a page) from the sandbox; the fifth page is a proxy's HTML page, so the try fails with
its first four pages committed. The test then points the task at another resource (the Airflow Variable
its endpoint is templated from, as a user fixes a task's filter) and clears it with ``airflow tasks
clear``; the same run runs it again. The checkpoint of the buyers' scan must be set aside, with a log line
naming what differed, and the output must hold exactly the 60 contracts: before checkpoints carried their
scan's identity, the new try resumed the buyers' checkpoint and wrote 40 buyers and the contracts after
page 4 into one "successful" output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from tests.integration.test_sigterm_commit import ROOT, query, scan_state, task_process, wait_for

pytestmark = pytest.mark.integration

DAG_ID, VARIABLE = "cleared_scan", "cleared_scan_resource"


def set_variable(value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "variables", "set", VARIABLE, value], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_task_cleared_after_its_endpoint_changed_starts_over_with_only_the_new_scans_records(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, tmp_path: Path
) -> None:
    vendor_sandbox.add_fault(vendor="clazar", route="/buyers/", rate_html=1.0, after=4, count=1)
    set_variable("buyers")
    output, log = tmp_path / "clazar.jsonl", tmp_path / "task-process.log"
    env = {
        **os.environ,
        "STOP_DAG": DAG_ID,
        "CLEARED_OUTPUT": str(output),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with task_process(env, log) as child:
        run_id = wait_for(
            "the buyers' scan failed on page 5 (up_for_retry)",
            lambda: (lambda s: s[0] if s[1] == "up_for_retry" else None)(scan_state(DAG_ID)),
            child,
            log,
            120,
        )
        (stored,) = query(
            "SELECT value FROM task_state_store WHERE dag_id = :d AND run_id = :r AND task_id = 'scan' "
            "AND key = 'vendorauth_checkpoint'",
            d=DAG_ID,
            r=run_id,
        )
        assert json.loads(stored[0])["records"] == 40  # the buyers' four pages, committed on the failure
        set_variable("contracts")  # the task's endpoint is fixed ...
        cleared = subprocess.run(  # ... and the task cleared, as a user does
            [sys.executable, "-m", "airflow", "tasks", "clear", DAG_ID, "-y"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert cleared.returncode == 0, cleared.stderr[-3000:]
        child.wait(timeout=180)
    said = log.read_text(errors="replace")
    assert child.returncode == 0 and "dag.test() ended: success" in said, said[-6000:]
    ids = [json.loads(line)["id"] for line in output.open()]
    assert ids == [f"con-{i:06d}" for i in range(60)], ids[:5]  # exactly the new scan's records, once
    assert "it belongs to another scan than /contracts/ (endpoint was '/buyers/', now '/contracts/')" in said
    assert "Resuming" not in said
