"""A test DAG: Airflow's own HttpOperator and HttpSensor, unchanged but for ``auth_type``, calling each
vendor through the bridge (``airflow_vendorauth.http.vendor_auth``). The HTTP connections
``http_<vendor>`` give the base URLs; the vendor connections give the tokens and headers."""

from __future__ import annotations

import pendulum
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import dag

from airflow_vendorauth.http import vendor_auth

#: vendor -> (its connection, an endpoint of its API, a word the answer must contain)
CALLS = {
    "kazi": ("kazi_default", "tagging/v2/expectations?pageSize=5", "totalAmount"),
    "keyavi": ("keyavi_default", "payloads", "totalRecords"),
    "kayzen": ("kayzen_default", "v1/meta/campaigns", "data"),
    "smartrecruiters": ("smartrecruiters_default", "jobs", "totalFound"),
    "clazar": ("clazar_default", "listings/", "results"),
    "oauth2": ("oauth2_default", "items", "items"),
}


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["vendorauth-test"])
def http_bridge() -> None:
    for vendor, (conn_id, endpoint, word) in CALLS.items():
        call = HttpOperator(
            task_id=f"{vendor}_call",
            http_conn_id=f"http_{vendor}",
            endpoint=endpoint,
            method="GET",
            auth_type=vendor_auth(conn_id),
            response_check=lambda response, word=word: word in response.text,
            response_filter=lambda response: len(response.content),
        )
        wait = HttpSensor(
            task_id=f"{vendor}_sensor",
            http_conn_id=f"http_{vendor}",
            endpoint=endpoint,
            request_kwargs={"auth": vendor_auth(conn_id)()},  # HttpSensor has no auth_type: requests' auth
            response_check=lambda response, word=word: word in response.text,
            poke_interval=1,
            timeout=60,
        )
        wait >> call


http_bridge()
