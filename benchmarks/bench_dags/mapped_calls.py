"""The benchmark's DAG: 50 mapped VendorApiOperator tasks, each one authenticated call (benchmarks/mapped.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def mapped_calls() -> None:
    VendorApiOperator.partial(task_id="call", conn_id="smartrecruiters_default", endpoint="/jobs", max_pages=1).expand(
        params=[{"limit": 1, "tag": n} for n in range(50)]
    )


mapped_calls()
