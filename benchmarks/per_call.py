"""Benchmark 1, per-call cost: VendorHook.request vs raw httpx with a fixed token (the floor) vs
Airflow's HttpHook.run with the same token, against the same sandbox route, runs interleaved."""

from __future__ import annotations

import json
import os

from harness import median, per_call_seconds, prepare_airflow_home, require, table

ROUNDS = 7
CALLS = 200


def main() -> str:
    prepare_airflow_home()
    import httpx

    from airflow_vendorauth.sandbox.client import Sandbox

    with Sandbox() as sandbox:
        os.environ.update(sandbox.environment())
        os.environ["AIRFLOW_CONN_BENCH_HTTP"] = json.dumps({"conn_type": "http", "host": sandbox.url})
        from airflow.providers.http.hooks.http import HttpHook

        from airflow_vendorauth.hooks.clazar import ClazarHook

        hook = ClazarHook("clazar_default")
        params = {"page_size": 1}
        hook.request("GET", "/listings/", params=params)
        bearer = {"Authorization": f"Bearer {hook.get_token().access_token}"}
        raw = httpx.Client(base_url=f"{sandbox.url}/clazar", headers=bearer, timeout=30)
        http_hook = HttpHook(method="GET", http_conn_id="bench_http")
        variants = {
            "raw httpx, fixed token (floor)": lambda: raw.get("/listings/", params=params).raise_for_status(),
            "VendorHook.request": lambda: hook.request("GET", "/listings/", params=params),
            "HttpHook.run, same token": lambda: http_hook.run("/clazar/listings/", data=params, headers=bearer),
        }
        timings: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(ROUNDS):  # interleaved: each round runs every variant once
            for name, call in variants.items():
                timings[name].append(per_call_seconds(call, CALLS))
        calls = sandbox.api_requests("clazar")
        require(calls >= ROUNDS * CALLS * len(variants), f"the API saw {calls} calls, {ROUNDS * CALLS * len(variants)} made")
    floor = median(timings["raw httpx, fixed token (floor)"])
    ours = median(timings["VendorHook.request"])
    rows = [
        [name, f"{median(t) * 1e6:.0f}", f"{median(t) / floor:.2f}x", f"{median(t) / ours:.2f}x"]
        for name, t in timings.items()
    ]
    return table(
        f"Per-call cost ({ROUNDS} interleaved rounds x {CALLS} calls, median)",
        ["variant", "us per call", "vs raw httpx", "vs VendorHook"],
        rows,
    )


if __name__ == "__main__":
    main()
