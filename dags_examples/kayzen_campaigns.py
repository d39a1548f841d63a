"""Kayzen: the campaigns list and a daily campaign-performance report (page/per_page paging)."""

from __future__ import annotations

from _common import DAY, DAY_DIR, DEFAULT_ARGS, START
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator


@dag(schedule="@daily", start_date=START, catchup=False, default_args=DEFAULT_ARGS, tags=["vendorauth", "example"])
def kayzen_campaigns() -> None:
    VendorApiOperator(
        task_id="campaigns",
        conn_id="kayzen_default",
        endpoint="/v1/meta/campaigns",
        output_path=DAY_DIR + "/kayzen/campaigns.jsonl",
    )
    VendorApiOperator(
        task_id="campaign_performance",
        conn_id="kayzen_default",
        endpoint="/v1/reports/campaign_performance",
        params={"start_date": DAY, "end_date": DAY},
        output_path=DAY_DIR + "/kayzen/campaign_performance.jsonl",
    )


kayzen_campaigns()
