"""A test DAG: one Kazi job scan that waits in the task (not deferrable) between status calls
STOP_POLL_INTERVAL seconds apart, one retry after STOP_RETRY_DELAY seconds, for the test of a task told to
stop (SIGTERM) while it waits, tests/integration/test_sigterm_commit.py. STOP_OUTPUT: the output path."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag

from airflow_vendorauth.operators.kazi_scan import KaziScanOperator


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=float(os.environ.get("STOP_RETRY_DELAY", "0")))},
)
def stopped_kazi_wait() -> None:
    KaziScanOperator(
        task_id="scan",
        scan_type="job",
        items=[{"id": f"job-{i}"} for i in range(250)],
        output_path=os.environ.get("STOP_OUTPUT", "/tmp/vendorauth-stopped/kazi-scan.jsonl"),
        deferrable=False,
        poll_interval=float(os.environ.get("STOP_POLL_INTERVAL", "60")),
    )


stopped_kazi_wait()
