"""Test DAGs whose connection (``misspelt``, set by the test) carries extras its type does not know:
two tasks in one process must log the unknown names once; a near-miss of grant_type fails the task."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")


@dag(schedule=None, start_date=START, catchup=False, tags=["vendorauth-test"])
def misspelt_clazar() -> None:
    for task_id in ("buyers_first", "buyers_again"):
        VendorApiOperator(task_id=task_id, conn_id="misspelt", endpoint="/buyers/", paginate=False)


@dag(schedule=None, start_date=START, catchup=False, tags=["vendorauth-test"])
def misspelt_oauth2() -> None:
    VendorApiOperator(task_id="items", conn_id="misspelt", endpoint="/items", paginate=False)


misspelt_clazar()
misspelt_oauth2()
