"""Keyavi both ways: as a client app (client credentials + x-api-caller-id) and as a user (password
grant), with Keyavi's filtering, sorting and pagination query parameters."""

from __future__ import annotations

from _common import DAY_DIR, DEFAULT_ARGS, START
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator


@dag(schedule="@daily", start_date=START, catchup=False, default_args=DEFAULT_ARGS, tags=["vendorauth", "example"])
def keyavi_payloads() -> None:
    VendorApiOperator(
        task_id="protected_payloads_as_app",
        conn_id="keyavi_default",
        endpoint="/payloads",
        params={"status": "protected", "sort": "-createdAt"},
        output_path=DAY_DIR + "/keyavi/protected_payloads.jsonl",
    )
    VendorApiOperator(
        task_id="latest_payloads_as_user",
        conn_id="keyavi_user",
        endpoint="/payloads",
        params={"sort": "-createdAt"},
        max_records=50,
    )


keyavi_payloads()
