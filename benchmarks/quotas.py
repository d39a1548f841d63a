"""Benchmark: six task processes scanning one API at once, against the sandbox allowing 25 requests a
second and 8 at once per credential (40 ms a request; 429 with Retry-After past either), side by side in
one run: each task's own ``concurrency="auto"`` (hooks, and ``VendorApiOperator`` run by ``dag.test()`` in
each process) and ``HttpOperator``'s page-after-page through
``vendor_auth`` as they were before issue 34 (no shared quota), then the shared quota in Redis, declared
(``rate_limit``, ``max_in_flight``) and learnt (nothing declared: the API's headers and 429s).

The floor is what the quota allows: the pages every task needs (300) / 25 a second = 12 s; the API's first
burst (25 at once) lets a run end a little under it. A row whose tasks failed has no ratio: they stopped
early.
``python benchmarks/quotas.py`` or ``make bench``."""

from __future__ import annotations

import sys

from harness import ROOT, prepare_airflow_home, require, table

PROCESSES = 6
RECORDS = 5000  # 50 pages of 100 per process: 300 requests, a floor of 12 s
DECLARED = {"rate_limit": "25/second", "max_in_flight": 8}
WAYS = [
    ("hooks, per-task auto (before: no shared quota)", "hook-unlimited", {}),
    ("VendorApiOperator via dag.test(), per-task auto (before)", "operator-unlimited", {}),
    ("HttpOperator bridge (before: no shared quota)", "bridge-unlimited", {}),
    ("hooks, shared quota declared (Redis)", "hook", DECLARED),
    ("VendorApiOperator via dag.test(), shared quota declared (Redis)", "operator", DECLARED),
    ("hooks, shared quota learnt, nothing declared (Redis)", "hook", {}),
    ("HttpOperator bridge, shared quota declared (Redis)", "bridge", DECLARED),
]


def main() -> str:
    prepare_airflow_home()
    sys.path.insert(0, str(ROOT))
    from airflow_vendorauth.sandbox.client import Sandbox
    from tests.harness.quota_scan import run_round
    from tests.redis_server import RedisServer

    rows = []
    with Sandbox() as sandbox:
        for name, how, extra in WAYS:
            sandbox.reset()
            sandbox.configure(sizes={"oauth2.items": RECORDS})
            sandbox.add_fault(vendor="oauth2", route="/items", latency_ms=40)
            sandbox.add_quota(vendor="oauth2", route="/items", rates=["25/second"], max_in_flight=8)
            with RedisServer() as redis:
                done = run_round(sandbox, processes=PROCESSES, how=how, records=RECORDS, extra=extra, token_cache=redis.url())
            [rule] = sandbox.quotas()
            require(done.api_requests >= PROCESSES * RECORDS // 100, f"{name}: the API saw {done.api_requests} requests")
            floor = PROCESSES * RECORDS / 100 / 25  # the pages every task needs, at 25 a second
            late = sum(1 for t in rule["refused_at"] if t > 2.0)
            incomplete = sum(1 for r in done.results if not r.get("complete"))
            print(f"{name}: {done.seconds:.1f} s, {done.answered_429} answered 429, {incomplete} failed", flush=True)
            rows.append([
                name,
                done.api_requests,
                f"{done.answered_429} ({100 * done.answered_429 / done.api_requests:.0f} %)",
                late,
                f"{incomplete} of {PROCESSES}",
                f"{done.seconds:.1f}",
                f"{floor:.1f}",
                f"{done.seconds / floor:.2f}x" if not incomplete else "n/a (tasks failed)",
            ])
    return table(
        f"{PROCESSES} task processes at once, one credential, an API allowing 25 requests/s and 8 at once "
        f"(40 ms a request), {RECORDS} records each",
        ["way", "requests", "answered 429", "429 after 2 s", "tasks failed", "wall s", "floor s", "wall / floor"],
        rows,
    )


if __name__ == "__main__":
    main()
