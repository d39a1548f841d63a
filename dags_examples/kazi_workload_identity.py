"""Kazi without a client secret: AKS workload identity (Entra federated identity credentials).

The connection `kazi_workload_identity` says `client_auth: federated` and nothing else secret: the pod's
projected service account token (the file named by AZURE_FEDERATED_TOKEN_FILE, which the AKS webhook
injects with AZURE_CLIENT_ID and AZURE_TENANT_ID) is read at every token request and sent as the client
assertion. The scan runs on the worker; the sensor waits in the triggerer, which reads the same file (its
trigger carries only the connection id).
"""

from __future__ import annotations

from datetime import timedelta

from _common import DAY_DIR, DEFAULT_ARGS, START
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator
from airflow_vendorauth.sensors.api import VendorApiSensor

CONN_ID = "kazi_workload_identity"


@dag(schedule="@daily", start_date=START, catchup=False, default_args=DEFAULT_ARGS, tags=["vendorauth", "example"])
def kazi_workload_identity() -> None:
    ready = VendorApiSensor(
        task_id="expectations_ready",
        conn_id=CONN_ID,
        endpoint="/tagging/v2/expectations",
        json_path="pagination.currentPage",  # the API answers: the credential works
        expected=1,
        deferrable=True,
        poke_interval=1,
        timeout=timedelta(minutes=5),
    )
    expectations = VendorApiOperator(
        task_id="expectations",
        conn_id=CONN_ID,
        endpoint="/tagging/v2/expectations",
        output_path=DAY_DIR + "/kazi/workload_identity_expectations.jsonl",
    )
    ready >> expectations


kazi_workload_identity()
