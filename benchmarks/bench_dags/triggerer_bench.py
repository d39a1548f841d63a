"""The benchmark's DAG: its task instances are deferred in bulk by benchmarks/triggerer.py."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag

from airflow_vendorauth.operators.kazi_scan import KaziScanOperator
from airflow_vendorauth.sensors.api import VendorApiSensor


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def triggerer_bench() -> None:
    KaziScanOperator(task_id="scan", scan_type="job", items=[{"id": "x"}], deferrable=True, poll_interval=10)
    VendorApiSensor(task_id="wait", conn_id="oauth2_default", endpoint="/items", json_path="total", expected=230,
                    deferrable=True, poke_interval=10, timeout=timedelta(minutes=10))
    VendorApiSensor(task_id="probe", conn_id="oauth2_default", endpoint="/items", json_path="total", expected=230,
                    deferrable=True)


triggerer_bench()
