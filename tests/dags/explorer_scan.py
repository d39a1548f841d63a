"""A test DAG of the fault explorer (tests/explorer): one scan of the sandbox's generic API through the
explorer's rotating refresh-token connection, to a JSON Lines file, with one retry a second later.

EXPLORER_OUTPUT (the output path), EXPLORER_SINCE (the API's filter: items from this index on),
EXPLORER_PAGING (``page_number`` or ``offset``): a clear of the task after a change of either must start
the scan over, never resume the other scan's checkpoint.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator
from airflow_vendorauth.pagination import OffsetPagination, PageNumberPagination

PAGING = os.environ.get("EXPLORER_PAGING", "page_number")
PAGINATION = (
    OffsetPagination(offset_param="offset", limit_param="limit", limit=40, records_path="items", total_path="total")
    if PAGING == "offset"
    else PageNumberPagination(page_param="page", size_param="per_page", page_size=50, records_path="items", total_path="total")
)


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
)
def explorer_scan() -> None:
    VendorApiOperator(
        task_id="scan",
        conn_id="oauth2_default",
        endpoint="/items",
        params={"since": os.environ.get("EXPLORER_SINCE", "0")},
        pagination=PAGINATION,
        concurrency=1,
        output_path=os.environ.get("EXPLORER_OUTPUT", "/tmp/vendorauth-explorer/items.jsonl"),
        progress_every=5,
    )


explorer_scan()
