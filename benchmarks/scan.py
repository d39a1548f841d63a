"""Benchmarks 2 and 3: a paginated scan of 100,000 records (and 1,000,000 for ours), wall time and peak
memory above the process's baseline, VendorApiOperator vs HttpOperator with a pagination_function doing
the same pages; then the concurrency option against sequential paging when each page takes 10 ms more.

Each variant runs in a fresh process (its peak RSS is its own); the output bytes are compared."""

from __future__ import annotations

import json
import os
import sys

from harness import prepare_airflow_home, run_python, table

CHILD = r"""
import hashlib, json, os, resource, sys, tempfile, time
variant, concurrency = sys.argv[1], int(sys.argv[2])
out = tempfile.mktemp(suffix=".jsonl")
from airflow_vendorauth.hooks.kazi import KaziHook
from airflow_vendorauth.operators.api import VendorApiOperator
from airflow.providers.http.operators.http import HttpOperator
hook = KaziHook("kazi_default")
hook.request("GET", "/tagging/v2/expectations", params={"page": 1, "pageSize": 1})
headers = {"Authorization": "Bearer " + hook.get_token().access_token, "Ocp-Apim-Subscription-Key": hook.settings.extra("subscription_key")}
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
if variant == "ours":
    result = VendorApiOperator(task_id="scan", conn_id="kazi_default", endpoint="/tagging/v2/expectations",
                               output_path=out, concurrency=concurrency, progress_every=10**9).execute({})
    records = result["records"]
else:
    def next_page(response):
        p = response.json()["pagination"]
        return {"data": {"page": p["currentPage"] + 1, "pageSize": 100}} if p["currentPage"] < p["amountOfPages"] else None
    op = HttpOperator(task_id="scan", http_conn_id="bench_http", endpoint="/kazi/tagging/v2/expectations", method="GET",
                      data={"page": 1, "pageSize": 100}, headers=headers, pagination_function=next_page,
                      response_filter=lambda responses: [r for resp in responses for r in resp.json()["data"]])
    rows = op.execute({})
    from airflow_vendorauth.jsonlib import dumps_lines
    with open(out, "wb") as f:
        f.write(dumps_lines(rows))
    records = len(rows)
seconds = time.perf_counter() - started
peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
digest = hashlib.sha256(open(out, "rb").read()).hexdigest()
os.unlink(out)
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "records": records, "sha256": digest}))
"""


def measure(variant: str, concurrency: int = 1) -> dict:
    return json.loads(run_python(CHILD, variant, str(concurrency)).strip().splitlines()[-1])


def main() -> str:
    prepare_airflow_home()
    from airflow_vendorauth.sandbox.client import Sandbox

    out = []
    with Sandbox() as sandbox:
        os.environ.update(sandbox.environment())
        os.environ["AIRFLOW_CONN_BENCH_HTTP"] = json.dumps({"conn_type": "http", "host": sandbox.url})
        rows = []
        results = {}
        for records in (100_000, 1_000_000):
            sandbox.configure(sizes={"kazi.expectations": records})
            variants = [("VendorApiOperator", "ours", 1)]
            if records == 100_000:
                variants += [("VendorApiOperator, concurrency=4", "ours", 4), ("HttpOperator + pagination_function", "http", 1)]
            for label, variant, concurrency in variants:
                r = results[(label, records)] = measure(variant, concurrency)
                rows.append([label, f"{records:,}", f"{r['seconds']:.1f}", f"{r['records']:,}", f"{r['peak_mb']:.1f}"])
        ours, theirs = results[("VendorApiOperator", 100_000)], results[("HttpOperator + pagination_function", 100_000)]
        fast = results[("VendorApiOperator, concurrency=4", 100_000)]
        assert ours["sha256"] == theirs["sha256"] == fast["sha256"], "every variant must write the same bytes"
        out.append(table("Paginated scan: wall time and peak memory above baseline", ["variant", "records", "seconds", "written", "peak MB"], rows))
        print(
            f"\nspeed-up over HttpOperator at 100,000 records: {theirs['seconds'] / ours['seconds']:.2f}x sequential, "
            f"{theirs['seconds'] / fast['seconds']:.2f}x with concurrency=4; same output bytes",
            flush=True,
        )

        sandbox.configure(sizes={"kazi.expectations": 20_000})
        sandbox.add_fault(vendor="kazi", route="/tagging/v2/expectations", latency_ms=10)
        rows = []
        base = measure("ours", 1)
        for concurrency in (1, 4, 8):
            r = base if concurrency == 1 else measure("ours", concurrency)
            assert r["sha256"] == base["sha256"], "concurrent paging must write the same bytes"
            rows.append([concurrency, f"{r['seconds']:.2f}", f"{base['seconds'] / r['seconds']:.2f}x", f"{r['peak_mb']:.1f}", r["sha256"][:12]])
        out.append(table("Concurrent paging, 20,000 records, +10 ms per page", ["concurrency", "seconds", "vs sequential", "peak MB", "output sha256"], rows))
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main() and 0)
