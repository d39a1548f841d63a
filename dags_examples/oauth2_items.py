"""Any OAuth 2.0 API, with no code of its own: the generic `oauth2` connection type.

The connection `oauth2_default` holds everything: the issuer (its token endpoint is discovered), the
client and how it authenticates, the scope, and how the API pages (its `pagination` extra), so
VendorApiOperator pages the API like a vendor's. The records go to a file; a second task reads the
output path from the first one's XCom (`scan.output`, as Airflow users pass results downstream).
"""

from __future__ import annotations

import json

from _common import DAY_DIR, DEFAULT_ARGS, START
from airflow.sdk import dag, task

from airflow_vendorauth.operators.api import VendorApiOperator


@dag(schedule="@daily", start_date=START, catchup=False, default_args=DEFAULT_ARGS, tags=["vendorauth", "example"])
def oauth2_items() -> None:
    items = VendorApiOperator(
        task_id="items",
        conn_id="oauth2_default",
        endpoint="/items",
        output_path=DAY_DIR + "/oauth2/items.jsonl",
    )

    @task
    def count_tags(result: dict) -> int:
        """How many records came, read back from the file the scan wrote."""
        with open(result["path"]) as lines:
            return sum(1 for line in lines if json.loads(line))

    count_tags(items.output)


oauth2_items()
