"""A test DAG: one Kazi scan to a JSON Lines file, one retry after STOP_RETRY_DELAY seconds, for the test
of a scan told to stop (SIGTERM) mid-scan, tests/integration/test_sigterm_commit.py.

STOP_OUTPUT (the output path), STOP_RETRY_DELAY (seconds between the stopped try and its retry: the test
reads the stored checkpoint and the partial output in between), STOP_CONCURRENCY ("auto" or a number),
STOP_CONN_ID and STOP_ENDPOINT (Kazi's expectations by default; tests/integration/test_stop_mid_rotation.py
scans the generic oauth2 API with a rotating refresh token).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator

OUTPUT = os.environ.get("STOP_OUTPUT", "/tmp/vendorauth-stopped/kazi.jsonl")
CONCURRENCY: Any = os.environ.get("STOP_CONCURRENCY", "1")
CONCURRENCY = CONCURRENCY if CONCURRENCY == "auto" else int(CONCURRENCY)


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=float(os.environ.get("STOP_RETRY_DELAY", "0")))},
)
def stopped_scan() -> None:
    VendorApiOperator(
        task_id="scan",
        conn_id=os.environ.get("STOP_CONN_ID", "kazi_default"),
        endpoint=os.environ.get("STOP_ENDPOINT", "/tagging/v2/expectations"),
        concurrency=CONCURRENCY,
        output_path=OUTPUT,
        progress_every=10,
    )


stopped_scan()
