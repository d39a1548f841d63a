"""The DAG of the operator rows of benchmarks/quotas.py: one ``VendorApiOperator`` scan, run by ``dag.test()``
in each of six task processes at once (``tests/harness/quota_scan.py``). The task takes its token, waits for
the round's common start, scans, and writes what it did to ``$QUOTA_RESULT``."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pendulum
from airflow.sdk import dag

from airflow_vendorauth.operators.api import VendorApiOperator


class RoundOperator(VendorApiOperator):
    def execute(self, context: Any) -> Any:
        from airflow_vendorauth.hooks.base import hook_for_connection
        from tests.harness.quota_scan import wait_for_start

        hook_for_connection(self.conn_id).get_token()  # shared with the scan's hook: the memory cache
        wait_for_start()
        started = time.monotonic()
        try:
            return super().execute(context)
        finally:
            with open(os.environ["QUOTA_RESULT"], "w") as out:
                json.dump({"seconds": time.monotonic() - started, "ended_at": time.time()}, out)


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def quota_operator() -> None:
    RoundOperator(task_id="scan", conn_id="oauth2_default", endpoint="/items", output_path=os.environ.get("QUOTA_OUTPUT", "/dev/null"))


quota_operator()
