"""Test DAGs: an output's asset event carries its figures to the DAG scheduled on it.

``lineage_upstream`` writes SmartRecruiters jobs to a file, then runs a Kazi job scan on them into
another file; both files are declared as assets by the operators themselves. ``lineage_downstream`` is
scheduled on both assets (the same ``asset_for_output`` the operators use) and returns, per asset, the
``extra`` of the events that triggered it: the test reads them from XCom. Outputs go under
VENDORAUTH_DATA_DIR, one folder per run.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_vendorauth.operators.api import VendorApiOperator, asset_for_output
from airflow_vendorauth.operators.kazi_scan import KaziScanOperator

DATA_DIR = os.environ.get("VENDORAUTH_DATA_DIR", "/tmp/vendorauth-data")
JOBS = DATA_DIR + "/{{ run_id }}/jobs.jsonl"
JOB_SCAN = DATA_DIR + "/{{ run_id }}/job_scan.jsonl"
START = pendulum.datetime(2026, 1, 1, tz="UTC")


@dag(schedule=None, start_date=START, catchup=False)
def lineage_upstream() -> None:
    jobs = VendorApiOperator(task_id="jobs", conn_id="smartrecruiters_default", endpoint="/jobs", output_path=JOBS)
    scan = KaziScanOperator(
        task_id="job_scan",
        scan_type="job",
        input_path="{{ ti.xcom_pull(task_ids='jobs')['path'] }}",
        output_path=JOB_SCAN,
        deferrable=False,
        poll_interval=0.5,
    )
    jobs >> scan


@dag(schedule=[asset_for_output(JOBS), asset_for_output(JOB_SCAN)], start_date=START, catchup=False)
def lineage_downstream() -> None:
    @task(multiple_outputs=False)  # one XCom: {asset uri: extra}
    def read_figures(triggering_asset_events: Any = None) -> dict[str, Any]:
        """What a downstream task knows of its inputs without opening them: the figures of their events."""
        return {asset.uri: dict(events[-1].extra) for asset, events in triggering_asset_events.items()}

    read_figures()


lineage_upstream()
lineage_downstream()
