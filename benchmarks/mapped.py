"""Benchmark: 50 mapped VendorApiOperator tasks on a real LocalExecutor deployment, with the file token
cache and with the memory cache, side by side: token requests the sandbox saw and wall time of the run."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, prepare_airflow_home, require, table

TASKS = 50


def main() -> str:
    prepare_airflow_home()
    sys.path.insert(0, str(ROOT))
    from airflow_vendorauth.sandbox.client import Sandbox
    from tests.harness.deployment import Deployment

    rows = []
    with Sandbox() as sandbox:
        for cache in ("file", "memory"):
            sandbox.reset()
            root = Path(tempfile.mkdtemp(prefix=f"vendorauth-mapped-{cache}-"))
            env = {
                **sandbox.environment(token_cache=cache),
                "AIRFLOW__CORE__PARALLELISM": "8",
                "PYTHONPATH": str(ROOT),
            }
            with Deployment(root, extra_env=env, dag_files=[ROOT / "benchmarks" / "bench_dags" / "mapped_calls.py"]) as deployment:
                started = time.monotonic()
                run_id = deployment.trigger("mapped_calls", f"bench-{cache}")
                state = deployment.wait_for_run("mapped_calls", run_id, timeout=900)
                seconds = time.monotonic() - started
            stats = sandbox.stats().get("smartrecruiters", {})
            require(state == "success", f"the {cache} run ended {state}")
            require(stats.get("api_requests", 0) >= TASKS, f"{cache}: the API saw {stats.get('api_requests', 0)} calls for {TASKS} tasks")
            rows.append([cache, TASKS, state, stats.get("token_requests", 0), stats.get("api_requests", 0), f"{seconds:.0f}"])
    return table(
        f"{TASKS} mapped VendorApiOperator tasks, LocalExecutor (parallelism 8), one call each",
        ["token cache", "tasks", "run", "token requests", "API calls", "wall seconds"],
        rows,
    )


if __name__ == "__main__":
    main()
