"""A test DAG whose connection (kazi_refused) has a wrong client secret: its failure, and the
exception text it logs, are part of the leak scan."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def refused_credentials() -> None:
    VendorApiOperator(task_id="scan_with_a_wrong_secret", conn_id="kazi_refused", endpoint="/tagging/v2/expectations")


refused_credentials()
