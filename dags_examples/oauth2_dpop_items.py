"""An API that wants DPoP-bound tokens (RFC 9449, FAPI 2.0): the generic `oauth2` type with `dpop: true`.

The connection `oauth2_dpop` says `"dpop": true` and nothing else changes: its tokens are bound to a key
the provider makes for the credential, every token request and API call carries a fresh proof of that
key, and the server's nonces (demanded at the token endpoint and at the API, and rotated) are answered.
A deferred sensor waits for the API (its trigger gets the connection id only, never a key), then the
scan pages it with concurrent requests, each with its own proof, to a file.
"""

from __future__ import annotations

import json
from datetime import timedelta

from _common import DAY_DIR, DEFAULT_ARGS, START
from airflow.sdk import dag, task

from airflow_vendorauth.operators.api import VendorApiOperator
from airflow_vendorauth.sensors.api import VendorApiSensor


@dag(schedule="@daily", start_date=START, catchup=False, default_args=DEFAULT_ARGS, tags=["vendorauth", "example"])
def oauth2_dpop_items() -> None:
    ready = VendorApiSensor(
        task_id="api_ready",
        conn_id="oauth2_dpop",
        endpoint="/items",
        params={"page": 1},
        json_path="page",
        expected=1,
        deferrable=True,
        poke_interval=1,
        timeout=timedelta(minutes=5),
    )
    items = VendorApiOperator(
        task_id="items",
        conn_id="oauth2_dpop",
        endpoint="/items",
        output_path=DAY_DIR + "/oauth2_dpop/items.jsonl",
    )

    @task
    def count_items(result: dict) -> int:
        """How many records came, read back from the file the scan wrote."""
        with open(result["path"]) as lines:
            return sum(1 for line in lines if json.loads(line))

    ready >> items
    count_items(items.output)


oauth2_dpop_items()
