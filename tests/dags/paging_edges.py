"""A test DAG: one scan against the paging edges of issue 22, configured from the environment at parse time.

EDGE_CONN (connection id), EDGE_ENDPOINT, EDGE_PAGINATION (a JSON pagination description as the
``oauth2`` type's extra takes it; empty: the connection's default), EDGE_CONCURRENCY ("auto" or a
number), EDGE_OUTPUT (a local path or an object-storage URL, ``memory://...``), EDGE_FAIL_ON_SHORTFALL
("0" to accept a shortfall), EDGE_RETRIES, EDGE_LOSE_PARTIAL ("1": before a retry, the first try's
partial output disappears, as on another machine), EDGE_MAX_PAGES (a bound on the scan). With EDGE_ASYNC="1", a second task,
``apaginate_in_flight``, pages EDGE_ENDPOINT with ``apaginate(concurrency=EDGE_CONCURRENCY)`` and returns
the number of records (the sandbox counts the requests in flight).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_vendorauth.operators.api import VendorApiOperator

CONN = os.environ.get("EDGE_CONN", "oauth2_default")
ENDPOINT = os.environ.get("EDGE_ENDPOINT", "/items")
PAGINATION = os.environ.get("EDGE_PAGINATION", "")
CONCURRENCY: Any = os.environ.get("EDGE_CONCURRENCY", "auto")
CONCURRENCY = CONCURRENCY if CONCURRENCY == "auto" else int(CONCURRENCY)
OUTPUT = os.environ.get("EDGE_OUTPUT", "/tmp/vendorauth-edges/items.jsonl")


def lose_partial(context: Any) -> None:
    """Another machine: the first try's local partial output is not where the retry runs."""
    Path(OUTPUT + ".partial").unlink(missing_ok=True)


def pagination() -> Any:
    if not PAGINATION:
        return None
    from airflow_vendorauth.pagination.strategies import strategy_from_json

    return strategy_from_json(json.loads(PAGINATION))


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": int(os.environ.get("EDGE_RETRIES", "0")), "retry_delay": timedelta(seconds=0)},
)
def paging_edges() -> None:
    VendorApiOperator(
        task_id="scan",
        conn_id=CONN,
        endpoint=ENDPOINT,
        pagination=pagination(),
        concurrency=CONCURRENCY,
        output_path=OUTPUT,
        fail_on_shortfall=os.environ.get("EDGE_FAIL_ON_SHORTFALL", "1") == "1",
        max_pages=int(os.environ["EDGE_MAX_PAGES"]) if os.environ.get("EDGE_MAX_PAGES") else None,
        on_retry_callback=lose_partial if os.environ.get("EDGE_LOSE_PARTIAL") == "1" else None,
    )

    @task
    def apaginate_in_flight() -> int:
        from airflow_vendorauth.hooks.base import hook_for_connection

        async def count() -> int:
            hook = hook_for_connection(CONN)
            try:
                return len([r async for r in hook.apaginate(ENDPOINT, pagination=pagination(), concurrency=CONCURRENCY)])
            finally:
                await hook.aclose()

        return asyncio.run(count())

    if os.environ.get("EDGE_ASYNC") == "1":
        apaginate_in_flight()


paging_edges()
