"""Clazar: marketplace listings to a file, and buyers to XCom (a small list)."""

from __future__ import annotations

from _common import DAY_DIR, DEFAULT_ARGS, START
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator


@dag(schedule="@daily", start_date=START, catchup=False, default_args=DEFAULT_ARGS, tags=["vendorauth", "example"])
def clazar_listings() -> None:
    VendorApiOperator(
        task_id="listings",
        conn_id="clazar_default",
        endpoint="/listings/",
        output_path=DAY_DIR + "/clazar/listings.jsonl",
    )
    VendorApiOperator(task_id="buyers", conn_id="clazar_default", endpoint="/buyers/")


clazar_listings()
