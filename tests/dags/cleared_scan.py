"""A test DAG: a Clazar scan whose resource is read from the Airflow Variable ``cleared_scan_resource``,
for the test of a task cleared after its endpoint changed, tests/integration/test_cleared_scan.py.

Its one retry waits 10 minutes: the task runs again only when the test clears it (``airflow tasks clear``),
as a user who fixed a task's filter and cleared it would. CLEARED_OUTPUT: the output path.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator
from airflow_vendorauth.pagination import PageNumberPagination


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
)
def cleared_scan() -> None:
    VendorApiOperator(
        task_id="scan",
        conn_id="clazar_default",
        endpoint="/{{ var.value.cleared_scan_resource }}/",
        pagination=PageNumberPagination(
            page_param="page", size_param="page_size", page_size=10, records_path="results", total_path="count"
        ),
        concurrency=1,
        output_path=os.environ.get("CLEARED_OUTPUT", "/tmp/vendorauth-cleared/clazar.jsonl"),
    )


cleared_scan()
