"""A test DAG: VendorApiSensor for every vendor, deferred (in the triggerer) and poking, each waiting
until its list has all its records; the test empties the lists first and refills them a few seconds in."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import chain, dag

from airflow_vendorauth.sandbox.data import DATASETS
from airflow_vendorauth.sensors.api import VendorApiSensor

#: vendor -> (connection, endpoint, JSON path, the value once the list is full)
WAITS = {
    "kazi": ("kazi_default", "/tagging/v2/expectations", "pagination.totalAmount", DATASETS["kazi.expectations"][1]),
    "keyavi": ("keyavi_default", "/payloads", "pagination.totalRecords", DATASETS["keyavi.payloads"][1]),
    "kayzen": ("kayzen_default", "/v1/meta/campaigns", "data.0.id", DATASETS["kayzen.campaigns"][0](7, 0)["id"]),
    "smartrecruiters": ("smartrecruiters_default", "/jobs", "totalFound", DATASETS["smartrecruiters.jobs"][1]),
    "clazar": ("clazar_default", "/listings/", "count", DATASETS["clazar.listings"][1]),
}


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["vendorauth-test"])
def api_sensor() -> None:
    sensors = []
    for vendor, (conn_id, endpoint, path, value) in WAITS.items():
        for deferrable in (True, False):
            sensors.append(
                VendorApiSensor(
                    task_id=f"{vendor}_{'deferred' if deferrable else 'poking'}",
                    conn_id=conn_id,
                    endpoint=endpoint,
                    json_path=path,
                    expected=value,
                    deferrable=deferrable,
                    poke_interval=0.5,
                    timeout=timedelta(seconds=60),
                )
            )
    sensors.append(
        VendorApiSensor(
            task_id="oauth2_deferred_dotted_check",
            conn_id="oauth2_default",
            endpoint="/items",
            response_check="tests.checks.items_ready",
            deferrable=True,
            poke_interval=0.5,
            timeout=timedelta(seconds=60),
        )
    )
    chain(*sensors)


api_sensor()
