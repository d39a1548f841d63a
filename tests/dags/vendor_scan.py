"""A test DAG: one paginated scan per vendor, each landing in its own JSON Lines file.

The reliability, leak-scan, crash and cluster tests run it. Settings come from the environment so the
same file serves every test: VENDORAUTH_DATA_DIR (outputs), VENDORAUTH_SCAN_VENDORS (a comma list,
default all five), VENDORAUTH_SCAN_RETRIES (task retries).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator

DATA_DIR = os.environ.get("VENDORAUTH_DATA_DIR", "/tmp/vendorauth-data")
SCANS = {
    "kazi": ("kazi_default", "/tagging/v2/expectations"),
    "keyavi": ("keyavi_default", "/payloads"),
    "kayzen": ("kayzen_default", "/v1/meta/campaigns"),
    "smartrecruiters": ("smartrecruiters_default", "/jobs"),
    "clazar": ("clazar_default", "/listings/"),
}
VENDORS = os.environ.get("VENDORAUTH_SCAN_VENDORS", ",".join(SCANS)).split(",")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": int(os.environ.get("VENDORAUTH_SCAN_RETRIES", "2")), "retry_delay": timedelta(seconds=1)},
)
def vendor_scan() -> None:
    for vendor in VENDORS:
        conn_id, endpoint = SCANS[vendor]
        VendorApiOperator(
            task_id=f"scan_{vendor}",
            conn_id=conn_id,
            endpoint=endpoint,
            output_path=DATA_DIR + "/{{ run_id }}/" + vendor + ".jsonl",
            progress_every=20,
        )


vendor_scan()
