"""A test DAG: SmartRecruiters jobs written to an output path that carries a password (SECRET_OUTPUT), for
tests/integration/test_output_secrets.py: the Asset the operator declares, its event and XCom must not
carry it."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def secret_output() -> None:
    VendorApiOperator(
        task_id="jobs",
        conn_id="smartrecruiters_default",
        endpoint="/jobs",
        output_path=os.environ.get("SECRET_OUTPUT", "memory://vendorauth-secret-output/{{ run_id }}/jobs.jsonl"),
    )


secret_output()
