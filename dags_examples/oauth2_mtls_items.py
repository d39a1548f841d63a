"""An API behind mutual TLS (RFC 8705): the generic `oauth2` type with a client certificate, no secret.

The connection `oauth2_mtls` says `client_auth: tls_client_auth` with `client_certificate` and
`client_private_key` (PEM), and `verify` names the CA bundle of the server's private PKI. The token
request authenticates with the certificate; the server binds the token to it (`cnf.x5t#S256`), and every
API call (the sensor's, in the triggerer, too) presents the same certificate. The key stays in memory.
"""

from __future__ import annotations

from datetime import timedelta

from _common import DAY_DIR, DEFAULT_ARGS, START
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator
from airflow_vendorauth.sensors.api import VendorApiSensor

CONN_ID = "oauth2_mtls"


@dag(schedule="@daily", start_date=START, catchup=False, default_args=DEFAULT_ARGS, tags=["vendorauth", "example"])
def oauth2_mtls_items() -> None:
    ready = VendorApiSensor(
        task_id="items_ready",
        conn_id=CONN_ID,
        endpoint="/items",
        json_path="page",  # the API answers: the certificate and its bound token work
        expected=1,
        deferrable=True,
        poke_interval=1,
        timeout=timedelta(minutes=5),
    )
    items = VendorApiOperator(
        task_id="items",
        conn_id=CONN_ID,
        endpoint="/items",
        output_path=DAY_DIR + "/oauth2/mtls_items.jsonl",
    )
    ready >> items


oauth2_mtls_items()
