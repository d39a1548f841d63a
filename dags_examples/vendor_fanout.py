"""Fan-out: 20 mapped tasks per vendor, each an authenticated call, spread over whatever workers are free.

With ``token_cache`` set to Redis on the connections, the 100 tasks of a run, on any number of workers,
share one token per credential (see "Running at scale" in the README).
"""

from __future__ import annotations

import socket
from typing import Any

from _common import DEFAULT_ARGS, START
from airflow.sdk import dag, task

PAGES = 20
CALLS = {
    "kazi": ("kazi_default", "/tagging/v2/expectations", "page", {"pageSize": 10}),
    "keyavi": ("keyavi_default", "/payloads", "page", {"pageSize": 10}),
    "kayzen": ("kayzen_default", "/v1/meta/campaigns", "page", {"per_page": 10}),
    "smartrecruiters": ("smartrecruiters_default", "/jobs", "limit", {}),
    "clazar": ("clazar_default", "/listings/", "page", {"page_size": 5}),
}


@task
def call_vendor(conn_id: str, endpoint: str, query: dict[str, Any]) -> dict[str, Any]:
    """One authenticated call; returns where it ran and how the token was obtained."""
    from airflow_vendorauth.hooks.base import hook_for_connection

    with hook_for_connection(conn_id) as hook:
        body = hook.request("GET", endpoint, params=query).json()
        return {
            "conn_id": conn_id,
            "host": socket.gethostname(),
            "token_requests": hook.token_requests,
            "ok": bool(body),
        }


@dag(schedule=None, start_date=START, catchup=False, default_args=DEFAULT_ARGS, tags=["vendorauth", "example"])
def vendor_fanout() -> None:
    for vendor, (conn_id, endpoint, page_param, fixed) in CALLS.items():
        queries = [{**fixed, page_param: n} for n in range(1, PAGES + 1)]
        call_vendor.override(task_id=f"call_{vendor}").partial(conn_id=conn_id, endpoint=endpoint).expand(query=queries)


vendor_fanout()
