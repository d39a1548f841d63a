"""The DAGs of benchmarks/inside_task.py: one paginated scan per DAG, run by ``dag.test()`` in a fresh
process, each task timing its own ``execute()`` (not the harness's start-up) and its peak memory above
what the process held before it, written to ``$BENCH_RESULT``; the records go to ``$BENCH_OUTPUT``."""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable
from typing import Any

import pendulum
from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import dag, task

from airflow_vendorauth.operators.api import VendorApiOperator

CONN = "bench_oauth2"
START = pendulum.datetime(2026, 1, 1, tz="UTC")


def timed(run: Callable[[], Any], context: Any) -> Any:
    """Run the scan, write its wall time and memory above the task's own start to $BENCH_RESULT."""
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    store = context.get("task_state_store")
    with open(os.environ["BENCH_RESULT"], "w") as out:
        json.dump({"seconds": seconds, "peak_mb": peak_mb, "task_state_store": store is not None}, out)
    return result


class TimedVendorApiOperator(VendorApiOperator):
    def execute(self, context: Any) -> Any:
        return timed(lambda: super(TimedVendorApiOperator, self).execute(context), context)


def next_page(response: Any) -> dict[str, Any] | None:
    """HttpOperator's pagination_function: the next page while the announced total is not reached."""
    body = response.json()
    if body["page"] * 100 >= body["total"]:
        return None
    return {"data": {"page": body["page"] + 1, "per_page": 100}}


class TimedHttpOperator(HttpOperator):
    """HttpOperator as its documentation pages an API, with a bearer token fetched beforehand (untimed: it
    has no OAuth of its own) and the records written to the same JSON Lines file at the end."""

    def execute(self, context: Any) -> Any:
        from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
        from airflow_vendorauth.jsonlib import dumps_lines

        self.headers = {"Authorization": f"Bearer {OAuth2Hook(CONN).get_token().access_token}"}

        def run() -> int:
            rows = super(TimedHttpOperator, self).execute(context)
            with open(os.environ["BENCH_OUTPUT"], "wb") as out:
                out.write(dumps_lines(rows))
            return len(rows)

        return timed(run, context)


@dag(schedule=None, start_date=START, catchup=False)
def bench_operator() -> None:
    """VendorApiOperator with default settings (concurrency "auto", per-page checkpoints)."""
    TimedVendorApiOperator(task_id="scan", conn_id=CONN, endpoint="/items", output_path=os.environ.get("BENCH_OUTPUT", "/dev/null"))


@dag(schedule=None, start_date=START, catchup=False)
def bench_paginate() -> None:
    """The same hook's paginate() in a @task, default settings, written to the same file (no checkpoints)."""

    @task
    def scan(**context: Any) -> int:
        from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
        from airflow_vendorauth.operators.output import JsonLinesSink

        def run() -> int:
            sink = JsonLinesSink(os.environ["BENCH_OUTPUT"])
            for batch in OAuth2Hook(CONN).page_batches("/items"):
                sink.write_page(batch.records)
            sink.finish()
            return sink.records

        return timed(run, context)

    scan()


@dag(schedule=None, start_date=START, catchup=False)
def bench_http() -> None:
    TimedHttpOperator(
        task_id="scan",
        http_conn_id="bench_http",
        endpoint="/oauth2-api/items",
        method="GET",
        data={"page": 1, "per_page": 100},
        pagination_function=next_page,
        response_filter=lambda responses: [r for response in responses for r in response.json()["items"]],
        do_xcom_push=False,
    )


bench_operator()
bench_paginate()
bench_http()
